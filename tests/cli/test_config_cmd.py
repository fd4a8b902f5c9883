"""Configuration checked before any work (SPEC §9): `config check`, `config show`, the
database URL rules, the daemon's exit 78 and the shipped systemd unit."""

from __future__ import annotations

import configparser
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from deskctl.cli import cli

ROOT = Path(__file__).resolve().parents[2]
BAD = textwrap.dedent("""\
    smtp: {timeout: abc}
    jobs:
      nightly-export: {cron: "0 25 * * *"}
    business_hours:
      x: {holidays: {country: XX}}
      oslo: {holidays: {country: NO}}
""")


def run(*args, env=None):
    result = CliRunner().invoke(cli, [str(a) for a in args], env=env or {}, catch_exceptions=False)
    return result


def config_file(tmp_path, text: str) -> Path:
    path = tmp_path / "deskctl.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("argv", [["list"], ["jobs", "list"], ["daemon", "--once"], ["config", "check"]])
def test_a_bad_configuration_stops_every_command_with_all_its_problems(desk, tmp_path, argv):
    cfg = config_file(tmp_path, BAD)
    before = desk.dump()
    result = desk.run(*argv, env={"DESKCTL_CONFIG": str(cfg)})
    assert result.exit_code == 78, result
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[:4] == [
        f"deskctl: configuration error in {cfg} line 1: smtp.timeout: must be a number of seconds "
        "greater than 0, not 'abc'",
        f"deskctl: configuration error in {cfg} line 3: jobs.nightly-export.cron: invalid crontab "
        "expression '0 25 * * *': Error validating expression '25': the last value (25) is higher than "
        "the maximum value (23)",
        f"deskctl: configuration error in {cfg} line 5: business_hours.x.holidays.country: unknown "
        "country code 'XX' for the holidays package (ISO 3166-1 alpha-2 in capitals, e.g. FR, DE, NO)",
        f"deskctl: configuration error in {cfg} line 6: business_hours.oslo.holidays.country: NO was "
        "read as false (a YAML 1.1 boolean); quote it: 'NO'",
    ]
    assert lines[4:] == ["deskctl: 4 configuration problems; nothing was done"]
    assert desk.dump() == before


def test_config_check_ok_names_the_file_or_the_defaults(tmp_path):
    result = run("config", "check")
    assert result.exit_code == 0 and result.stdout == ""
    assert result.stderr == "configuration OK: built-in defaults (no configuration file found)\n"
    cfg = config_file(tmp_path, "timezone: Europe/Oslo\nbusiness_hours: {oslo: {holidays: {country: 'NO'}}}\n")
    result = run("--config", cfg, "config", "check")
    assert (result.exit_code, result.stderr) == (0, f"configuration OK: {cfg}\n")


def test_config_check_reports_a_yaml_syntax_error_with_reason_line_and_column(tmp_path):
    cfg = config_file(tmp_path, "timezone: UTC\nchannels: [email, chat\nsla: {}\n")
    result = run("config", "check", env={"DESKCTL_CONFIG": str(cfg)})
    assert result.exit_code == 78 and result.stdout == ""
    assert result.stderr.startswith(f"deskctl: configuration error in {cfg}: invalid YAML at line 3, column 4: ")
    assert "expected ',' or ']'" in result.stderr


