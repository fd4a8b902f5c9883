"""WHEN values (SPEC §2): durations, ISO 8601 date-times, `tomorrow`, `next-week`."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from deskctl.errors import UsageError

# y is 365 days: retention periods (`retention.closed_after: 2y`, SPEC §12) are years.
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}
_DURATION = re.compile(r"^(?:\d+[smhdwy])+$")
_PART = re.compile(r"(\d+)([smhdwy])")
# A duration past this is a typo, not a plan (and keeps datetime arithmetic in range).
_MAX_SECONDS = 100 * 365 * 86400


def parse_duration(text: str, *, what: str = "duration") -> timedelta:
    """`30m`, `2h`, `3d`, `1w`, `1d12h` → timedelta; anything else is a usage error."""
    cleaned = (text or "").strip().lower()
    if not _DURATION.match(cleaned):
        raise UsageError(f"invalid {what} {text!r}: expected e.g. 30m, 2h, 3d, 1w, 1d12h")
    seconds = sum(int(n) * _UNITS[u] for n, u in _PART.findall(cleaned))
    if seconds <= 0 or seconds > _MAX_SECONDS:
        raise UsageError(f"invalid {what} {text!r}: must be between 1s and 100 years")
    return timedelta(seconds=seconds)


def parse_when(text: str, *, now: datetime, tz: str = "UTC") -> datetime:
    """A point in time: a duration from now, an ISO 8601 date-time or date,
    `tomorrow` or `next-week` (09:00 local time). Returns aware UTC."""
    cleaned = (text or "").strip().lower()
    zone = ZoneInfo(tz)
    local_today = now.astimezone(zone).date()
    if cleaned == "tomorrow":
        return _local_nine(local_today + timedelta(days=1), zone)
    if cleaned == "next-week":
        days = 7 - local_today.weekday()  # Monday next week, never today
        return _local_nine(local_today + timedelta(days=days), zone)
    if _DURATION.match(cleaned):
        return now + parse_duration(cleaned, what="WHEN")
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"invalid WHEN {text!r}: expected a duration (30m, 2h, 1d12h), an ISO 8601 "
            "date-time, 'tomorrow' or 'next-week'"
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    return value.astimezone(UTC)


def parse_date_bound(text: str, *, now: datetime, tz: str = "UTC") -> datetime:
    """A filter bound: an ISO date (local midnight), date-time, or a duration *ago*."""
    cleaned = (text or "").strip().lower()
    if _DURATION.match(cleaned):
        return now - parse_duration(cleaned, what="time")
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", cleaned):
        try:
            day = date.fromisoformat(cleaned)
        except ValueError as exc:  # 2026-13-45: the shape of a date, not a date
            raise UsageError(f"invalid date {text!r}: {exc}") from None
        return datetime.combine(day, time(0), ZoneInfo(tz)).astimezone(UTC)
    return parse_when(text, now=now, tz=tz)


def _local_nine(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(9, 0), zone).astimezone(UTC)


def humanize_seconds(seconds: float | int | None) -> str:
    """2h 05m, 3d 04h, 45s: for tables only; machine formats keep integer seconds."""
    if seconds is None:
        return ""
    seconds = int(seconds)
    sign = "-" if seconds < 0 else ""
    s = abs(seconds)
    d, rem = divmod(s, 86400)
    h, rem = divmod(rem, 3600)
    m, sec = divmod(rem, 60)
    if d:
        return f"{sign}{d}d {h:02d}h"
    if h:
        return f"{sign}{h}h {m:02d}m"
    if m:
        return f"{sign}{m}m {sec:02d}s"
    return f"{sign}{sec}s"
