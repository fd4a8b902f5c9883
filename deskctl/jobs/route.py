"""The `route` job: offer or assign waiting conversations to available agents (SPEC §10)."""

from __future__ import annotations

from datetime import datetime


def run(session, *, now: datetime, settings) -> dict:
    from deskctl.services.conversations import routing
    return routing.route(session, now=now, settings=settings)
