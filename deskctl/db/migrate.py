"""Schema migrations (Alembic), shipped inside the package."""

from __future__ import annotations

from sqlalchemy.engine import Connection, Engine

# Any constant works; it only has to be the same for every deskctl process.
_MIGRATION_LOCK_KEY = 0x6465736B  # "desk"

# The newest migration's revision. Every command checks the database against it, so it
# is a constant rather than Alembic's script scan (importing Alembic costs ~0.2 s per
# process); a test keeps it equal to Alembic's head.
HEAD_REVISION = "0005"


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
        sqlite = connection.dialect.name == "sqlite"
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _MIGRATION_LOCK_KEY})
            connection.commit()
        if sqlite:
            # A batch migration recreates a table (copy, DROP, rename); with foreign keys
            # on, SQLite's DROP deletes the children ON DELETE CASCADE: every message of
            # every conversation. Off for the migration (set outside any transaction, on
            # the driver's connection), and the keys checked before they are on again.
            _driver_execute(connection, "PRAGMA foreign_keys=OFF")
        try:
            before = current_revision(connection)
            command.upgrade(alembic_config(connection), revision)
            connection.commit()
            after = current_revision(connection)
            if sqlite:
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                connection.commit()
                if broken:
                    raise RuntimeError(f"migration left {len(broken)} rows with a broken foreign key: {broken[:3]}")
        finally:
            if sqlite:
                _driver_execute(connection, "PRAGMA foreign_keys=ON")
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _MIGRATION_LOCK_KEY})
                connection.commit()
    return before, after


def _driver_execute(connection: Connection, sql: str) -> None:
    """Run `sql` on the driver's own connection, outside SQLAlchemy's transaction."""
    dbapi_connection = connection.connection.dbapi_connection
    assert dbapi_connection is not None  # the connection is checked out
    dbapi_connection.cursor().execute(sql)


def current_revision(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


def schema_revision(connection: Connection) -> str | None:
    """The database's revision read with one query (no Alembic import); None if unset."""
    from sqlalchemy import inspect, text

    if not inspect(connection).has_table("alembic_version"):
        return None
    return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()
