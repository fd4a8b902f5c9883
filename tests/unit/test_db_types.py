"""UTCDateTime's SQLite shortcut writes and reads exactly what SQLAlchemy's own
SQLite DATETIME does, so stored text keeps comparing (and sorting) with older rows."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy.dialects import sqlite

from deskctl.db.types import UTCDateTime

VALUES = [
    datetime(2026, 11, 20, 12, 35, 38, tzinfo=UTC),
    datetime(2026, 1, 2, 3, 4, 5, 123, tzinfo=timezone(timedelta(hours=5, minutes=30))),
    datetime(2026, 3, 29, 1, 30, tzinfo=timezone(timedelta(hours=-8))),
    datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
]


@pytest.mark.parametrize("value", VALUES)
def test_sqlite_bind_text_is_sqlalchemys_datetime_text(value):
    dialect = sqlite.dialect()
    ours = UTCDateTime().bind_processor(dialect)(value)
    theirs = sqlite.DATETIME().bind_processor(dialect)(value.astimezone(UTC).replace(tzinfo=None))
    assert ours == theirs


@pytest.mark.parametrize("value", VALUES)
def test_sqlite_round_trip_is_the_same_instant_in_utc(value):
    dialect = sqlite.dialect()
    column_type = UTCDateTime()
    text = column_type.bind_processor(dialect)(value)
    back = column_type.result_processor(dialect, None)(text)
    assert back == value and back.tzinfo is UTC


def test_sqlite_reads_hand_written_text_with_or_without_offset():
    read = UTCDateTime().result_processor(sqlite.dialect(), None)
    assert read("2026-11-20 12:35:38") == datetime(2026, 11, 20, 12, 35, 38, tzinfo=UTC)
    assert read("2026-11-20T14:35:38+02:00") == datetime(2026, 11, 20, 12, 35, 38, tzinfo=UTC)
    assert read(None) is None


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError, match="naive"):
        UTCDateTime().bind_processor(sqlite.dialect())(datetime(2026, 1, 1))


def test_sqlite_reads_its_own_text_as_utc_in_one_step():
    """The shortcut for the stored "YYYY-MM-DD HH:MM:SS.ffffff" gives what the general
    path gives, with `UTC` itself as the tzinfo."""
    read = UTCDateTime().result_processor(sqlite.dialect(), None)
    for value in VALUES:
        text = UTCDateTime().bind_processor(sqlite.dialect())(value)
        assert len(text) == 26
        back = read(text)
        assert back == value and back.tzinfo is UTC
        assert back == datetime.fromisoformat(text).replace(tzinfo=UTC)
