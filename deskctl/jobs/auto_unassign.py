"""The `auto-unassign` job: unanswered claims back to their group (RONA, SPEC §5)."""

from __future__ import annotations

from datetime import datetime


def run(session, *, now: datetime, settings) -> dict:
    from deskctl.services.conversations import timers as sweeps
    return sweeps.auto_unassign(session, now=now, settings=settings)
