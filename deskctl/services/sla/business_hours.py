"""Business-hours arithmetic for SLA policies (SPEC §8).

A calendar is a set of weekly opening ranges in its own timezone, minus public holidays
(the `holidays` package) and extra closed dates. `24x7` is the calendar that is always
open. Two operations:

- `add(start, seconds)`: the moment at which `seconds` of open time have elapsed after
  `start` (a deadline);
- `measure(start, end)`: how many seconds of open time lie between two moments.

`measure(start, add(start, s)) == s` for every start and s >= 0 (property-tested).
Opening ranges are local wall-clock times: 09:00-18:00 stays 09:00-18:00 across a DST
change, so the day the clocks change has an hour more or less of UTC time around it but
the same opening hours. All inputs and outputs are aware datetimes (returned in UTC).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

# A calendar with no open time would never reach a deadline: give up after this horizon.
HORIZON_DAYS = 3 * 366


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


def _us(at: datetime) -> int:
    return (at - EPOCH) // _MICRO


def _dt(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


def _seconds(value) -> timedelta:
    if isinstance(value, timedelta):
        return value
    return timedelta(seconds=value)


@dataclass(frozen=True)
class _Index:
    """Open intervals of local days lo..hi: starts/ends (µs since the epoch) and the
    cumulative open time at the end of each interval."""

    lo: date
    hi: date
    starts: list[int]
    ends: list[int]
    cum_end: list[int]

    def cum_at(self, t: int) -> int:
        """Open microseconds from the start of the index to instant t."""
        i = bisect_right(self.starts, t) - 1
        if i < 0:
            return 0
        before = self.cum_end[i] - (self.ends[i] - self.starts[i])
        return before + min(t, self.ends[i]) - self.starts[i]


class AlwaysOpen:
    """`hours: 24x7`."""

    name = "24x7"

    def add(self, start: datetime, seconds) -> datetime:
        # The hot path of every SLA refresh: stored times are already UTC.
        due = start + (seconds if seconds.__class__ is timedelta else timedelta(seconds=seconds))
        return due if due.tzinfo is UTC else due.astimezone(UTC)

    def measure(self, start: datetime, end: datetime) -> float:
        return max((end - start).total_seconds(), 0.0)

    def is_open(self, at: datetime) -> bool:
        return True


class Calendar:
    """Weekly opening ranges in a timezone, minus holidays and closed dates.

    `week`: weekday (0 = Monday) → ((start minute, end minute), ...), end may be 1440.
    """

    def __init__(self, name: str, timezone: str, week: dict[int, tuple[tuple[int, int], ...]],
                 holidays_country: str | None = None, holidays_subdiv: str | None = None,
                 closed=()):
        self.name = name
        self.tz = ZoneInfo(timezone)
        self.week = {day: tuple(sorted(ranges)) for day, ranges in week.items() if ranges}
        self.holidays_country = holidays_country
        self.holidays_subdiv = holidays_subdiv
        self.closed = frozenset(date.fromisoformat(str(d)) for d in closed)
        self._holiday_years: dict[int, frozenset[date]] = {}
        self._day_cache: dict[date, tuple[tuple[datetime, datetime], ...]] = {}
        self._index: _Index | None = None

    @classmethod
    def from_settings(cls, bh) -> Calendar:
        """From a config.BusinessHours."""
        return cls(bh.name, bh.timezone, bh.week, bh.holidays_country, bh.holidays_subdiv, bh.closed)

    # -- which days are open -------------------------------------------------------
    def _holidays(self, year: int) -> frozenset[date]:
        found = self._holiday_years.get(year)
        if found is None:
            found = frozenset()
            if self.holidays_country:
                import holidays

                found = frozenset(holidays.country_holidays(
                    self.holidays_country, subdiv=self.holidays_subdiv or None, years=year).keys())
            self._holiday_years[year] = found
        return found

    def is_closed_day(self, day: date) -> bool:
        return day in self.closed or day in self._holidays(day.year) or not self.week.get(day.weekday())

    def intervals_on(self, day: date) -> tuple[tuple[datetime, datetime], ...]:
        """The open intervals of one local date, as (start, end) in UTC, in order."""
        cached = self._day_cache.get(day)
        if cached is not None:
            return cached
        result: list[tuple[datetime, datetime]] = []
        if not self.is_closed_day(day):
            for start_min, end_min in self.week[day.weekday()]:
                start = self._local(day, start_min)
                end = self._local(day, end_min)
                if end <= start:  # a range swallowed by a DST gap
                    continue
                if result and start <= result[-1][1]:  # touching or overlapping: merge
                    result[-1] = (result[-1][0], max(end, result[-1][1]))
                else:
                    result.append((start, end))
        value = tuple(result)
        self._day_cache[day] = value
        return value

    def _local(self, day: date, minute: int) -> datetime:
        if minute >= 24 * 60:
            day, minute = day + timedelta(days=1), minute - 24 * 60
        local = datetime.combine(day, time(minute // 60, minute % 60), tzinfo=self.tz)
        # A wall time inside a DST gap does not exist: zoneinfo maps it past the gap.
        return local.astimezone(UTC)

    # -- an index of open intervals: cumulative open time, searched by bisection ------
    #
    # Instants are integer microseconds since the epoch, so sums are exact. The index
    # covers a range of local dates and grows (by a year or more) when asked beyond it.

    def _ensure(self, first: date, last: date) -> _Index:
        index = self._index  # one attribute read: safe while another thread extends it
        if index is not None and index.lo <= first and last <= index.hi:
            return index
        lo = first - timedelta(days=7)
        hi = last + timedelta(days=366)
        if index is not None:
            lo, hi = min(lo, index.lo), max(hi, index.hi)
        starts: list[int] = []
        ends: list[int] = []
        day = lo
        while day <= hi:
            for a, b in self.intervals_on(day):
                a_us, b_us = _us(a), _us(b)
                if ends and a_us <= ends[-1]:  # touching across midnight: one interval
                    ends[-1] = max(ends[-1], b_us)
                else:
                    starts.append(a_us)
                    ends.append(b_us)
            day += timedelta(days=1)
        cum_end: list[int] = []
        total = 0
        for start_us, end_us in zip(starts, ends, strict=True):
            total += end_us - start_us
            cum_end.append(total)
        index = _Index(lo, hi, starts, ends, cum_end)
        self._index = index
        self._day_cache = {}
        return index

    def _local_day(self, at: datetime) -> date:
        return at.astimezone(self.tz).date()

    # -- arithmetic ----------------------------------------------------------------
    def add(self, start: datetime, seconds) -> datetime | None:
        """The moment `seconds` of open time after `start`; None if the calendar has no
        open time within the horizon (a policy on an always-closed calendar never breaches)."""
        start = start.astimezone(UTC)
        amount = _seconds(seconds) // _MICRO
        if amount <= 0:
            return start
        t = _us(start)
        first = self._local_day(start)
        last = first + timedelta(days=14)
        while True:
            index = self._ensure(first, last)
            target = index.cum_at(t) + amount
            i = bisect_left(index.cum_end, target)
            if i < len(index.cum_end):
                before = index.cum_end[i] - (index.ends[i] - index.starts[i])
                return _dt(index.starts[i] + target - before)
            if (index.hi - first).days > HORIZON_DAYS:
                return None
            last = first + timedelta(days=2 * (index.hi - first).days)

    def measure(self, start: datetime, end: datetime) -> float:
        """Seconds of open time in [start, end); 0 when end <= start."""
        start, end = start.astimezone(UTC), end.astimezone(UTC)
        if end <= start:
            return 0.0
        index = self._ensure(self._local_day(start), self._local_day(end))
        return (index.cum_at(_us(end)) - index.cum_at(_us(start))) / 1_000_000

    def is_open(self, at: datetime) -> bool:
        at = at.astimezone(UTC)
        day = at.astimezone(self.tz).date()
        return any(lo <= at < hi for d in (day - timedelta(days=1), day) for lo, hi in self.intervals_on(d))


ALWAYS_OPEN = AlwaysOpen()


@lru_cache(maxsize=64)
def _calendar_cached(key) -> Calendar:
    name, timezone, week, country, subdiv, closed = key
    return Calendar(name, timezone, dict(week), country, subdiv, closed)


def calendar_for(settings, hours: str) -> Calendar | AlwaysOpen:
    """The calendar a policy's `hours` names (cached across calls with the same config)."""
    if hours == "24x7":
        return ALWAYS_OPEN
    bh = settings.business_hours[hours]
    key = (bh.name, bh.timezone, tuple(sorted(bh.week.items())), bh.holidays_country, bh.holidays_subdiv,
           tuple(sorted(bh.closed)))
    return _calendar_cached(key)
