"""Reading the audit trail (`deskctl audit`): event records (SPEC §7), streamed.

Events are printed oldest first (by id: the order they were written). `limit` keeps
the most recent N matching events, still printed oldest first.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime

from sqlalchemy import select

from deskctl.errors import NotFound
from deskctl.models import Conversation, Event, User
from deskctl.services.conversations.events import SYSTEM

BATCH = 2000


def parse_kinds(values: Sequence[str]) -> tuple[str, ...]:
    """`--kind a,b --kind c` → (a, b, c); the names are checked at the edge (vocab.EVENT_KINDS)."""
    kinds: list[str] = []
    for value in values or ():
        kinds.extend(k.strip() for k in value.split(",") if k.strip())
    return tuple(dict.fromkeys(kinds))


def events_select(session, *, conversation_id: int | None = None, since: datetime | None = None,
                  until: datetime | None = None, actors: Sequence[str] = (), kinds: Sequence[str] = (),
                  limit: int | None = None):
    if conversation_id is not None and session.get(Conversation, conversation_id) is None:
        raise NotFound(f"conversation not found: #{conversation_id}")
    for handle in actors:
        if handle != SYSTEM and session.scalar(select(User.id).where(User.handle == handle)) is None:
            raise NotFound(f"user not found: {handle}")
    e = Event
    stmt = select(e.id, e.conversation_id, e.at, e.actor, e.kind, e.data)
    if conversation_id is not None:
        stmt = stmt.where(e.conversation_id == conversation_id)
    if since is not None:
        stmt = stmt.where(e.at >= since)
    if until is not None:
        stmt = stmt.where(e.at < until)
    if actors:
        stmt = stmt.where(e.actor.in_(list(actors)))
    if kinds:
        stmt = stmt.where(e.kind.in_(list(kinds)))
    if limit is not None:
        latest = stmt.order_by(e.id.desc()).limit(limit).subquery()
        return select(latest).order_by(latest.c.id)
    return stmt.order_by(e.id)


def event_records(session, stmt) -> Iterator[dict]:
    result = session.execute(stmt.execution_options(yield_per=BATCH))
    for partition in result.partitions(BATCH):
        for row in partition:
            yield {"id": row.id, "conversation_id": row.conversation_id, "at": row.at, "actor": row.actor,
                   "kind": row.kind, "data": row.data or {}}
