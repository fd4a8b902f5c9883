"""The `boomerang` job: due pending/resolved conversations back to `new` (SPEC §5)."""

from __future__ import annotations

from datetime import datetime


def run(session, *, now: datetime, settings) -> dict:
    from deskctl.services.conversations import timers as sweeps
    return sweeps.boomerang(session, now=now, settings=settings)
