"""Transcripts: a conversation's history emailed to an address (`close --transcript-to`).

The history is the inbound and outbound messages in order and the closing note. Internal
notes live in their own table and are never read here, so they cannot leak.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select

from deskctl.errors import NotFound
from deskctl.models import Attachment, Contact, Conversation, Message, User
from deskctl.services.addresses import check_address
from deskctl.services.conversations import events
from deskctl.services.outbound import notifications
from deskctl.services.outbound.replies import (
    build_email,
    new_message_id,
    tagged_subject,
    to_bytes,
)


def transcript_text(session, conversation: Conversation, *, tz: str) -> str:
    zone = ZoneInfo(tz)
    rows = session.execute(
        select(Message, User.name, User.handle, Contact.name, Contact.email)
        .outerjoin(User, User.id == Message.author_user_id)
        .outerjoin(Contact, Contact.id == Message.author_contact_id)
        .where(Message.conversation_id == conversation.id)
        .order_by(Message.created_at, Message.id)
    ).all()
    files: dict[int, list[str]] = {}
    if rows:
        for message_id, filename in session.execute(
            select(Attachment.message_id, Attachment.filename)
            .where(Attachment.message_id.in_([r[0].id for r in rows])).order_by(Attachment.id)
        ):
            files.setdefault(message_id, []).append(filename)
    lines = [f"Conversation #{conversation.id}: {conversation.subject or '(no subject)'}",
             f"Channel: {conversation.channel}", ""]
    for message, user_name, handle, contact_name, contact_email in rows:
        if message.direction == "outbound":
            who = user_name or handle or "support"
        else:
            who = message.author_name or contact_name or contact_email or "contact"
        when = message.created_at.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")
        lines.append(f"--- {when}, {who} ({'reply' if message.direction == 'outbound' else 'message'}) ---")
        lines.append((message.text or "").rstrip("\n"))
        for name in files.get(message.id, []):
            lines.append(f"[attachment: {name}]")
        lines.append("")
    if conversation.closing_note:
        lines += ["--- Closing note ---", conversation.closing_note.rstrip("\n"), ""]
    return "\n".join(lines)


def queue_transcript(session, conversation_id: int, to_address: str, *, actor: str, now: datetime,
                     settings) -> None:
    """Queue the conversation's history (inbound and outbound messages, never internal
    notes) plus its closing note as one email to `to_address`, and record
    `transcript_sent`."""
    address = check_address(to_address, "the transcript", option="transcript_to")
    conversation = session.get(Conversation, conversation_id)
    if conversation is None:
        raise NotFound(f"conversation not found: #{conversation_id}")
    session.flush()  # the caller may just have set the closing note
    text = transcript_text(session, conversation, tz=settings.timezone)
    subject = tagged_subject(conversation_id, conversation.subject, "Transcript: ")
    message_id = new_message_id(settings)
    key = f"transcript:{message_id}"
    raw = to_bytes(build_email(settings, message_id=message_id, to=address, subject=subject, text=text, now=now,
                               dedupe_key=key, automatic=True))
    notifications.enqueue(session, kind="email", dedupe_key=key, recipient=address, subject=subject, body=text,
                          now=now, conversation_id=conversation_id, raw=raw)
    events.record(session, conversation_id=conversation_id, actor=actor, kind="transcript_sent", at=now,
                  data={"to": address})
