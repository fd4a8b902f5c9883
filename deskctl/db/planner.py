"""Query-planner help that works the same on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import QueryableAttribute
from sqlalchemy.sql.expression import ColumnElement
from sqlalchemy.sql.functions import FunctionElement


class not_indexed(FunctionElement):  # noqa: N801 (reads as a SQL function)
    """The column's value, rendered so that SQLite will not pick an index on it.

    SQLite without `ANALYZE` statistics prefers an index on an `IN (…)` of a few
    constants: `events.kind IN ('pending', 'closed')` walks every closed event of the
    desk when the query also names 2,000 conversations. A unary `+` is SQLite's
    documented way to rule an index out; PostgreSQL plans from statistics and gets the
    bare column."""

    inherit_cache = True

    def __init__(self, column: ColumnElement[Any] | QueryableAttribute[Any]):
        super().__init__(column)
        self.type = column.type


@compiles(not_indexed)
def _plain(element, compiler, **kw):
    return compiler.process(element.clauses, **kw)


@compiles(not_indexed, "sqlite")
def _sqlite(element, compiler, **kw):
    return "+" + compiler.process(element.clauses, **kw)
