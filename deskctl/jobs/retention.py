"""The `retention` job: erase old closed conversations' content (SPEC §12)."""

from __future__ import annotations

from datetime import datetime


def run(session, *, now: datetime, settings) -> dict:
    from deskctl.services.keeping import erasure
    return erasure.retention(session, now=now, settings=settings)