def test_config_show_yaml_is_the_effective_configuration_with_origins(tmp_path):
    cfg = config_file(tmp_path, "timezone: Europe/Paris\nsmtp: {host: mail.example.com, username: desk}\n")
    db = tmp_path / "x.db"
    result = run("--config", cfg, "--db", f"sqlite:///{db}", "config", "show")
    assert result.exit_code == 0, result.output
    shown = yaml.safe_load(result.stdout)
    assert shown["timezone"] == "Europe/Paris"
    assert shown["smtp"]["host"] == "mail.example.com"
    assert shown["smtp"]["username"] == "***"
    assert shown["smtp"]["password_env"] == "DESKCTL_SMTP_PASSWORD"  # a variable's name, not a secret
    assert shown["database"]["url"] == f"sqlite:///{db}"
    assert shown["sla"]["policies"][0]["name"] == "default"
    comments = [line for line in result.stdout.splitlines() if line.startswith("#")]
    assert comments[0] == f"# configuration file: {cfg}"
    assert f"# timezone: from {cfg}" in comments
    assert f"# smtp: from {cfg}" in comments
    assert "# sla: from default" in comments
    assert "# database: from --db" in comments
    # What `show` prints is a configuration deskctl accepts as it is.
    again = tmp_path / "shown.yaml"
    again.write_text(result.stdout)
    assert run("--config", again, "config", "check").exit_code == 0


def test_config_show_json_redacts_secrets_and_says_where_the_database_url_came_from(tmp_path):
    cfg = config_file(tmp_path, "database: {url: 'postgresql://desk:s3cret@db.example/desk'}\n")
    result = run("--config", cfg, "config", "show", "--format", "json")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert "s3cret" not in result.stdout
    assert shown["config"]["database"]["url"] == "postgresql://desk:***@db.example/desk"
    assert shown["file"] == str(cfg)
    assert shown["origins"]["database"] == str(cfg) and shown["origins"]["rules"] == "default"
    result = run("--config", cfg, "config", "show", "--format", "json",
                 env={"DESKCTL_DATABASE_URL": "postgresql://u:pw@h/d"})
    shown = json.loads(result.stdout)
    assert shown["origins"]["database"] == "DESKCTL_DATABASE_URL"
    assert shown["config"]["database"]["url"] == "postgresql://u:***@h/d"


def test_config_show_example_prints_the_shipped_files():
    for name, shipped in (("config.yaml", "config.yaml"), ("deskctl.service", "deskctl.service"),
                          ("crontab.example", "crontab.example")):
        result = run("config", "show", "--example", name)
        assert result.exit_code == 0
        assert result.stdout == (ROOT / "deskctl" / "examples" / shipped).read_text()
    assert run("config", "show", "--example").stdout.startswith("# deskctl configuration")


def test_a_sqlite_url_in_a_missing_directory_is_78_naming_the_path_and_creates_nothing(tmp_path):
    target = tmp_path / "srv" / "typo" / "dir" / "x.db"
    for argv in (["list"], ["db", "upgrade"], ["demo", "-n", "1"]):
        result = run("--db", f"sqlite:///{target}", *argv)
        assert result.exit_code == 78 and result.stdout == ""
        assert result.stderr == (f"deskctl: configuration error in --db: database.url: the directory "
                                 f"{target.parent} of the SQLite database does not exist\n")
    assert not (tmp_path / "srv").exists()


def test_only_db_upgrade_and_demo_create_a_sqlite_database(tmp_path):
    target = tmp_path / "desk.db"
    env = {"DESKCTL_DATABASE_URL": f"sqlite:///{target}", "DESKCTL_USER": "admin"}
    for argv in (["list"], ["jobs", "list"], ["db", "current"], ["db", "check"], ["user", "list"]):
        result = run(*argv, env=env)
        assert result.exit_code == 78, (argv, result.output)
        assert result.stderr == (f"deskctl: configuration error in DESKCTL_DATABASE_URL: database.url: the "
                                 f"database {target} does not exist; run `deskctl db upgrade` to create it\n")
        assert not target.exists()
    assert run("db", "upgrade", env=env).exit_code == 0 and target.exists()
    other = tmp_path / "demo.db"
    result = run("demo", "-n", "2", env={**env, "DESKCTL_DATABASE_URL": f"sqlite:///{other}"})
    assert result.exit_code == 0 and other.exists()


