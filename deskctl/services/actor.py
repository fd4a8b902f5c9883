"""Who is acting: the user a command or job runs as, resolved once."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Actor:
    """The acting user, resolved once per command."""

    id: int
    handle: str
    role: str
    location_id: int | None
    group_ids: frozenset[int]
    availability: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def is_supervisor(self) -> bool:
        return self.role in ("supervisor", "admin")
