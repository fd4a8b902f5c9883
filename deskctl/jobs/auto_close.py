"""The `auto-close` job: close resolved conversations untouched for `after` (SPEC §5)."""

from __future__ import annotations

from datetime import datetime


def run(session, *, now: datetime, settings) -> dict:
    from deskctl.services.conversations import timers as sweeps
    return sweeps.auto_close(session, now=now, settings=settings)
