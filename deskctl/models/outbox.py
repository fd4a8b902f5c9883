"""The outbox: notifications and outbound messages waiting for delivery."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from deskctl.db.base import Base
from deskctl.db.types import UTCDateTime, bigpk, utc, utc_null


class Outbox(Base):
    """Notifications and outbound mail waiting for delivery (at least once, de-duplicated)."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_status_next_attempt_at", "status", "next_attempt_at"),)

    id: Mapped[bigpk]
    kind: Mapped[str] = mapped_column(String(32))  # email | notification
    dedupe_key: Mapped[str] = mapped_column(String(300), unique=True)
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id", ondelete="SET NULL"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    recipient: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(998), default="")
    body: Mapped[str] = mapped_column(Text, default="")
    raw: Mapped[bytes | None] = mapped_column(LargeBinary)  # a complete RFC 5322 message
    status: Mapped[str] = mapped_column(String(16), default="queued")  # see deskctl.vocab.OUTBOX_STATUSES
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    claimed_at: Mapped[utc_null]
    sent_at: Mapped[utc_null]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[utc]
