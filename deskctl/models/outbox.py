"""The outbox: notifications and outbound messages waiting for delivery."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from deskctl.db.base import Base
from deskctl.db.types import UTCDateTime, bigpk, utc, utc_null


class Outbox(Base):
    """Notifications, outbound mail and replies on other channels waiting for delivery
    (at least once, de-duplicated).

    kind: `email` (raw holds the RFC 5322 message), `notification` (to a user), `message`
    (a reply on a non-email channel: raw holds the JSON body its `delivery` connector
    gets, built once so that every retry sends the same bytes). status: `queued`,
    `retrying` (a try failed, the next is at next_attempt_at), `sending` (claimed by a
    `notify` run; shown as queued or retrying), `sent`, `failed`."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_status_next_attempt_at", "status", "next_attempt_at"),)

    id: Mapped[bigpk]
    kind: Mapped[str] = mapped_column(String(32))  # email | notification | message
    # The channel it leaves by: email (mail and notifications), or the conversation's channel.
    channel: Mapped[str] = mapped_column(String(32), default="email", server_default="email")
    dedupe_key: Mapped[str] = mapped_column(String(300), unique=True)
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id", ondelete="SET NULL"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    recipient: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(998), default="")
    body: Mapped[str] = mapped_column(Text, default="")
    raw: Mapped[bytes | None] = mapped_column(LargeBinary)  # a complete RFC 5322 message
    # deskctl.vocab.OUTBOX_STATUSES, and `sending` while a run holds the row (shown as queued/retrying)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    claimed_at: Mapped[utc_null]
    sent_at: Mapped[utc_null]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[utc]
