"""Per-user read state (SPEC §10): a conversation is unread for a user when it has an
inbound message newer than their last read of its thread (`show`, thread view)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import and_, exists, not_, select

from deskctl.db.dml import dialect_insert
from deskctl.models import Conversation, ReadMark
from deskctl.services.conversations.selection import chunks

C = Conversation


def unread_clause(user_id: int | None):
    """WHERE clause over conversations: unread for `user_id` (None: no one has read any)."""
    read = exists().where(ReadMark.user_id == user_id, ReadMark.conversation_id == C.id,
                          ReadMark.read_at >= C.last_inbound_at)
    return and_(C.last_inbound_at.is_not(None), not_(read))


def mark_read(session, user_id: int, conversation_id: int, *, now: datetime) -> None:
    """The user has read the thread as it is now (every message shown, also one stamped
    later than the clock, as in a replay)."""
    last_inbound = session.scalar(select(C.last_inbound_at).where(C.id == conversation_id))
    read_at = max(now, last_inbound) if last_inbound else now
    stmt = dialect_insert(session)(ReadMark).values(user_id=user_id, conversation_id=conversation_id,
                                                    read_at=read_at)
    session.execute(stmt.on_conflict_do_update(index_elements=["user_id", "conversation_id"],
                                               set_={"read_at": read_at}))


def unread_ids(session, user_id: int, ids: Sequence[int]) -> set[int]:
    out: set[int] = set()
    for chunk in chunks(list(ids), 1000):
        out.update(session.scalars(select(C.id).where(C.id.in_(chunk), unread_clause(user_id))))
    return out


def with_unread(session, user_id: int, records, batch: int = 1000):
    """Records (streamed) with an `unread` field for `user_id`."""
    pending: list[dict] = []

    def flush():
        unread = unread_ids(session, user_id, [r["id"] for r in pending])
        for record in pending:
            record["unread"] = record["id"] in unread
            yield record

    for record in records:
        pending.append(record)
        if len(pending) >= batch:
            yield from flush()
            pending = []
    yield from flush()


def unread_latest(session, user_id: int, conversation_id: int) -> datetime | None:
    """When the latest inbound message arrived, if `user_id` has not read it; else None."""
    return session.scalar(select(C.last_inbound_at).where(C.id == conversation_id, unread_clause(user_id)))
