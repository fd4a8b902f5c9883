"""`deskctl new`: a conversation created by an agent (phone call, walk-in, outbound email).

TEXT is, by default, the contact's request as the agent took it down (a phone call, a
walk-in, a letter): an *inbound* message authored by the contact, so the SLA's first
response runs from it and `reply` answers it. With `outbound=True` TEXT is the agent's
own first message to the contact, sent on the channel like `reply` (on email it goes
out through the outbox); first response is then already given.

Either way the conversation starts `new` and unassigned in the given group (if any),
with a `created` event {channel, source: "agent"} by the acting agent.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from deskctl.errors import UsageError
from deskctl.models import Conversation, Group
from deskctl.services.actor import Actor
from deskctl.services.conversations import events
from deskctl.services.conversations.selection import group_id_by_name
from deskctl.services.directory import contacts
from deskctl.services.inbound import pipeline
from deskctl.services.sla import deadlines as sla
from deskctl.vocab import DEFAULT_PRIORITY

SUBJECT_WIDTH = 78


def default_subject(text: str) -> str:
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return first if len(first) <= SUBJECT_WIDTH else first[: SUBJECT_WIDTH - 1].rstrip() + "…"


def create(session, actor: Actor, *, channel: str, contact_ref: str, text: str, now: datetime, settings,
           subject: str | None = None, group: str | None = None, priority: str | None = None,
           outbound: bool = False, contact_name: str | None = None) -> tuple[int, dict, bool]:
    """Create the conversation and its first message. Returns (conversation id, contact
    record, contact created)."""
    if channel not in settings.channels:
        raise UsageError(f"invalid channel {channel!r} (choose from {', '.join(settings.channels)})")
    priority = priority or DEFAULT_PRIORITY
    if text is None or not text.strip():
        raise UsageError("the message text is empty")
    group_id = group_id_by_name(session, group) if group else None
    contact, created = contacts.resolve_or_create(session, contact_ref, now=now, name=contact_name)
    subject = (subject or "").strip() or default_subject(text)
    if outbound:
        cid = _create_outbound(session, actor, channel=channel, subject=subject, priority=priority,
                               group_id=group_id, contact_id=contact.id, text=text, now=now, settings=settings)
    else:
        # The contact's request as the agent took it down: an inbound message like any
        # other (the inbound pipeline), whose events name the agent, not "system".
        [outcome] = pipeline.store(session, [pipeline.Incoming(
            kind=pipeline.AGENT, channel=channel, external_id=None, text=text, at=now, subject=subject,
            contact_id=contact.id, email=contact.email, message_type="agent_entry", group_id=group_id,
            priority=priority)], now=now, settings=settings, source="agent", actor=actor.handle)
        # No external id: never a duplicate nor rejected, so always `created`.
        assert outcome.conversation_id is not None, outcome
        cid = outcome.conversation_id
    return cid, contacts.record_for(session, contact), created


def _create_outbound(session, actor: Actor, *, channel: str, subject: str, priority: str, group_id: int | None,
                     contact_id: int, text: str, now: datetime, settings) -> int:
    """The conversation, then the agent's first message sent like `reply`."""
    from deskctl.services.outbound import replies

    location_id = session.scalar(select(Group.location_id).where(Group.id == group_id)) if group_id else None
    conversation = Conversation(
        subject=subject, channel=channel, status="new", priority=priority, assignee_id=None, group_id=group_id,
        location_id=location_id, contact_id=contact_id, created_at=now, updated_at=now, sla_state="none",
    )
    session.add(conversation)
    session.flush()
    events.record(session, conversation_id=conversation.id, actor=actor.handle, kind="created", at=now,
                  data={"channel": channel, "source": "agent"})
    replies.reply(session, actor, conversation.id, now=now, settings=settings, text=text)
    sla.refresh(session, [conversation.id], now=now, settings=settings)
    return conversation.id
