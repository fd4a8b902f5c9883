"""`id_in(column, ids)`: `column IN (ids)` with the whole list as ONE bound parameter.

`column.in_(ids)` coerces every id into a literal when the statement is built and
expands one placeholder per id each time it runs: for a bulk verb's chunks of 2,000
ids that was a third of a 50,000-row `resolve` (SQLAlchemy's Python, not the
database). Here the statement has one parameter whatever the list's length, so it is
compiled once and cached: SQLite reads the ids from a JSON array with `json_each`,
PostgreSQL compares with `= ANY(:ids)` against one array.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from sqlalchemy import BigInteger, Boolean, String, bindparam
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal
from sqlalchemy.types import TypeDecorator


class IdList(TypeDecorator):
    """A list of integer ids as one parameter: JSON text on SQLite, bigint[] on PostgreSQL."""

    impl = String
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name == "postgresql":
            from sqlalchemy import ARRAY

            return dialect.type_descriptor(ARRAY(BigInteger))
        return dialect.type_descriptor(String())

    def process_bind_param(self, value, dialect):
        ids = [int(v) for v in value]
        return ids if dialect.name == "postgresql" else json.dumps(ids)


class id_in(ColumnElement):  # noqa: N801 (reads as SQL)
    """`column IN (ids)`, the ids bound as one list (see the module's docstring)."""

    inherit_cache = True
    type = Boolean()
    _is_implicitly_boolean = True  # a condition as it is: no `= 1` on SQLite
    _traverse_internals = [("column", InternalTraversal.dp_clauseelement),
                           ("ids", InternalTraversal.dp_clauseelement)]

    def __init__(self, column, ids: Iterable[int]):
        self.column = column
        self.ids = bindparam(None, list(ids), type_=IdList())


@compiles(id_in)
def _any(element, compiler, **kw):
    return f"{compiler.process(element.column, **kw)} = ANY({compiler.process(element.ids, **kw)})"


@compiles(id_in, "sqlite")
def _json_each(element, compiler, **kw):
    column, ids = compiler.process(element.column, **kw), compiler.process(element.ids, **kw)
    return f"{column} IN (SELECT value FROM json_each({ids}))"
