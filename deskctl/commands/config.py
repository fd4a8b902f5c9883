"""`deskctl config`: check the configuration, show the effective one (SPEC §9)."""

from __future__ import annotations

import copy
from importlib.resources import files

import click
import yaml

from deskctl.config import config_search_path
from deskctl.db.engine import redact
from deskctl.output import dumps, notice

EXAMPLES = ("config.yaml", "deskctl.service", "crontab.example")


@click.group()
def config():
    """Check and show the configuration (file lookup: --config, DESKCTL_CONFIG,
    $XDG_CONFIG_HOME/deskctl/config.yaml, each of $XDG_CONFIG_DIRS, /etc/deskctl/config.yaml)."""


@config.command()
@click.pass_obj
def check(app):
    """Load and check every key; exit 0, or 78 with every problem (file, line, key, reason)."""
    settings = app.settings
    notice(f"configuration OK: {settings.source or 'built-in defaults (no configuration file found)'}")


@config.command()
@click.option("--format", "fmt", type=click.Choice(["yaml", "json"]), default=None,
              help="yaml (default; origins as comments) or json (with an `origins` object).")
@click.option("--example", type=click.Choice(EXAMPLES), default=None, is_flag=False, flag_value="config.yaml",
              help="Print a file shipped with deskctl instead: the commented example configuration "
                   "(default), the systemd unit or the crontab.")
@click.pass_obj
def show(app, fmt, example):
    """The effective configuration: built-in defaults, then the file, then --db /
    DESKCTL_DATABASE_URL; secrets redacted; where each top-level key came from."""
    if example:
        click.echo(files("deskctl").joinpath("examples", example).read_text(encoding="utf-8"), nl=False)
        return
    settings = app.settings
    values = effective(settings)
    origins = dict(settings.origins)
    if fmt is None:
        fmt = "json" if app.output_format() in ("json", "jsonl") and app._format else "yaml"
    if fmt == "json":
        click.echo(dumps({"file": settings.source, "origins": origins, "config": values}))
        return


    if settings.source:
        lines = [f"# configuration file: {settings.source}"]
    else:
        looked = ", ".join(str(p) for p in config_search_path())
        lines = [f"# no configuration file (looked in: {looked}): built-in defaults"]
    for key, value in values.items():
        lines.append(f"# {key}: from {origins.get(key, 'default')}")
        lines.append(yaml.safe_dump({key: value}, sort_keys=False, allow_unicode=True,
                                    default_flow_style=False).rstrip("\n"))
    click.echo("\n".join(lines))


_SECRET_WORDS = ("password", "secret", "token", "username", "apikey", "api_key", "credential")


def effective(settings) -> dict:
    """The merged configuration with resolved paths and database URL, secrets masked."""

    values = copy.deepcopy(settings.raw)
    values["database"] = {**values["database"], "url": redact(settings.database_url)}
    values["attachments_dir"] = str(settings.attachments_dir)
    values["export_dir"] = str(settings.export_dir)
    return _mask(values)


def _mask(value, key: str = ""):
    """Values under secret-like keys become "***" (a key naming an environment variable,
    such as smtp.password_env, holds no secret and stays)."""
    if isinstance(value, dict):
        return {k: _mask(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(v) for v in value]
    lowered = key.lower()
    if value is not None and not lowered.endswith("_env") and any(w in lowered for w in _SECRET_WORDS):
        return "***"
    return value
