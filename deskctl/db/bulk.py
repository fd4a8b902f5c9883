"""Bulk INSERTs that hand back the new rows' ids without RETURNING.

The ids are chosen first and sent with the rows, so one plain executemany does the
INSERT (an ordered `INSERT ... RETURNING` took two to three times as long on
PostgreSQL, and SQLite cannot batch one at all: SQLAlchemy falls back to one statement
per row):
- PostgreSQL: one `nextval` per row from the id column's sequence, in one query (safe
  under concurrency, as the sequence is).
- SQLite: ids continue from max(id). Safe because a SQLite writer holds the database's
  write lock for its whole transaction (BEGIN IMMEDIATE; a deferred one would fail with
  "database is locked" rather than collide, and the primary key forbids a duplicate).
"""

from __future__ import annotations

from sqlalchemy import func, insert, select


def next_ids(conn, table, count: int) -> list[int]:
    """`count` new ids for `table`, in increasing order, for rows inserted in this transaction."""
    if count <= 0:
        return []
    if conn.dialect.name == "sqlite":
        start = conn.execute(select(func.max(table.c.id))).scalar() or 0
        return list(range(start + 1, start + 1 + count))
    sequence = func.pg_get_serial_sequence(table.name, table.c.id.name)
    return list(conn.execute(select(func.nextval(sequence)).select_from(func.generate_series(1, count))).scalars())


def insert_ids(conn, table, rows: list[dict], inline: dict | None = None) -> list[int]:
    """INSERT many rows (Core, one executemany) and return their new ids in order. Each
    row dict gets its "id". `inline`: columns with the same value in every row, rendered
    once in the statement instead of bound per row."""
    if not rows:
        return []
    for row, new_id in zip(rows, next_ids(conn, table, len(rows)), strict=True):
        row["id"] = new_id
    conn.execute(insert(table).values(**inline) if inline else insert(table), rows)
    return [row["id"] for row in rows]
