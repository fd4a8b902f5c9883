from datetime import UTC, datetime, timedelta

import pytest

from deskctl.errors import UsageError
from deskctl.timeparse import humanize_seconds, parse_date_bound, parse_duration, parse_when

NOW = datetime(2026, 11, 20, 15, 30, tzinfo=UTC)  # a Friday


@pytest.mark.parametrize("text, expected", [
    ("30m", timedelta(minutes=30)), ("2h", timedelta(hours=2)), ("3d", timedelta(days=3)),
    ("1w", timedelta(weeks=1)), ("1d12h", timedelta(days=1, hours=12)), ("45s", timedelta(seconds=45)),
])
def test_durations(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "soon", "3x", "-2h", "0m", "h2", "99999999w"])
def test_bad_durations_are_usage_errors(text):
    with pytest.raises(UsageError):
        parse_duration(text)


def test_when_forms():
    assert parse_when("2h", now=NOW) == NOW + timedelta(hours=2)
    assert parse_when("2026-12-01T08:00:00Z", now=NOW) == datetime(2026, 12, 1, 8, tzinfo=UTC)
    # tomorrow / next-week are 09:00 local time
    assert parse_when("tomorrow", now=NOW, tz="Europe/Paris") == datetime(2026, 11, 21, 8, tzinfo=UTC)
    assert parse_when("next-week", now=NOW, tz="Europe/Paris") == datetime(2026, 11, 23, 8, tzinfo=UTC)
    # a naive ISO time is local time
    assert parse_when("2026-07-01T10:00", now=NOW, tz="Europe/Paris") == datetime(2026, 7, 1, 8, tzinfo=UTC)


def test_unparseable_when():
    with pytest.raises(UsageError, match="invalid WHEN"):
        parse_when("next tuesday-ish", now=NOW)


@pytest.mark.parametrize("text", ["2026-13-45", "2026-02-30", "2026-00-10"])
def test_a_date_shaped_bound_that_is_no_date_is_a_usage_error(text):
    with pytest.raises(UsageError, match=f"invalid date '{text}'"):
        parse_date_bound(text, now=NOW)


def test_humanize():
    assert humanize_seconds(7500) == "2h 05m"
    assert humanize_seconds(45) == "45s"
    assert humanize_seconds(3 * 86400 + 4 * 3600) == "3d 04h"
    assert humanize_seconds(None) == ""
