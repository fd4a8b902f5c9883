"""Schema migrations (Alembic), shipped inside the package."""

from __future__ import annotations

from sqlalchemy.engine import Connection, Engine

# Any constant works; it only has to be the same for every deskctl process.
_MIGRATION_LOCK_KEY = 0x6465736B  # "desk"


def alembic_config(connection: Connection | None = None, url: str | None = None):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", "deskctl:migrations")
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """Migrate to `revision`; returns (before, after) revisions. Safe to run concurrently:
    on PostgreSQL an advisory lock serialises upgraders, the second one finds nothing to do."""
    from alembic import command
    from sqlalchemy import text

    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _MIGRATION_LOCK_KEY})
            connection.commit()
        try:
            before = current_revision(connection)
            command.upgrade(alembic_config(connection), revision)
            connection.commit()
            after = current_revision(connection)
        finally:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _MIGRATION_LOCK_KEY})
                connection.commit()
    return before, after


def current_revision(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()
