"""The application clock: the only place that reads the current time (SPEC §2, §13).

`DESKCTL_NOW` replaces the time everywhere, for replays, reproducible scripts and tests,
but only on a desk whose configuration says `clock: {override: true}`: `install` checks
that once, when the App loads its settings, and `now` honours the value it accepted.
freezegun also works, since this calls `datetime.now`.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

ENV = "DESKCTL_NOW"
# Jobs subtract days and add business time to the clock: keep far from datetime's limits.
FIRST_YEAR, LAST_YEAR = 2000, 2999

# (the DESKCTL_NOW text install() accepted, its time): honoured only while the variable
# still holds that text, so a value nobody validated is never read.
_accepted: tuple[str, datetime] | None = None


def parse_instant(text: str) -> datetime:
    """A clock override (DESKCTL_NOW, `--now`): an ISO 8601 date-time with an offset or
    `Z`, in years 2000-2999; returned in UTC. ValueError says what is wrong."""
    example = "e.g. 2026-11-30T09:00:00Z"
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 date-time with an offset ({example})") from None
    if value.tzinfo is None:
        raise ValueError(f"{text!r} has no offset; add one or Z ({example})")
    # The local year first, so the conversion to UTC cannot overflow.
    if not FIRST_YEAR <= value.year <= LAST_YEAR or not FIRST_YEAR <= value.astimezone(UTC).year <= LAST_YEAR:
        raise ValueError(f"{text!r} is outside years {FIRST_YEAR}-{LAST_YEAR}")
    return value.astimezone(UTC)


def install(settings) -> None:
    """Accept or refuse DESKCTL_NOW for this desk (once per command, when settings load).

    Raises ConfigError (78) when it is set on a desk without `clock.override`, or is not a
    valid instant. An empty DESKCTL_NOW counts as unset."""
    from deskctl.errors import ConfigError

    global _accepted
    _accepted = None
    text = os.environ.get(ENV, "")
    if not text:
        return
    if not settings.clock_override:
        where = settings.source or "the built-in defaults"
        raise ConfigError("the environment", ENV, f"is set, but clock.override is false in {where}; unset it, "
                          "or set `clock: {override: true}` on test, demo and replay desks only")
    try:
        _accepted = (text, parse_instant(text))
    except ValueError as exc:
        raise ConfigError("the environment", ENV, str(exc)) from None


def override_active() -> bool:
    """Whether the clock is replaced by an accepted DESKCTL_NOW right now."""
    return _accepted is not None and os.environ.get(ENV, "") == _accepted[0]


def now() -> datetime:
    if _accepted is not None and override_active():
        return _accepted[1]
    return datetime.now(UTC)
