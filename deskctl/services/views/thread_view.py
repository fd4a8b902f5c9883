"""The thread of one conversation for `show`: messages, notes and events in order."""

from __future__ import annotations

from sqlalchemy import select

from deskctl.errors import NotFound
from deskctl.models import Attachment, Contact, Event, Message, Note, User
from deskctl.services.views.conversation_records import records_for_ids


def conversation_record(session, conversation_id: int) -> dict:
    records = records_for_ids(session, [conversation_id])
    if not records:
        raise NotFound(f"conversation not found: #{conversation_id}")
    return records[0]


def thread_record(session, conversation_id: int, *, notes: bool = True, audit: bool = False) -> dict:
    """The conversation record plus `messages` (inbound, outbound and, unless
    notes=False, internal notes) in time order, and with audit=True `events`."""
    record = conversation_record(session, conversation_id)
    if record["status"] == "pending":
        from deskctl.services.conversations.events import reminders

        record["reminder"] = reminders(session, [conversation_id]).get(conversation_id)
    items = []
    messages = session.execute(
        select(Message, User.handle, Contact.name, Contact.email)
        .outerjoin(User, User.id == Message.author_user_id)
        .outerjoin(Contact, Contact.id == Message.author_contact_id)
        .where(Message.conversation_id == conversation_id)
        .order_by(Message.created_at, Message.id)
    ).all()
    attachments: dict[int, list[dict]] = {}
    if messages:
        for att in session.scalars(
            select(Attachment).where(Attachment.message_id.in_([m[0].id for m in messages]))
            .order_by(Attachment.id)
        ):
            attachments.setdefault(att.message_id, []).append(
                {"filename": att.filename, "content_type": att.content_type, "size": att.size,
                 "sha256": att.sha256})
    for message, handle, contact_name, contact_email in messages:
        author = handle or message.author_name or contact_name or contact_email
        items.append({
            "id": message.id, "kind": message.direction, "author": author, "at": message.created_at,
            "text": message.text, "html": message.html, "attachments": attachments.get(message.id, []),
            "external_id": message.external_id, "channel": message.channel, "cc": message.cc or [],
            "sent_at": message.sent_at,
            "type": message.message_type, "url": message.url,
        })
    if notes:
        for note, handle in session.execute(
            select(Note, User.handle).outerjoin(User, User.id == Note.author_id)
            .where(Note.conversation_id == conversation_id, Note.deleted_at.is_(None))
        ):
            items.append({
                "id": note.id, "kind": "note", "author": handle, "at": note.created_at, "text": note.text,
                "html": None, "attachments": [], "external_id": None, "edited": note.updated_at != note.created_at,
            })
    items.sort(key=lambda item: (item["at"], item["kind"] == "note", item["id"]))
    record["messages"] = items
    if audit:
        record["events"] = [
            event_record(e) for e in session.scalars(
                select(Event).where(Event.conversation_id == conversation_id).order_by(Event.at, Event.id))
        ]
    return record


def event_record(event: Event) -> dict:
    return {"id": event.id, "conversation_id": event.conversation_id, "at": event.at, "actor": event.actor,
            "kind": event.kind, "data": event.data or {}}
