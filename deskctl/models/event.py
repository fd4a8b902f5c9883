"""The append-only audit trail."""

from __future__ import annotations

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from deskctl.db.base import Base
from deskctl.db.types import JsonType, bigpk, utc

EVENT_KINDS = (
    "created", "message_in", "message_out", "note_added", "note_edited", "note_deleted",
    "claimed", "stolen", "transferred", "pending", "resolved", "closed", "reopened",
    "qualified", "contact_attached", "watched", "unwatched", "boomerang_returned",
    "sla_warning", "sla_breached", "auto_closed", "auto_unassigned", "released", "merged",
    "transcript_sent",
    # Routing (SPEC §10).
    "routed", "offered", "declined", "offer_expired",
    # Automations (SPEC §11): one per rule firing.
    "automation",
)


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_conversation_id_id", "conversation_id", "id"),
        Index("ix_events_kind_at", "kind", "at"),
    )

    id: Mapped[bigpk]
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    at: Mapped[utc] = mapped_column(index=True)
    # The acting user's handle, or "system" for jobs and ingest.
    actor: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    data: Mapped[dict] = mapped_column(JsonType, default=dict)
