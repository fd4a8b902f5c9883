"""Adding messages to conversations, and what a message changes (SPEC §1, §4).

Inbound: the contact wrote. A `pending` or `resolved` conversation comes back to `new`
and its boomerang is cancelled; a `closed` one is not touched here (the caller opens a
new conversation linked to it). Outbound: an agent replied; it sets first response.
Both stamp the timestamps the SLA engine and reports read, and record an event.
"""

from __future__ import annotations

from datetime import datetime

from deskctl.models import Conversation, Message
from deskctl.services import events, sla

REOPENED_BY_REPLY = ("pending", "resolved")


def add_inbound(session, conversation: Conversation, *, now: datetime, settings, text: str,
                html: str | None = None, external_id: str | None = None, author_contact_id: int | None = None,
                author_name: str | None = None, subject: str | None = None, message_type: str | None = None,
                in_reply_to: str | None = None, references: str | None = None, cc=None, bcc=None,
                at: datetime | None = None) -> Message:
    at = at or now
    message = Message(
        conversation_id=conversation.id, direction="inbound", author_contact_id=author_contact_id,
        author_name=author_name, channel=conversation.channel, message_type=message_type, subject=subject,
        text=text or "", html=html, external_id=external_id, in_reply_to=in_reply_to, references=references,
        cc=list(cc or []), bcc=list(bcc or []), created_at=at,
    )
    session.add(message)
    if conversation.first_inbound_at is None:
        conversation.first_inbound_at = at
    conversation.last_inbound_at = at
    conversation.updated_at = now
    session.flush()
    events.record(session, conversation_id=conversation.id, actor=events.SYSTEM, kind="message_in", at=now,
                  data={"message_id": message.id, "external_id": external_id})
    if conversation.status in REOPENED_BY_REPLY:
        previous = conversation.status
        conversation.status = "new"
        conversation.boomerang_at = None
        conversation.pending_since = None
        events.record(session, conversation_id=conversation.id, actor=events.SYSTEM, kind="reopened", at=now,
                      data={"previous_status": previous, "cause": "contact_reply"})
    session.flush()
    sla.refresh(session, [conversation.id], now=now, settings=settings)
    return message


def add_outbound(session, conversation: Conversation, *, now: datetime, settings, author_user_id: int,
                 actor: str, text: str, html: str | None = None, external_id: str | None = None,
                 subject: str | None = None, in_reply_to: str | None = None, references: str | None = None,
                 cc=None, bcc=None) -> Message:
    message = Message(
        conversation_id=conversation.id, direction="outbound", author_user_id=author_user_id,
        channel=conversation.channel, subject=subject, text=text, html=html, external_id=external_id,
        in_reply_to=in_reply_to, references=references, cc=list(cc or []), bcc=list(bcc or []), created_at=now,
    )
    session.add(message)
    if conversation.first_response_at is None:
        conversation.first_response_at = now
    conversation.last_outbound_at = now
    conversation.updated_at = now
    session.flush()
    events.record(session, conversation_id=conversation.id, actor=actor, kind="message_out", at=now,
                  data={"message_id": message.id})
    sla.refresh(session, [conversation.id], now=now, settings=settings)
    return message
