"""The right to erasure and retention (SPEC §12).

Erasing a conversation replaces its content with `[erased]` and keeps its shape: the
conversation row, its messages (direction, channel, times, ids used for threading),
events and counts stay, so reports of past periods do not change. What goes:

- message text, HTML, subject, the inbound author's name, cc and bcc;
- attachments (rows; the bytes on disk unless another message still refers to them);
- the conversation's subject and closing note, note texts and every note version;
- free text inside events (note texts, pending / qualify / close notes, transfer
  reasons, transcript addresses);
- the body and raw mail of outbox rows about the conversation.

Each erased conversation gets one `erased` event, which is also what makes the
`retention` job exactly-once: it selects only closed conversations without one.
`forget_contact` erases every conversation of the contact (and any other conversation
holding a message they wrote), the contact's own fields, and the quarantined raw mails
that carry their address.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from sqlalchemy import case, delete, exists, select, update

from deskctl.db.planner import not_indexed
from deskctl.errors import Forbidden
from deskctl.models import (
    Attachment,
    Contact,
    Conversation,
    Event,
    Message,
    Note,
    NoteVersion,
    Outbox,
    Quarantine,
)
from deskctl.services.conversations.events import SYSTEM
from deskctl.services.conversations.selection import chunks

ERASED = "[erased]"
BATCH = 500  # conversations per round of statements: bounded memory at any size

# Event data keys holding free text, by event kind (services/events.py conventions).
_EVENT_TEXT = {
    "note_added": ("text", "previous_text"), "note_edited": ("text", "previous_text"),
    "note_deleted": ("text", "previous_text"), "pending": ("note",), "closed": ("note",),
    "qualified": ("note",), "transferred": ("reason",), "transcript_sent": ("to",),
}


def erase_conversations(session, conversation_ids: Sequence[int], *, actor: str, now: datetime, settings,
                        cause: str) -> dict:
    """Erase the content of these conversations; returns counts. Set-based per batch."""
    counts = {"conversations": 0, "messages": 0, "attachments": 0, "notes": 0}
    digests: set[str] = set()
    if session.get_bind().dialect.name == "sqlite":
        # Freed and rewritten pages are zeroed, so the file keeps no erased bytes.
        session.connection().exec_driver_sql("PRAGMA secure_delete = ON")
    for batch in chunks(list(dict.fromkeys(conversation_ids)), BATCH):
        _erase_batch(session, batch, actor=actor, now=now, cause=cause, counts=counts, digests=digests)
    counts["files"] = _delete_unreferenced_files(session, digests, settings)
    if counts["conversations"]:
        from deskctl.services.views import search
        search.optimize(session)  # erased words leave the SQLite search index's pages too
    return counts


def _erase_batch(session, ids: list[int], *, actor: str, now: datetime, cause: str, counts: dict,
                 digests: set[str]) -> None:
    conn = session.connection()
    message_ids = select(Message.id).where(Message.conversation_id.in_(ids))
    digests.update(conn.execute(select(Attachment.sha256).where(Attachment.message_id.in_(message_ids))).scalars())
    counts["attachments"] += conn.execute(delete(Attachment).where(Attachment.message_id.in_(message_ids))).rowcount
    counts["messages"] += conn.execute(
        update(Message).where(Message.conversation_id.in_(ids))
        .values(text=ERASED, html=None, cc=[], bcc=[],
                subject=case((Message.subject.is_(None), None), else_=ERASED),
                author_name=case((Message.direction == "inbound", None), else_=Message.author_name))
        .execution_options(synchronize_session=False)).rowcount
    note_ids = select(Note.id).where(Note.conversation_id.in_(ids))
    conn.execute(update(NoteVersion).where(NoteVersion.note_id.in_(note_ids)).values(text=ERASED))
    counts["notes"] += conn.execute(update(Note).where(Note.conversation_id.in_(ids)).values(text=ERASED)
                                    .execution_options(synchronize_session=False)).rowcount
    conn.execute(update(Conversation).where(Conversation.id.in_(ids))
                 .values(subject=ERASED,
                         closing_note=case((Conversation.closing_note.is_(None), None), else_=ERASED))
                 .execution_options(synchronize_session=False))
    conn.execute(update(Outbox).where(Outbox.conversation_id.in_(ids))
                 .values(body=ERASED, raw=None, subject=ERASED,
                         recipient=case((Outbox.kind.in_(("email", "message")), ERASED),
                                        else_=Outbox.recipient)))
    _erase_event_texts(session, ids)
    conn.execute(Event.__table__.insert(), [
        {"conversation_id": cid, "actor": actor, "kind": "erased", "at": now, "data": {"cause": cause}}
        for cid in ids])
    counts["conversations"] += len(ids)


def event_texts_select(ids: list[int]):
    """The events of these conversations whose data hold text (through the conversation
    index: on the (kind, at) one SQLite walked every such event of the desk)."""
    return (select(Event.id, Event.kind, Event.data)
            .where(Event.conversation_id.in_(ids), not_indexed(Event.kind).in_(tuple(_EVENT_TEXT))))


def _erase_event_texts(session, ids: list[int]) -> None:
    conn = session.connection()
    rows = conn.execute(event_texts_select(ids)).all()
    changed = []
    for event_id, kind, data in rows:
        data = dict(data or {})
        keys = [k for k in _EVENT_TEXT[kind] if data.get(k) not in (None, "")]
        if keys:
            data.update(dict.fromkeys(keys, ERASED))
            changed.append({"_id": event_id, "_data": data})
    if changed:
        from sqlalchemy import bindparam

        table = Event.__table__
        conn.execute(table.update().where(table.c.id == bindparam("_id")).values(data=bindparam("_data")), changed)


def _delete_unreferenced_files(session, digests: set[str], settings) -> int:
    """Remove stored attachment bytes that no attachment row refers to any more. Runs
    before commit: a rollback then leaves at worst missing bytes of erased rows' peers,
    which is why only digests with no remaining reference at all are removed."""
    from deskctl.services.outbound.replies import attachment_path

    if not digests:
        return 0
    session.flush()
    still = set()
    for chunk in chunks(sorted(digests)):
        still.update(session.connection().execute(
            select(Attachment.sha256).where(Attachment.sha256.in_(chunk)).distinct()).scalars())
    removed = 0
    for digest in sorted(digests - still):
        path = attachment_path(settings, digest)
        try:
            path.unlink()
            removed += 1
        except FileNotFoundError:
            pass
    return removed


def forget_contact(session, actor, contact: Contact, *, now: datetime, settings) -> dict:
    """Erase a contact and everything they sent (admin only). Returns a record."""
    if not actor.is_admin:
        raise Forbidden("only an admin can erase a contact")
    conn = session.connection()
    email = contact.email
    own = select(Conversation.id).where(Conversation.contact_id == contact.id)
    written = select(Message.conversation_id).where(Message.author_contact_id == contact.id)
    ids = sorted(set(conn.execute(own).scalars()) | set(conn.execute(written).scalars()))
    counts = erase_conversations(session, ids, actor=actor.handle, now=now, settings=settings, cause="contact")
    counts["quarantined"] = _erase_quarantine(session, email) if email else 0
    contact_id = contact.id
    conn.execute(update(Contact).where(Contact.id == contact_id)
                 .values(name=ERASED, email=None, phone=None, account_id=None, attributes={})
                 .execution_options(synchronize_session=False))
    session.expire(contact)
    return {"contact_id": contact_id, **counts}


def _erase_quarantine(session, email: str) -> int:
    """Quarantined raw input that carries the address (case-insensitive), read in
    batches: the table holds bytes, which neither engine searches case-insensitively.
    An over-cap entry kept on disk is scanned in pieces and its file removed."""
    from deskctl.services.inbound.quarantine import disk_copy

    needle = email.lower().encode("utf-8")
    conn = session.connection()
    in_rows: list[int] = []
    on_disk: list[tuple[int, Path]] = []
    last = 0
    while True:
        rows = conn.execute(select(Quarantine.id, Quarantine.raw, Quarantine.filename).where(Quarantine.id > last)
                            .order_by(Quarantine.id).limit(200)).all()
        if not rows:
            break
        for row in rows:
            path = disk_copy(row)
            if path is not None:
                if _file_contains(path, needle):
                    on_disk.append((row.id, path))
            elif row.raw and needle in bytes(row.raw).lower():
                in_rows.append(row.id)
        last = rows[-1][0]
    for chunk in chunks(in_rows):
        conn.execute(update(Quarantine).where(Quarantine.id.in_(chunk)).values(raw=ERASED.encode()))
    for qid, path in on_disk:
        conn.execute(update(Quarantine).where(Quarantine.id == qid).values(raw=ERASED.encode(), filename=None))
        path.unlink(missing_ok=True)
    return len(in_rows) + len(on_disk)


def _file_contains(path: Path, needle: bytes, piece: int = 1 << 20) -> bool:
    """Case-insensitive search of a large file in bounded memory."""
    tail = b""
    try:
        with open(path, "rb") as fh:
            while block := fh.read(piece):
                window = tail + block.lower()
                if needle in window:
                    return True
                tail = window[-len(needle):]
    except FileNotFoundError:
        return False
    return False


def retention(session, *, now: datetime, settings) -> dict:
    """The `retention` job: erase closed conversations closed longer ago than
    `retention.closed_after`, oldest first, a batch at a time (memory stays flat)."""
    after = settings.retention_closed_after
    if after is None:
        return {"erased": 0}
    cutoff = now - after
    c = Conversation
    already = exists().where(Event.conversation_id == c.id, Event.kind == "erased")
    total = {"erased": 0, "messages": 0, "attachments": 0, "files": 0}
    while True:
        batch = list(session.connection().execute(
            select(c.id).where(c.status == "closed", c.closed_at < cutoff, ~already)
            .order_by(c.closed_at, c.id).limit(BATCH)).scalars())
        if not batch:
            break
        counts = erase_conversations(session, batch, actor=SYSTEM, now=now, settings=settings, cause="retention")
        total["erased"] += counts["conversations"]
        for key in ("messages", "attachments", "files"):
            total[key] += counts[key]
    return total


__all__ = ["ERASED", "erase_conversations", "forget_contact", "retention"]
