"""The application clock: the only place that reads the current time.

`DESKCTL_NOW` (ISO 8601) replaces the time everywhere, for replays, reproducible
scripts and tests. freezegun also works, since this calls `datetime.now`.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime


def parse_iso(text: str) -> datetime:
    """Parse ISO 8601; a naive value is taken as UTC. Returns an aware UTC datetime."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def now() -> datetime:
    override = os.environ.get("DESKCTL_NOW")
    if override:
        return parse_iso(override)
    return datetime.now(UTC)
