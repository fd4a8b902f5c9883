"""The `sla-sweep` job: record warnings and breaches that have come due (SPEC §5)."""

from __future__ import annotations

from datetime import datetime


def run(session, *, now: datetime, settings) -> dict:
    from deskctl.services.sla import deadlines as sla
    return sla.sweep(session, now=now, settings=settings)