def test_the_default_database_is_created_in_the_data_directory_by_db_upgrade_only(tmp_path):
    data = Path(os.environ["XDG_DATA_HOME"]) / "deskctl"
    result = run("list", env={"DESKCTL_USER": "admin"})
    assert result.exit_code == 78
    assert "deskctl: configuration error in built-in defaults: database.url: the database " \
           f"{data / 'desk.db'} does not exist; run `deskctl db upgrade`" in result.stderr
    assert not data.exists()
    assert run("db", "upgrade").exit_code == 0 and (data / "desk.db").exists()


def test_a_database_without_users_says_how_to_create_the_first_admin(desk):
    result = desk.run("list", as_="admin")
    assert result.exit_code == 5 and result.stdout == ""
    assert result.stderr == ("deskctl: this desk has no users yet: create the first admin with "
                             "`deskctl user add HANDLE --role admin` (then pass --as HANDLE or set DESKCTL_USER)\n")
    desk.ok("user", "add", "admin", "--role", "admin", as_="admin")
    result = desk.run("list", as_="nobody")
    assert result.exit_code == 5 and "unknown user 'nobody'" in result.stderr


@pytest.mark.parametrize("url", ["mysql://desk@db/desk", "mysql+pymysql://desk@db/desk",
                                 "postgresql+psycopg2://desk@db/desk", "oracle://x@y/z"])
def test_an_unsupported_database_engine_is_78_naming_the_supported_ones(url):
    result = run("--db", url, "list")
    assert result.exit_code == 78 and result.stdout == ""
    assert "deskctl supports sqlite (sqlite:///PATH) and postgresql" in result.stderr
    assert "Traceback" not in result.stderr and "ModuleNotFound" not in result.stderr


def test_the_daemon_exits_78_on_a_configuration_error(desk, tmp_path):
    """A real process, as systemd runs it: 78 is what RestartPreventExitStatus stops on."""
    cfg = config_file(tmp_path, 'jobs:\n  nightly-export: {cron: "0 25 * * *"}\n')
    env = {**os.environ, "DESKCTL_DATABASE_URL": desk.url, "DESKCTL_CONFIG": str(cfg)}
    proc = subprocess.run([sys.executable, "-m", "deskctl", "daemon"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 78, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr.startswith(f"deskctl: configuration error in {cfg} line 2: jobs.nightly-export.cron:")
    assert "Traceback" not in proc.stderr


def test_the_systemd_unit_does_not_restart_on_a_configuration_error():
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str
    unit.read(ROOT / "deskctl" / "examples" / "deskctl.service")
    service = unit["Service"]
    assert service["RestartPreventExitStatus"] == "78"
    assert service["Type"] == "exec"
    assert service["Environment"] == "XDG_DATA_HOME=/var/lib"
    assert service["StateDirectory"] == "deskctl"  # /var/lib/deskctl, where XDG_DATA_HOME points
    # A failing ExecStartPre would be restarted whatever its status: it must not be fatal.
    assert service["ExecStartPre"].startswith("-")
    # Documentation= names files of the layout the unit installs (/opt/deskctl, a clone).
    urls = unit["Unit"]["Documentation"].split()
    assert urls
    for url in urls:
        assert url.startswith("file:///opt/deskctl/"), url
        assert (ROOT / url.removeprefix("file:///opt/deskctl/")).is_file(), url
    assert service["ExecStart"] == "/opt/deskctl/.venv/bin/deskctl daemon"


def test_the_examples_are_package_data(tmp_path):
    """What setuptools puts in the wheel: build_py of a copy of the project."""
    import shutil

    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    shutil.copy(ROOT / "README.md", tmp_path)
    shutil.copytree(ROOT / "deskctl", tmp_path / "deskctl", ignore=shutil.ignore_patterns("__pycache__"))
    proc = subprocess.run([sys.executable, "-c", "from setuptools import setup; setup()", "-q", "build_py",
                           "--build-lib", "out"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    for name in ("config.yaml", "deskctl.service", "crontab.example"):
        assert (tmp_path / "out" / "deskctl" / "examples" / name).is_file(), name
