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
    ("timezone: [\n", None, "invalid YAML"),
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
