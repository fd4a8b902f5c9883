"""`deskctl db`: schema migrations."""

from __future__ import annotations

import click

from deskctl.commands._options import emit, output_options
from deskctl.db import migrate
from deskctl.db.engine import redact
from deskctl.errors import Conflict
from deskctl.output import Column, notice
from deskctl.services.keeping.backup import backup_sqlite, sqlite_source
from deskctl.services.keeping.integrity import run_checks


@click.group()
def db():
    """Database schema administration."""


@db.command()
@click.pass_obj
def upgrade(app):
    """Create or migrate the schema to the current version (idempotent)."""
    app.allow_new_database()
    before, after = migrate.upgrade(app.engine)
    where = redact(app.settings.database_url)
    if before == after:
        notice(f"schema already at revision {after} ({where})")
    else:
        notice(f"schema migrated from {before or 'empty'} to {after} ({where})")


@db.command()
@click.pass_obj
def current(app):
    """Print the schema revision of the database."""
    with app.engine.connect() as connection:
        click.echo(migrate.current_revision(connection) or "none")


@db.command()
@output_options
@click.pass_obj
def check(app):
    """Check integrity: orphans, events without conversations, status invariants.

    Exits 0 when clean, 4 when a problem was found (each check is listed)."""
    with app.read() as session:
        results = run_checks(session)
    emit(app, results, [Column("check"), Column("problems", "int"), Column("sample", "list"),
                        Column("description")], id_key="check")
    problems = sum(r["problems"] for r in results)
    if problems:
        raise Conflict(f"integrity check found {problems} problem(s)")


@db.command()
@click.argument("file", type=click.Path(), metavar="FILE")
@click.option("--force", is_flag=True, help="Replace FILE if it exists.")
@click.pass_obj
def backup(app, file, force):
    """Copy a SQLite desk to FILE while others keep working (SQLite's online backup).

    The copy is one consistent snapshot, written beside FILE under a temporary name,
    checked, then renamed; it opens like any desk (`deskctl --db sqlite:///FILE ...`).
    An existing FILE is refused (exit 4) unless --force. On PostgreSQL use pg_dump
    (exit 2)."""
    source = sqlite_source(app.settings.database_url)
    result = backup_sqlite(app.engine, source, file, force=force)
    notice(f"backed up {result.source} to {result.target} ({result.size} bytes)")
