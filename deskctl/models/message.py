"""Messages (inbound and outbound), their attachments, and internal notes."""

from __future__ import annotations

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from deskctl.db.base import Base
from deskctl.db.types import BigId, JsonType, bigpk, intpk, utc, utc_null

DIRECTIONS = ("inbound", "outbound")
# Longer ancestor ids are not indexed (no real Message-ID is this long, and a btree
# entry must stay small on PostgreSQL).
MAX_REFERENCE = 250


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_conversation_at", "conversation_id", "created_at"),
        Index("uq_messages_channel_external_id", "channel", "external_id", unique=True),
    )

    id: Mapped[bigpk]
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    direction: Mapped[str] = mapped_column(String(16))
    author_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    author_contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"))
    author_name: Mapped[str | None] = mapped_column(String(200))
    channel: Mapped[str] = mapped_column(String(32))
    message_type: Mapped[str | None] = mapped_column(String(64))
    # The message's own page on its channel (JSON lines `url`: a public post), http(s) only.
    url: Mapped[str | None] = mapped_column(String(2000))
    subject: Mapped[str | None] = mapped_column(String(998))
    text: Mapped[str] = mapped_column(Text, default="")
    html: Mapped[str | None] = mapped_column(Text)
    # The email Message-ID (without <>) or the JSON-lines message id.
    external_id: Mapped[str | None] = mapped_column(String(998))
    in_reply_to: Mapped[str | None] = mapped_column(String(998))
    references: Mapped[str | None] = mapped_column(Text)
    cc: Mapped[list] = mapped_column(JsonType, default=list)
    bcc: Mapped[list] = mapped_column(JsonType, default=list)
    # When the desk received (inbound) or sent (outbound) it: every clock reads this.
    created_at: Mapped[utc]
    # What the sender claims (an email's Date: header); shown, never used for timing.
    sent_at: Mapped[utc_null]
    # SHA-256 of the content (services.messages.body_sha256): tells a re-delivery of
    # this message from a different message reusing its external id. Null: stored
    # before the column existed, unknown.
    body_sha256: Mapped[str | None] = mapped_column(String(64))


class MessageReference(Base):
    """The Message-IDs an email names as its ancestors (In-Reply-To and References):
    threading finds the stored messages that share an ancestor with a new one."""

    __tablename__ = "message_references"
    # (ref, message_id): "the newest message naming this ancestor" reads the index only.
    __table_args__ = (Index("ix_message_references_ref_message", "ref", "message_id"),)

    message_id: Mapped[int] = mapped_column(BigId, ForeignKey("messages.id", ondelete="CASCADE"),
                                            primary_key=True)
    ref: Mapped[str] = mapped_column(String(MAX_REFERENCE), primary_key=True)


class Attachment(Base):
    __tablename__ = "attachments"

    id: Mapped[intpk]
    message_id: Mapped[int] = mapped_column(BigId, ForeignKey("messages.id", ondelete="CASCADE"), index=True)
    filename: Mapped[str] = mapped_column(String(500), default="")
    content_type: Mapped[str] = mapped_column(String(200), default="application/octet-stream")
    size: Mapped[int] = mapped_column(Integer, default=0)
    sha256: Mapped[str] = mapped_column(String(64), index=True)


class Note(Base):
    __tablename__ = "notes"

    id: Mapped[intpk]
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    text: Mapped[str] = mapped_column(Text)
    # Set when the note is the --message of a transfer.
    event_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("events.id"))
    created_at: Mapped[utc]
    updated_at: Mapped[utc]
    deleted_at: Mapped[utc_null]


class NoteVersion(Base):
    """Every text a note has had; edits and deletes never lose a version."""

    __tablename__ = "note_versions"

    id: Mapped[intpk]
    note_id: Mapped[int] = mapped_column(ForeignKey("notes.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    at: Mapped[utc]
