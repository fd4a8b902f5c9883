"""Business-hours arithmetic: fixed cases, then properties (hypothesis)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deskctl.services.sla.business_hours import ALWAYS_OPEN, Calendar

PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")
WEEKDAYS_9_18 = {d: ((9 * 60, 18 * 60),) for d in range(5)}
SPLIT = {0: ((540, 750), (810, 1080)), **{d: ((540, 1080),) for d in range(1, 5)}}


def paris():
    return Calendar("paris", "Europe/Paris", SPLIT, "FR", None, ["2026-12-24"])


def local(tz, *args):
    return datetime(*args, tzinfo=tz).astimezone(UTC)


def test_friday_evening_rolls_over_the_weekend():
    cal = paris()
    start = local(PARIS, 2026, 11, 20, 17, 0)  # Friday, one hour before closing
    due = cal.add(start, 4 * 3600)
    # 1h Friday + 3h Monday morning (opens 09:00, lunch at 12:30): Monday 12:00 Paris
    assert due == local(PARIS, 2026, 11, 23, 12, 0)
    assert cal.measure(start, due) == 4 * 3600


def test_lunch_break_is_skipped():
    cal = paris()
    start = local(PARIS, 2026, 11, 23, 12, 0)  # Monday
    assert cal.add(start, 3600) == local(PARIS, 2026, 11, 23, 14, 0)


def test_holiday_and_closed_date_are_skipped():
    cal = paris()
    start = local(PARIS, 2026, 12, 23, 17, 0)  # Wednesday; Thu 24 closed, Fri 25 Christmas
    assert cal.add(start, 2 * 3600) == local(PARIS, 2026, 12, 28, 10, 0)
    assert cal.measure(local(PARIS, 2026, 12, 24, 0, 0), local(PARIS, 2026, 12, 27, 23, 0)) == 0
    assert not cal.is_open(local(PARIS, 2026, 12, 25, 10, 0))
    assert cal.is_open(local(PARIS, 2026, 12, 23, 10, 0))


def test_start_outside_hours_begins_at_opening():
    cal = paris()
    assert cal.add(local(PARIS, 2026, 11, 24, 6, 0), 60) == local(PARIS, 2026, 11, 24, 9, 1)
    assert cal.add(local(PARIS, 2026, 11, 24, 6, 0), 0) == local(PARIS, 2026, 11, 24, 6, 0)


def test_dst_change_keeps_local_opening_hours():
    cal = Calendar("paris", "Europe/Paris", WEEKDAYS_9_18)
    # Clocks go back on Sunday 2026-10-25: Friday 17:00 CEST (UTC+2) + 2h → Monday 10:00 CET (UTC+1)
    start = local(PARIS, 2026, 10, 23, 17, 0)
    due = cal.add(start, 2 * 3600)
    assert due == local(PARIS, 2026, 10, 26, 10, 0)
    assert due == datetime(2026, 10, 26, 9, 0, tzinfo=UTC)
    assert start == datetime(2026, 10, 23, 15, 0, tzinfo=UTC)


def test_open_all_night_through_a_dst_gap():
    # Open 00:00-24:00 every day: on the spring-forward night the day has 23 hours.
    cal = Calendar("always", "Europe/Paris", {d: ((0, 1440),) for d in range(7)})
    day_start = local(PARIS, 2026, 3, 29, 0, 0)
    next_day = local(PARIS, 2026, 3, 30, 0, 0)
    assert cal.measure(day_start, next_day) == 23 * 3600


def test_calendar_without_open_time_never_reaches_a_deadline():
    cal = Calendar("never", "UTC", {})
    assert cal.add(datetime(2026, 1, 1, tzinfo=UTC), 60) is None
    assert cal.measure(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)) == 0


def test_24x7():
    start = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    assert ALWAYS_OPEN.add(start, 90) == start + timedelta(seconds=90)
    assert ALWAYS_OPEN.measure(start, start - timedelta(hours=1)) == 0


# -- properties ---------------------------------------------------------------------------

CALENDARS = [
    paris(),
    Calendar("ny", "America/New_York", WEEKDAYS_9_18, "US", "NY"),
    Calendar("night", "Asia/Tokyo", {d: ((20 * 60, 1440), (0, 6 * 60)) for d in range(7)}, "JP"),
    Calendar("lord-howe", "Australia/Lord_Howe", {d: ((60, 180),) for d in range(6)}),  # 30-minute DST
]

moments = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31),
                       timezones=st.just(UTC)).map(lambda d: d.replace(microsecond=0))
durations = st.integers(min_value=0, max_value=30 * 24 * 3600)


@settings(max_examples=300, deadline=None)
@given(cal=st.sampled_from(CALENDARS), start=moments, seconds=durations)
def test_add_then_measure_round_trips(cal, start, seconds):
    due = cal.add(start, seconds)
    assert due is not None and due >= start
    assert cal.measure(start, due) == seconds
    if seconds > 0:  # the deadline falls in open time (or at the close of a range)
        assert cal.is_open(due - timedelta(seconds=1)) or cal.measure(due - timedelta(seconds=1), due) == 1


@settings(max_examples=200, deadline=None)
@given(cal=st.sampled_from(CALENDARS), a=moments, b=moments, c=moments)
def test_measure_is_additive(cal, a, b, c):
    a, b, c = sorted((a, b, c))
    assert cal.measure(a, c) == cal.measure(a, b) + cal.measure(b, c)


@settings(max_examples=200, deadline=None)
@given(cal=st.sampled_from(CALENDARS), start=moments, s1=durations, s2=durations)
def test_add_composes(cal, start, s1, s2):
    assert cal.add(cal.add(start, s1), s2) == cal.add(start, s1 + s2) or s2 == 0


@settings(max_examples=100, deadline=None)
@given(day=st.dates(min_value=date(2025, 1, 1), max_value=date(2028, 12, 31)))
def test_no_open_time_on_holidays_and_weekends(day):
    import holidays

    cal = CALENDARS[1]  # New York, weekdays 9-18
    start = datetime.combine(day, datetime.min.time(), tzinfo=NEW_YORK).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=NEW_YORK).astimezone(UTC)
    closed = day.weekday() >= 5 or day in holidays.country_holidays("US", subdiv="NY", years=day.year)
    assert cal.measure(start, end) == (0 if closed else 9 * 3600)


@pytest.mark.parametrize("cal", CALENDARS, ids=lambda c: c.name)
def test_dst_transition_days_measure_local_hours(cal):
    # Every open day, including DST change days, offers exactly its configured local minutes.
    tz = cal.tz
    for day in (date(2026, 3, 8), date(2026, 3, 29), date(2026, 10, 25), date(2026, 11, 1), date(2026, 4, 5)):
        if cal.is_closed_day(day):
            continue
        start = datetime.combine(day, datetime.min.time(), tzinfo=tz).astimezone(UTC)
        end = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=tz).astimezone(UTC)
        expected = sum(e - s for s, e in cal.week[day.weekday()]) * 60
        got = cal.measure(start, end)
        # A range crossing the DST jump itself is an hour (or 30 minutes) shorter or longer.
        assert abs(got - expected) <= 3600
        if all(e <= 60 or s >= 4 * 60 for s, e in cal.week[day.weekday()]) and cal.name != "lord-howe":
            assert got == expected
