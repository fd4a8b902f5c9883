"""Engine creation and the database errors users see (exit 75 for "retry later")."""

from __future__ import annotations

import re

from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url

from deskctl.db.urls import normalize_url  # noqa: F401 - re-exported: callers import it from here
from deskctl.errors import TempFail, UsageError

SQLITE_BUSY_TIMEOUT_MS = 15_000


def redact(url: str) -> str:
    """The URL with any password masked, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)


def make_engine(url: str) -> Engine:
    from sqlalchemy import create_engine
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    url = normalize_url(url)
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise UsageError(f"invalid database URL {redact(url)!r}") from None
    try:
        if parsed.get_backend_name() == "sqlite":
            # The directory is never created here: configuration checks that it exists.
            engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
            event.listen(engine, "connect", _sqlite_pragmas)
            # pysqlite's own transaction handling defers BEGIN; emit it ourselves so
            # SELECT ... then UPDATE happen in one transaction (SQLAlchemy docs, pysqlite).
            event.listen(engine, "begin", _sqlite_begin)
            return engine
        if parsed.get_backend_name() == "postgresql":
            return create_engine(
                url,
                pool_pre_ping=False,
                connect_args={"connect_timeout": 10},
            )
        return create_engine(url)
    except NoSuchModuleError:
        raise UsageError(f"unsupported database URL {redact(url)!r} (use sqlite:/// or postgresql://)") from None


def _sqlite_begin(conn) -> None:
    # Writers take the write lock up front (BEGIN IMMEDIATE) so two writers queue on
    # busy_timeout instead of failing when a read lock cannot be upgraded.
    if conn.get_execution_options().get("sqlite_immediate"):
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        conn.exec_driver_sql("BEGIN")


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # Let SQLAlchemy own BEGIN (see the "begin" listener above).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
    from deskctl.db.sqlite_functions import register

    register(dbapi_connection)


def translate_operational_error(exc: Exception, url: str) -> TempFail:
    """An OperationalError means the database is unreachable or locked: exit 75."""
    text = str(getattr(exc, "orig", exc)).strip().splitlines()[0] if str(exc) else type(exc).__name__
    return TempFail(f"database unavailable ({redact(url)}): {text}; safe to retry")


def truncate_wal(engine) -> None:
    """SQLite: copy the write-ahead log into the database and empty it, so pages an
    erasure replaced do not linger in the -wal file. A no-op on PostgreSQL (its dead
    rows go at the next VACUUM)."""
    if engine.dialect.name != "sqlite":
        return
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
