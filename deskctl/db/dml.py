"""Statements whose spelling differs between SQLite and PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import text

from deskctl.db.bulk import chunks


def dialect_insert(session):
    """The `insert` of the session's dialect: it has `on_conflict_do_nothing`."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        return postgresql_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert


def insert_ignore(session, table, rows: list[dict], returning) -> list:
    """INSERT ... ON CONFLICT DO NOTHING RETURNING `returning` (columns of `table`): the
    rows actually inserted. All rows go in one statement with one parameter per column, a
    list (unnest on PostgreSQL; on SQLite one JSON array of rows read by json_each), their
    values converted by the column types once per column: SQLAlchemy's insertmanyvalues
    processed every row's parameters itself, most of the cost of a sweep's marks."""
    if not rows:
        return []
    conn = session.connection()
    dialect = conn.dialect
    quote = dialect.identifier_preparer.quote
    keys = list(rows[0])
    columns = [table.c[k] for k in keys]
    converters = [col.type.dialect_impl(dialect).bind_processor(dialect) for col in columns]
    values = [[conv(row[k]) if conv else row[k] for row in rows] for k, conv in zip(keys, converters, strict=True)]
    names = ", ".join(quote(col.name) for col in columns)
    params: dict[str, Any]
    back = ", ".join(quote(col.name) for col in returning)
    if dialect.name == "postgresql":
        arrays = ", ".join(f"CAST(:c{i} AS {col.type.compile(dialect=dialect)}[])" for i, col in enumerate(columns))
        source, params = f"SELECT * FROM unnest({arrays})", {f"c{i}": v for i, v in enumerate(values)}
    else:
        picks = ", ".join(f"json_extract(value, '$[{i}]')" for i in range(len(columns)))
        source = f"SELECT {picks} FROM json_each(:rows) WHERE true"  # WHERE: SQLite's upsert-after-SELECT rule
        params = {"rows": json.dumps([list(row) for row in zip(*values, strict=True)])}
    sql = f"INSERT INTO {quote(table.name)} ({names}) {source} ON CONFLICT DO NOTHING RETURNING {back}"
    return conn.execute(text(sql), params).all()


def insert_keeping_existing(session, table, rows: list[dict], chunk: int = 2000) -> None:
    """INSERT ... ON CONFLICT DO NOTHING (rows already there kept), one executemany per
    chunk, no read first."""
    if not rows:
        return
    stmt = dialect_insert(session)(table).on_conflict_do_nothing()
    conn = session.connection()
    for part in chunks(rows, chunk):
        conn.execute(stmt, part)
