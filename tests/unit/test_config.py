import textwrap
from pathlib import Path

import pytest
import yaml

from deskctl.config import DEFAULTS, load_settings
from deskctl.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_config_equals_built_in_defaults():
    assert yaml.safe_load((ROOT / "config" / "deskctl.yaml").read_text()) == DEFAULTS


def test_defaults_load_without_a_file():
    settings = load_settings()
    assert settings.source is None
    assert settings.database_url.endswith("deskctl/desk.db")
    assert settings.sla.policies[0].name == "default"
    assert settings.jobs["auto-unassign"].enabled is False


def test_flag_database_url_wins_over_file(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("database: {url: 'sqlite:///from-file.db'}\n")
    assert load_settings(str(cfg)).database_url == "sqlite:///from-file.db"
    assert load_settings(str(cfg), "sqlite:///flag.db").database_url == "sqlite:///flag.db"


@pytest.mark.parametrize("text, key, problem", [
    ("nope: 1\n", "nope", "unknown key"),
    ("timezone: Mars/Olympus\n", "timezone", "unknown timezone"),
    ("sla: {warning: 2}\n", "sla.warning", "between 0 and 1"),
    ("rules: {close_requires_tag: maybe}\n", "rules.close_requires_tag", "true or false"),
    ("jobs: {boomerang: {every: soon}}\n", "jobs.boomerang.every", "invalid duration"),
    ("jobs: {frobnicate: {every: 1m}}\n", "jobs.frobnicate", "unknown job"),
    ("sla: {policies: [{name: x, hours: office}]}\n", "sla.policies[0].hours", "unknown calendar"),
    ("business_hours: {paris: {week: {mon: ['18:00-09:00']}}}\n", "business_hours.paris.week.mon", "inverted"),
    ("timezone: [\n", None, "invalid YAML at line 2, column 1: expected the node content"),
])
def test_config_errors_name_file_key_and_problem(tmp_path, text, key, problem):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings(str(cfg))
    message = info.value.format_message()
    assert str(cfg) in message
    if key:
        assert key in message
    assert problem in message
    assert info.value.exit_code == 78


def test_config_dev_null_means_defaults_and_a_directory_or_missing_file_is_an_error(tmp_path):
    settings = load_settings("/dev/null")
    assert settings.sla.policies[0].name == "default" and settings.source == "/dev/null"
    for path, problem in ((tmp_path, "is a directory"), (tmp_path / "missing.yaml", "file not found")):
        with pytest.raises(ConfigError) as info:
            load_settings(str(path))
        assert problem in info.value.format_message() and info.value.exit_code == 78


def _problems(tmp_path, text: str) -> list:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings(str(cfg))
    assert info.value.exit_code == 78
    for problem in info.value.problems:
        assert problem.file == str(cfg)
    return info.value.problems


def test_every_problem_is_listed_at_once_in_file_order_with_its_line(tmp_path):
    problems = _problems(tmp_path, textwrap.dedent("""\
        smtp: {timeout: abc}
        jobs:
          nightly-export: {cron: "0 25 * * *"}
        business_hours:
          x: {holidays: {country: XX}}
        nope: 1
    """))
    assert [(p.key, p.line) for p in problems] == [
        ("smtp.timeout", 1), ("jobs.nightly-export.cron", 3), ("business_hours.x.holidays.country", 5),
        ("nope", 6)]
    reasons = [p.problem for p in problems]
    assert "greater than 0" in reasons[0] and "'abc'" in reasons[0]
    assert "25" in reasons[1] and "maximum" in reasons[1]
    assert "unknown country code 'XX'" in reasons[2]


@pytest.mark.parametrize("text, key, problem", [
    ("smtp: {timeout: abc}\n", "smtp.timeout", "greater than 0"),
    ("smtp: {timeout: 0}\n", "smtp.timeout", "greater than 0"),
    ("smtp: {port: 70000}\n", "smtp.port", "port number"),
    ("smtp: {port: '25'}\n", "smtp.port", "port number"),
    ("smtp: {starttls: 'yes please'}\n", "smtp.starttls", "true or false"),
    ("smtp: {host: [a, b]}\n", "smtp.host", "must be a host name"),
    ("smtp: {username: 12}\n", "smtp.username", "must be a user name"),
    ("smtp: {from: not-an-address}\n", "smtp.from", "invalid email address"),
    ("smtp: {password_env: 'hunter 2'}\n", "smtp.password_env", "not an environment variable name"),
    ("database: {url: 42}\n", "database.url", "must be a database URL"),
    ("database: {url: 'mysql://u@h/d'}\n", "database.url", "supports sqlite"),
    ("database: {url: 'sqlite:////nonexistent-dir/sub/desk.db'}\n", "database.url",
     "the directory /nonexistent-dir/sub of the SQLite database does not exist"),
    ("export_dir: [x]\n", "export_dir", "directory path"),
    ("channels: email\n", "channels", "list of names"),
    ("channels: [email, email]\n", "channels[1]", "listed twice"),
    ("sla: {policies: [{name: a, when: {channel: fax}}]}\n", "sla.policies[0].when.channel", "unknown channel"),
    ("sla: {policies: [{name: a, pause_when_pending: sometimes}]}\n", "sla.policies[0].pause_when_pending",
     "true or false"),
    ("sla: {policies: [{name: a}, {name: a}]}\n", "sla.policies[1].name", "defined twice"),
    ("jobs: {nightly-export: {cron: '0 2 * *'}}\n", "jobs.nightly-export.cron", "5-field"),
    ("jobs: {sla-sweep: {cron: '*/0 * * * *'}}\n", "jobs.sla-sweep.cron", "invalid crontab expression"),
    ("jobs: {nightly-export: {reports: [volume, nope]}}\n", "jobs.nightly-export.reports", "unknown report"),
    ("jobs: {notify: {enabled: 'no way'}}\n", "jobs.notify.enabled", "true or false"),
    ("business_hours: {x: {holidays: {country: FR, subdiv: ZZ}}}\n", "business_hours.x.holidays.subdiv",
     "unknown subdivision 'ZZ' of FR"),
    ("business_hours: {x: {week: {mon: ['09:00-12:00', '11:00-13:00']}}}\n", "business_hours.x.week.mon",
     "overlap"),
    ("business_hours: {x: {closed: ['2026-02-30']}}\n", "business_hours.x.closed", "invalid date"),
    ("clock: {override: 1}\n", "clock.override", "true or false"),
    ("service_user: [a]\n", "service_user", "OS user name"),
    ("limits: {recipients: 0}\n", "limits.recipients", "positive whole number"),
    ("limits: {message_bytes: 25 MiB}\n", "limits.message_bytes", "invalid size"),
    ("timezone: Europe/Paris\ntimezone: UTC\n", "timezone", "appears twice"),
])
def test_each_key_is_checked_at_load(tmp_path, text, key, problem):
    [found] = _problems(tmp_path, text)
    assert found.key == key
    assert problem in found.problem


def test_a_yaml_1_1_boolean_where_a_name_is_expected_is_named_as_such(tmp_path):
    [found] = _problems(tmp_path, "business_hours:\n  oslo: {holidays: {country: NO}}\n")
    assert found.key == "business_hours.oslo.holidays.country" and found.line == 2
    assert found.problem == "NO was read as false (a YAML 1.1 boolean); quote it: 'NO'"
    [found] = _problems(tmp_path, "channels: [email, off]\n")
    assert found.key == "channels[1]" and "off was read as false" in found.problem
    cfg = tmp_path / "good.yaml"
    cfg.write_text("business_hours:\n  oslo: {holidays: {country: 'NO'}}\n")
    assert load_settings(str(cfg)).business_hours["oslo"].holidays_country == "NO"


def test_a_yaml_syntax_error_gives_the_reason_line_and_column(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("timezone: UTC\nsmtp:\n  host: a\n   port: 25\n")
    with pytest.raises(ConfigError) as info:
        load_settings(str(cfg))
    message = info.value.format_message()
    assert message.startswith(f"configuration error in {cfg}: invalid YAML at line 4, column 8: ")
    assert "mapping values are not allowed here" in message


def test_known_good_values_load(tmp_path):
    cfg = tmp_path / "good.yaml"
    cfg.write_text(textwrap.dedent("""\
        timezone: Europe/Paris
        smtp: {timeout: 2.5, port: 587, starttls: true, username: desk, from: "Desk <desk@example.com>"}
        jobs: {nightly-export: {cron: "30 3 * * 1-5"}, sla-sweep: {cron: "*/5 * * * *"}}
        business_hours: {paris: {holidays: {country: FR, subdiv: 57}, week: {mon: ["09:00-18:00"]}}}
    """))
    settings = load_settings(str(cfg))
    assert settings.smtp.timeout == 2.5 and settings.smtp.starttls is True
    assert settings.jobs["nightly-export"].cron == "30 3 * * 1-5"
    assert settings.jobs["sla-sweep"].cron == "*/5 * * * *" and settings.jobs["sla-sweep"].every is None
    assert settings.business_hours["paris"].holidays_subdiv == "57"
    assert settings.origins["smtp"] == str(cfg) and settings.origins["sla"] == "default"


def test_the_configuration_file_lookup_order_never_reads_the_current_directory(tmp_path, monkeypatch):
    import deskctl.config as config_module

    def place(path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("timezone: UTC\n")
        return path

    # The current directory is the test's own `work` directory (conftest): never read.
    place(Path.cwd() / "config" / "deskctl.yaml")
    place(Path.cwd() / "deskctl" / "config.yaml")
    first_dir, second_dir = tmp_path / "xdg-a", tmp_path / "xdg-b"
    monkeypatch.setenv("XDG_CONFIG_DIRS", f"relative/ignored:{first_dir}:{second_dir}")
    monkeypatch.setattr(config_module, "SYSTEM_CONFIG", tmp_path / "etc" / "deskctl" / "config.yaml")
    assert load_settings().source is None

    for path in (  # each newly placed file wins over those placed before it
        config_module.SYSTEM_CONFIG,
        second_dir / "deskctl" / "config.yaml",
        first_dir / "deskctl" / "config.yaml",
        tmp_path / "xdg-config" / "deskctl" / "config.yaml",  # $XDG_CONFIG_HOME (conftest)
    ):
        place(path)
        assert load_settings().source == str(path)
    explicit = place(tmp_path / "explicit.yaml")
    assert load_settings(str(explicit)).source == str(explicit)


def test_xdg_config_dirs_defaults_to_etc_xdg(monkeypatch):
    import deskctl.config as config_module

    monkeypatch.delenv("XDG_CONFIG_DIRS", raising=False)
    paths = [str(p) for p in config_module.config_search_path()]
    assert paths[1:] == ["/etc/xdg/deskctl/config.yaml", "/etc/deskctl/config.yaml"]


def test_the_database_url_from_the_flag_is_checked_and_named(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_settings(None, f"sqlite:///{tmp_path}/typo/dir/desk.db", "DESKCTL_DATABASE_URL")
    assert info.value.file == "DESKCTL_DATABASE_URL" and info.value.key == "database.url"
    assert f"the directory {tmp_path}/typo/dir of the SQLite database does not exist" in info.value.problem
    assert not (tmp_path / "typo").exists()
    settings = load_settings(None, "postgres://desk:s3cret@db/desk", "--db")
    assert settings.origins["database"] == "--db"


@pytest.mark.parametrize("text, key", [
    ("sla: {policies: [{name: a, when: {group: [billing, off]}}]}\n", "sla.policies[0].when.group[1]"),
    ("sla: {policies: [{name: a, when: {location: no}}]}\n", "sla.policies[0].when.location"),
    ("sla: {policies: [{name: yes}]}\n", "sla.policies[0].name"),
    ("timezone: no\n", "timezone"),
    ("service_user: off\n", "service_user"),
])
def test_the_yaml_1_1_surprise_is_named_for_every_name(tmp_path, text, key):
    [found] = _problems(tmp_path, text)
    assert found.key == key
    assert "(a YAML 1.1 boolean); quote it: '" in found.problem


def test_an_unknown_database_scheme_is_78_and_a_malformed_flag_url_is_2(tmp_path):
    from deskctl.errors import UsageError

    with pytest.raises(ConfigError) as info:
        load_settings(None, "nosuchdb://desk:pw@host/desk")
    assert "deskctl supports sqlite" in info.value.problem and "pw" not in info.value.problem
    with pytest.raises(UsageError):
        load_settings(None, "postgresql://desk:pw@127.0.0.1:notaport/desk")
    [found] = _problems(tmp_path, "database: {url: 'postgresql://desk:pw@127.0.0.1:notaport/desk'}\n")
    assert found.key == "database.url" and "invalid database URL" in found.problem
