"""Operational tables: saved replies, the outbox, the quarantine, job runs and locks."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from deskctl.db.base import Base
from deskctl.db.types import JsonType, UTCDateTime, bigpk, intpk, utc, utc_null


class Template(Base):
    """A saved reply: the team collection (owner null) or one agent's personal set."""

    __tablename__ = "templates"

    id: Mapped[intpk]
    name: Mapped[str] = mapped_column(String(100), index=True)
    body: Mapped[str] = mapped_column(Text)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[utc]


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
    status: Mapped[str] = mapped_column(String(16), default="queued")  # queued|sending|sent|failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    claimed_at: Mapped[utc_null]
    sent_at: Mapped[utc_null]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[utc]


class Quarantine(Base):
    """Input that could not be parsed: kept whole, with the reason, never dropped silently."""

    __tablename__ = "quarantine"

    id: Mapped[intpk]
    source: Mapped[str] = mapped_column(String(32))  # email | jsonl
    reason: Mapped[str] = mapped_column(Text)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    filename: Mapped[str | None] = mapped_column(String(1000))
    line_no: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="held", index=True)  # held|retried|dropped
    created_at: Mapped[utc]


class JobRun(Base):
    __tablename__ = "job_runs"
    __table_args__ = (Index("ix_job_runs_job_started_at", "job", "started_at"),)

    id: Mapped[bigpk]
    job: Mapped[str] = mapped_column(String(64))
    scheduled_for: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[utc]
    finished_at: Mapped[utc_null]
    outcome: Mapped[str] = mapped_column(String(16))  # ok | failed | skipped | running
    counts: Mapped[dict] = mapped_column(JsonType, default=dict)
    error: Mapped[str | None] = mapped_column(Text)


class JobLock(Base):
    """A lease per job, for engines without advisory locks (SQLite)."""

    __tablename__ = "job_locks"

    job: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[utc]
