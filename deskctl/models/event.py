"""The append-only audit trail."""

from __future__ import annotations

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from deskctl.db.base import Base
from deskctl.db.types import JsonType, bigpk, utc


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
    kind: Mapped[str] = mapped_column(String(32))  # one of deskctl.vocab.EVENT_KINDS
    data: Mapped[dict] = mapped_column(JsonType, default=dict)
