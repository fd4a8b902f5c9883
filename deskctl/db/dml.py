"""Statements whose spelling differs between SQLite and PostgreSQL."""

from __future__ import annotations

from deskctl.db.bulk import chunks


def dialect_insert(session):
    """The `insert` of the session's dialect: it has `on_conflict_do_nothing`."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        return postgresql_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert


def insert_ignore(session, table, rows: list[dict], returning) -> list:
    """INSERT ... ON CONFLICT DO NOTHING RETURNING, batched by SQLAlchemy's
    insertmanyvalues (one cached statement); the rows actually inserted."""
    stmt = dialect_insert(session)(table).on_conflict_do_nothing().returning(*returning)
    return session.connection().execute(stmt, rows).all()


def insert_keeping_existing(session, table, rows: list[dict], chunk: int = 2000) -> None:
    """INSERT ... ON CONFLICT DO NOTHING (rows already there kept), one executemany per
    chunk, no read first."""
    if not rows:
        return
    stmt = dialect_insert(session)(table).on_conflict_do_nothing()
    conn = session.connection()
    for part in chunks(rows, chunk):
        conn.execute(stmt, part)
