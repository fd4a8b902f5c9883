"""Column types shared by the models."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from sqlalchemy import JSON, BigInteger, DateTime, Integer
from sqlalchemy.orm import mapped_column
from sqlalchemy.types import TypeDecorator


def sqlite_text(value: datetime) -> str:
    """An aware datetime as SQLite stores it: SQLAlchemy's DATETIME text of the naive UTC
    time, "YYYY-MM-DD HH:MM:SS.ffffff" (microseconds always present), so stored values
    compare as text in time order."""
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.isoformat(" ", "microseconds")[:26]  # without the "+00:00"


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes in, aware UTC datetimes out.

    PostgreSQL stores `timestamptz`; SQLite has no time zones, so values are stored as
    naive UTC text, which still sorts and compares correctly.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    # SQLite's binds and results go through the one-step processors below; these two
    # serve PostgreSQL (and literal rendering, e.g. offline migrations).
    def process_bind_param(self, value: datetime | None, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def bind_processor(self, dialect):
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        # SQLAlchemy's SQLite DATETIME text, written in one step: the same
        # "YYYY-MM-DD HH:MM:SS.ffffff" (microseconds always present), so stored values
        # keep comparing as text with the ones written before.
        def process(value):
            if value is None:
                return None
            if value.tzinfo is None:
                raise ValueError("naive datetime given to a UTC column")
            return sqlite_text(value)

        return process

    def result_processor(self, dialect, coltype):
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)
        parse = datetime.fromisoformat

        # One step from SQLite's text to an aware datetime (the generic path parses in
        # the DateTime type, then converts again here: a third of `list`'s row cost).
        def process(value):
            if value is None:
                return None
            if value.__class__ is str:
                # The text deskctl writes ("YYYY-MM-DD HH:MM:SS.ffffff", UTC): parsed with
                # its offset in one call, eight times cheaper than parse + replace(tzinfo).
                if len(value) == 26 and value[19] == ".":
                    return parse(value + "+00:00")
                parsed = parse(value)
            else:
                parsed = value
            return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)

        return process

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if isinstance(value, str):  # raw SQLite text from hand-written SQL
            value = datetime.fromisoformat(value)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class JsonType(TypeDecorator):
    """JSON, stored as JSONB on PostgreSQL.

    A decorator rather than `JSON().with_variant(JSONB(), ...)`: the variant imports the
    PostgreSQL dialect (and asyncio with it) into every process, a sixth of a SQLite
    command's start-up; here it is imported only by a PostgreSQL engine."""

    impl = JSON
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import JSONB

            return dialect.type_descriptor(JSONB())
        return dialect.type_descriptor(JSON())


# SQLite only auto-increments INTEGER PRIMARY KEY columns.
BigId = BigInteger().with_variant(Integer(), "sqlite")

intpk = Annotated[int, mapped_column(primary_key=True)]
bigpk = Annotated[int, mapped_column(BigId, primary_key=True)]
utc = Annotated[datetime, mapped_column(UTCDateTime())]
utc_null = Annotated[datetime | None, mapped_column(UTCDateTime(), nullable=True)]
