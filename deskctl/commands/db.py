"""`deskctl db`: schema migrations."""

from __future__ import annotations

import click


@click.group()
def db():
    """Database schema administration."""


@db.command()
@click.pass_obj
def upgrade(app):
    """Create or migrate the schema to the current version (idempotent)."""
    from deskctl.db import migrate
    from deskctl.db.engine import redact
    from deskctl.output import notice

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
    from deskctl.db import migrate

    with app.engine.connect() as connection:
        click.echo(migrate.current_revision(connection) or "none")
