"""Internal notes (SPEC §1): visible to agents only, never to the contact.

Every text a note has had is kept in `note_versions` (version 1 is the original), and
each add/edit/delete records an event carrying the text and the previous text, so the
audit trail holds the whole history even after a delete (a delete only stamps
`deleted_at`; the row and its versions stay).

Who may:
- add: any user whose scope (services/permissions) covers the conversation;
- edit/delete: the note's author (always: their own words), or a supervisor/admin whose
  scope covers the conversation. Anyone else: exit 5.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update

from deskctl.errors import Conflict, Forbidden, NotFound, UsageError
from deskctl.models import Conversation, Note, NoteVersion, User, Watcher
from deskctl.services.actor import Actor
from deskctl.services.conversations import events, permissions
from deskctl.services.outbound import notifications

MAX_LENGTH = 100_000


def _touch(session, conversation_id: int, now: datetime) -> None:
    """Bump the conversation's updated_at (a note is activity) with a plain UPDATE that
    leaves its optimistic `version` alone: a note changes no conversation state, so it
    must neither lose to nor defeat a concurrent claim/transfer/close (no exit 4 here)."""
    session.execute(update(Conversation.__table__).where(Conversation.__table__.c.id == conversation_id)
                    .values(updated_at=now))


def note_record(note: Note, author: str | None) -> dict:
    return {"id": note.id, "conversation_id": note.conversation_id, "author": author, "at": note.created_at,
            "text": note.text, "updated_at": note.updated_at, "deleted_at": note.deleted_at}


def _check_text(text: str | None) -> str:
    if text is None or not text.strip():
        raise UsageError("the note is empty")
    if len(text) > MAX_LENGTH:
        raise UsageError(f"the note is too long ({len(text)} characters, at most {MAX_LENGTH})")
    return text


def add_note(session, actor: Actor, conversation_id: int, text: str, *, now: datetime, settings,
             event_id: int | None = None, notify: bool = True) -> dict:
    """Add a note; notifies the assignee and watchers (not the author)."""
    text = _check_text(text)
    conversation = permissions.conversation_for(session, actor, conversation_id, settings)
    note = Note(conversation_id=conversation_id, author_id=actor.id, text=text, event_id=event_id,
                created_at=now, updated_at=now)
    session.add(note)
    session.flush()
    _touch(session, conversation_id, now)
    session.add(NoteVersion(note_id=note.id, version=1, text=text, author_id=actor.id, at=now))
    event = events.record(session, conversation_id=conversation_id, actor=actor.handle, kind="note_added", at=now,
                          data={"note_id": note.id, "text": text, "previous_text": None})
    if notify:
        watchers = session.scalars(select(Watcher.user_id).where(Watcher.conversation_id == conversation_id))
        recipients = {conversation.assignee_id, *watchers} - {actor.id}
        first_line = text.strip().splitlines()[0][:120]
        notifications.notify_users(
            session, recipients, conversation_id=conversation_id, event="note_added",
            subject=f"[#{conversation_id}] note from {actor.handle}: {first_line}", body=text, now=now,
            key=str(event.id))
    return note_record(note, actor.handle)


def _load(session, actor: Actor, note_id: int, settings, verb: str) -> tuple[Note, str | None, Conversation]:
    # The note row is locked (PostgreSQL; SQLite writers are serialised anyway), so two
    # concurrent edits apply one after the other and each records the true previous text.
    row = session.execute(
        select(Note, User.handle).outerjoin(User, User.id == Note.author_id).where(Note.id == note_id)
        .with_for_update(of=Note)
    ).first()
    if row is None:
        raise NotFound(f"note not found: {note_id}")
    note, author = row
    conversation = session.get(Conversation, note.conversation_id)
    if note.author_id != actor.id:
        if not actor.is_supervisor:
            raise Forbidden(f"only the author ({author}) or a supervisor/admin may {verb} note {note_id} "
                            f"({actor.handle} is {actor.role})")
        if permissions.forbidden_ids(session, actor, [note.conversation_id], settings):
            raise permissions.forbidden_error(actor)
    if note.deleted_at is not None:
        raise Conflict(f"note {note_id} was deleted; it can no longer be changed")
    return note, author, conversation


def _next_version(session, note_id: int) -> int:
    return (session.scalar(select(func.max(NoteVersion.version)).where(NoteVersion.note_id == note_id)) or 0) + 1


def edit_note(session, actor: Actor, note_id: int, text: str, *, now: datetime, settings) -> tuple[dict, bool]:
    """Replace a note's text, keeping the old one as a version. Returns (record, changed):
    the same text again changes nothing."""
    text = _check_text(text)
    note, author, conversation = _load(session, actor, note_id, settings, "edit")
    if note.text == text:
        return note_record(note, author), False
    previous = note.text
    note.text = text
    note.updated_at = now
    _touch(session, note.conversation_id, now)
    session.add(NoteVersion(note_id=note.id, version=_next_version(session, note.id), text=text,
                            author_id=actor.id, at=now))
    session.flush()
    events.record(session, conversation_id=note.conversation_id, actor=actor.handle, kind="note_edited", at=now,
                  data={"note_id": note.id, "text": text, "previous_text": previous})
    return note_record(note, author), True


def delete_note(session, actor: Actor, note_id: int, *, now: datetime, settings) -> dict:
    """Hide a note from the thread; its row and versions stay for the audit trail."""
    note, author, conversation = _load(session, actor, note_id, settings, "delete")
    note.deleted_at = now
    note.updated_at = now
    _touch(session, note.conversation_id, now)
    session.flush()
    events.record(session, conversation_id=note.conversation_id, actor=actor.handle, kind="note_deleted", at=now,
                  data={"note_id": note.id, "text": None, "previous_text": note.text})
    return note_record(note, author)


def note_versions(session, note_id: int) -> list[dict]:
    """Every version of a note, oldest first (for tests and `audit`)."""
    rows = session.execute(
        select(NoteVersion, User.handle).outerjoin(User, User.id == NoteVersion.author_id)
        .where(NoteVersion.note_id == note_id).order_by(NoteVersion.version)
    )
    return [{"note_id": v.note_id, "version": v.version, "text": v.text, "author": h, "at": v.at} for v, h in rows]
