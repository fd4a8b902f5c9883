"""`deskctl db check`: invariants that must hold whatever crashed when.

Each check is one set-based query returning the offending ids, so it runs in seconds
on a million conversations.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Select, exists, func, select
from sqlalchemy.orm import aliased

from deskctl.models import (
    Attachment,
    Conversation,
    ConversationTag,
    Event,
    Message,
    Note,
    User,
    Watcher,
)

SAMPLE = 10


@dataclass(frozen=True)
class Check:
    name: str
    description: str
    query: Select  # a SELECT of offending ids


def _checks() -> list[Check]:
    c = Conversation
    linked = aliased(Conversation)
    return [
        Check("events_without_conversation", "events pointing at a missing conversation",
              select(Event.id).where(Event.conversation_id.is_not(None),
                                     ~exists().where(Conversation.id == Event.conversation_id))),
        Check("messages_without_conversation", "messages pointing at a missing conversation",
              select(Message.id).where(~exists().where(Conversation.id == Message.conversation_id))),
        Check("notes_without_conversation", "notes pointing at a missing conversation",
              select(Note.id).where(~exists().where(Conversation.id == Note.conversation_id))),
        Check("attachments_without_message", "attachments pointing at a missing message",
              select(Attachment.id).where(~exists().where(Message.id == Attachment.message_id))),
        Check("tags_without_conversation", "tags on a missing conversation",
              select(ConversationTag.conversation_id).where(
                  ~exists().where(Conversation.id == ConversationTag.conversation_id))),
        Check("watchers_without_user", "watchers that are not users",
              select(Watcher.conversation_id).where(~exists().where(User.id == Watcher.user_id))),
        Check("assignee_missing", "conversations assigned to a missing user",
              select(c.id).where(c.assignee_id.is_not(None), ~exists().where(User.id == c.assignee_id))),
        Check("open_without_assignee", "status open (claimed) but nobody assigned",
              select(c.id).where(c.status == "open", c.assignee_id.is_(None))),
        Check("invalid_status", "status outside new/open/pending/resolved/closed",
              select(c.id).where(c.status.not_in(("new", "open", "pending", "resolved", "closed")))),
        Check("closed_without_closed_at", "closed but no closing time",
              select(c.id).where(c.status == "closed", c.closed_at.is_(None))),
        Check("resolved_without_resolved_at", "resolved or closed but no resolution time",
              select(c.id).where(c.status.in_(("resolved", "closed")), c.resolved_at.is_(None))),
        Check("boomerang_on_active", "a boomerang on a conversation that is not pending/resolved",
              select(c.id).where(c.boomerang_at.is_not(None), c.status.not_in(("pending", "resolved")))),
        Check("linked_to_missing", "linked to a missing conversation",
              select(c.id).where(c.linked_to_id.is_not(None),
                                 ~exists().where(linked.id == c.linked_to_id))),
        Check("updated_before_created", "updated_at earlier than created_at",
              select(c.id).where(c.updated_at < c.created_at)),
    ]


def run_checks(session) -> list[dict]:
    """One record per check: name, problems (count), sample (first ids), description."""
    results = []
    for check in _checks():
        ids = list(session.scalars(check.query.limit(SAMPLE + 1)))
        count = len(ids)
        if count > SAMPLE:
            count = session.scalar(select(func.count()).select_from(check.query.subquery()))
        results.append({"check": check.name, "problems": count, "sample": ids[:SAMPLE],
                        "description": check.description})
    return results
