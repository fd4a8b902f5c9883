"""Bulk INSERTs (the inbound pipeline, the demo desk builder).

`insert_ids`: many rows in one executemany, handing back the new rows' ids without RETURNING.

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

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any

from sqlalchemy import func, insert, select, text

from deskctl.db.types import sqlite_text


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


def next_id(conn, table) -> int:
    """The id after the largest one in `table`: where explicit ids may start when the
    caller holds the write lock (a SQLite writer) or has the database to itself (the
    demo builder), followed by `advance_sequences` on PostgreSQL."""
    return (conn.execute(select(func.max(table.c.id))).scalar() or 0) + 1


def advance_sequences(conn, tables) -> None:
    """Explicit ids do not move PostgreSQL sequences: move them past the largest id."""
    for table in tables:
        conn.execute(text(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
            f"(SELECT COALESCE(MAX(id), 0) + 1 FROM {table}), false)"))


@cache
def _seconds_of_day() -> list[str]:
    """The SQLite stored text of each second of a day, cut from the one encoder
    (types.sqlite_text) so that the format is written once."""
    return [sqlite_text(datetime.fromtimestamp(s, UTC))[11:] for s in range(86_400)]


_JSON_ENCODE = json.JSONEncoder(check_circular=False).encode


class Writer:
    """Bulk INSERTs of rows with their ids already chosen (see `next_id`, and
    `advance_sequences` at the end): each table's Core `insert()` is compiled once for the
    dialect and run with the driver's executemany in chunks. Values are converted here the way the column
    types would (UTC datetimes, JSON), which costs a fraction of SQLAlchemy's per-row
    parameter processing; that processing was two thirds of the time of a 100k-desk build."""

    CHUNK = 20_000

    def __init__(self, conn):
        self.conn = conn
        self.sqlite = conn.dialect.name == "sqlite"
        self._plans: dict = {}
        self._days: dict[int, str] = {}
        self._seconds = _seconds_of_day() if self.sqlite else []

    def _plan(self, table, keys: tuple):
        plan = self._plans.get((table.name, keys))
        if plan is None:
            from sqlalchemy import bindparam

            from deskctl.db.types import JsonType, UTCDateTime

            stmt = insert(table).values({k: bindparam(f"p_{k}") for k in keys})
            compiled = stmt.compile(dialect=self.conn.dialect)
            if compiled.positional:
                assert compiled.positiontup is not None  # a positional statement lists its parameters
                names = [name[2:] for name in compiled.positiontup]
            else:
                names = list(keys)
            pairs: list[tuple[str, Callable[[Any], Any] | None]] = []
            for k in names:
                col_type = table.c[k].type
                if isinstance(col_type, UTCDateTime):
                    pairs.append((k, self.db_time))
                elif isinstance(col_type, JsonType):
                    pairs.append((k, self.db_json))
                else:
                    pairs.append((k, None))
            plan = self._plans[(table.name, keys)] = (compiled.string, pairs, compiled.positional)
        return plan

    def db_time(self, value):
        """Epoch seconds (what the simulation works in) or an aware datetime → the column's
        stored form: aware datetime on PostgreSQL; on SQLite the text SQLAlchemy's DATETIME
        writes for naive UTC ('2026-11-23 09:00:00.000000'), from a per-day prefix and a
        table of the day's seconds (the demo's times are whole seconds)."""
        if value.__class__ is int and self.sqlite:  # the hot path
            day, second = divmod(value, 86_400)
            prefix = self._days.get(day)
            if prefix is not None:
                return prefix + self._seconds[second]
        if value is None:
            return None
        if isinstance(value, datetime):
            if not self.sqlite:
                return value
            value = value.timestamp()
        if not self.sqlite:
            return datetime.fromtimestamp(value, UTC)
        whole = int(value)
        if whole != value:
            return sqlite_text(datetime.fromtimestamp(value, UTC))
        day, second = divmod(whole, 86_400)
        prefix = self._days.get(day)
        if prefix is None:
            prefix = self._days[day] = sqlite_text(datetime.fromtimestamp(day * 86_400, UTC))[:11]
        return prefix + self._seconds[second]

    def db_json(self, value):
        if self.sqlite:
            return _JSON_ENCODE(value)
        from psycopg.types.json import Jsonb

        return Jsonb(value)

    def insert_rows(self, table, columns: tuple, rows: list[tuple]) -> int:
        """Rows already in stored form, as tuples in `columns` order."""
        plan = self._plans.get((table.name, "rows", columns))
        if plan is None:
            from sqlalchemy import bindparam

            dialect = self.conn.dialect
            if not dialect.positional:  # psycopg takes %s as well as %(name)s
                dialect = type(dialect)(paramstyle="format")
            stmt = insert(table).values({k: bindparam(f"p_{k}") for k in columns})
            compiled = stmt.compile(dialect=dialect)
            assert compiled.positiontup is not None  # positional: see above
            positions = [columns.index(name[2:]) for name in compiled.positiontup]
            plan = self._plans[(table.name, "rows", columns)] = (
                compiled.string, None if positions == list(range(len(columns))) else positions)
        sql, order = plan
        for chunk in chunks(rows, self.CHUNK):
            if order is not None:
                chunk = [tuple(row[i] for i in order) for row in chunk]
            self.conn.exec_driver_sql(sql, chunk)
        return len(rows)

    def insert(self, table, rows: list[dict]) -> int:
        if not rows:
            return 0
        sql, pairs, positional = self._plan(table, tuple(rows[0]))
        params: list[tuple[Any, ...]] | list[dict[str, Any]]
        for chunk in chunks(rows, self.CHUNK):
            if positional:
                params = [tuple([conv(row[k]) if conv else row[k] for k, conv in pairs]) for row in chunk]
            else:
                params = [{f"p_{k}": conv(row[k]) if conv else row[k] for k, conv in pairs} for row in chunk]
            self.conn.exec_driver_sql(sql, params)
        return len(rows)


def execute_many(conn, stmt, rows: Sequence[dict]) -> int:
    """Run an INSERT or UPDATE once per row with the driver's executemany; returns the
    rows it changed (the driver's total). The statement's bind parameters are named by
    the rows' keys; a bind the rows do not name keeps its own value, or its column's
    scalar default. Each value is converted by its type's bind processor, looked up once
    per call: SQLAlchemy's own executemany processes every row's parameters itself, which
    cost as much as the database's work in a 10,000-row SLA sweep or notification batch."""
    if not rows:
        return 0
    dialect = conn.dialect
    compiled = stmt.compile(dialect=dialect, column_keys=list(rows[0]))
    names = list(compiled.positiontup) if compiled.positional else list(compiled.binds)
    defaults = {col.key: col.default for col in compiled.insert_prefetch}
    plan = []
    for name in names:
        bind = compiled.binds[name]
        convert = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if name in rows[0]:
            plan.append((name, convert, None))
            continue
        if name in defaults:  # a column the rows leave to its default
            if not defaults[name].is_scalar:
                raise ValueError(f"execute_many: give {name!r} in the rows (its default is computed)")
            value = defaults[name].arg
        else:  # a value of the statement itself (a literal in a SET or WHERE)
            value = bind.effective_value
        plan.append((None, None, convert(value) if convert else value))
    params: list
    if compiled.positional:
        params = [tuple([(conv(row[name]) if conv else row[name]) if name is not None else fixed
                         for name, conv, fixed in plan]) for row in rows]
    else:
        params = [{key: ((conv(row[name]) if conv else row[name]) if name is not None else fixed)
                   for key, (name, conv, fixed) in zip(names, plan, strict=True)} for row in rows]
    return conn.exec_driver_sql(compiled.string, params).rowcount


def chunks(items: Sequence, size: int = 5000):
    """Slices of `items`: IN lists stay under every engine's parameter limit, executemany
    batches bounded."""
    for start in range(0, len(items), size):
        yield items[start:start + size]
