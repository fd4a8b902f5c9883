"""Conversations and what hangs directly off them: tags, watchers, SLA marks."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from deskctl.db.base import Base
from deskctl.db.types import UTCDateTime, intpk, utc, utc_null
from deskctl.vocab import DEFAULT_PRIORITY

# status, priority, channel and sla_state hold names of deskctl.vocab (STATUSES,
# PRIORITIES, CHANNELS or config's, SLA_STATES); the commands and services check them.


class Conversation(Base):
    __tablename__ = "conversations"
    __table_args__ = (
        Index("ix_conversations_status_assignee", "status", "assignee_id"),
        Index("ix_conversations_status_group", "status", "group_id"),
        Index("ix_conversations_channel_thread", "channel", "thread_key"),
        # Reports and the nightly export select "resolved or closed in the period" (covering).
        Index("ix_conversations_resolved_at_status", "resolved_at", "status"),
    )

    id: Mapped[intpk]
    subject: Mapped[str] = mapped_column(String(998), default="")
    channel: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="new")
    priority: Mapped[str] = mapped_column(String(16), default=DEFAULT_PRIORITY)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    group_id: Mapped[int | None] = mapped_column(ForeignKey("groups.id"))
    location_id: Mapped[int | None] = mapped_column(ForeignKey("locations.id"))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"), index=True)
    reason: Mapped[str | None] = mapped_column(String(200))
    closing_note: Mapped[str | None] = mapped_column(Text)
    csat: Mapped[int | None] = mapped_column(Integer)
    # A follow-up points at the closed conversation it continues; a merged duplicate
    # at its survivor (event `merged`). Indexed: ingest looks up follow-ups by it.
    linked_to_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id"), index=True)
    # The (channel, thread) key of JSON-lines channels; null for email.
    thread_key: Mapped[str | None] = mapped_column(String(200))
    # Routing in offer mode (SPEC §10): the agent a waiting conversation is offered to,
    # until when; the route job withdraws expired offers through the second index.
    offered_to: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    offer_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)

    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    boomerang_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    claimed_at: Mapped[utc_null]
    pending_since: Mapped[utc_null]
    resolved_at: Mapped[utc_null]  # last resolution or closing: the end of handle time
    closed_at: Mapped[utc_null]
    first_inbound_at: Mapped[utc_null]
    first_response_at: Mapped[utc_null]
    last_inbound_at: Mapped[utc_null]
    last_outbound_at: Mapped[utc_null]

    # SLA state, recomputed when the facts change so a sweep is an indexed range query.
    sla_policy: Mapped[str | None] = mapped_column(String(100))
    sla_state: Mapped[str] = mapped_column(String(16), default="none")
    first_response_due: Mapped[utc_null]
    next_response_due: Mapped[utc_null]
    resolution_due: Mapped[utc_null]
    # The next moment at which the SLA state changes (a warning or a breach): the sweep's index.
    sla_next_check_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    sla_paused_s: Mapped[int] = mapped_column(Integer, default=0)

    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}


class ConversationTag(Base):
    __tablename__ = "conversation_tags"

    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(100), primary_key=True, index=True)


class Watcher(Base):
    __tablename__ = "watchers"

    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True)
    created_at: Mapped[utc]


class ReadMark(Base):
    """Per-user read state (SPEC §10): when the user last read the conversation's thread."""

    __tablename__ = "read_marks"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    read_at: Mapped[utc]


class SlaMark(Base):
    """One row per conversation, target and level reached: makes warnings and breaches once-only."""

    __tablename__ = "sla_marks"

    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True
    )
    target: Mapped[str] = mapped_column(String(32), primary_key=True)  # first_response, ...
    level: Mapped[str] = mapped_column(String(16), primary_key=True)  # warning | breached
    at: Mapped[utc]
