"""Watchers ("keep me informed") and the inbox (SPEC §1, §2).

`watch` and `unwatch` are idempotent: watching a conversation already watched (or
unwatching one not watched) changes nothing, records no event and is not an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import and_, case, delete, exists, or_, select

from deskctl.db.dml import insert_ignore
from deskctl.errors import BulkError, DeskError, NotFound
from deskctl.models import Conversation, Watcher
from deskctl.services.actor import Actor
from deskctl.services.conversations import events, permissions
from deskctl.services.conversations.selection import apply_sort, chunks, user_id_by_handle


def _check_targets(session, actor: Actor, ids: Sequence[int], settings) -> None:
    """Atomic: every id must exist and be in the actor's scope, else nothing changes."""
    found: set[int] = set()
    for chunk in chunks(list(ids)):
        found.update(session.scalars(select(Conversation.id).where(Conversation.id.in_(chunk))))
    failures: list[tuple[int, DeskError]] = [
        (i, NotFound(f"conversation not found: #{i}")) for i in ids if i not in found]
    existing = [i for i in ids if i in found]
    denied = set(permissions.forbidden_ids(session, actor, existing, settings))
    failures += [(i, permissions.forbidden_error(actor)) for i in existing if i in denied]
    if failures:
        order = {cid: n for n, cid in enumerate(ids)}
        failures.sort(key=lambda f: order[f[0]])
        raise BulkError(failures)


def _watched(session, user_id: int, ids: Sequence[int]) -> set[int]:
    out: set[int] = set()
    for chunk in chunks(list(ids)):
        out.update(session.scalars(
            select(Watcher.conversation_id).where(Watcher.user_id == user_id, Watcher.conversation_id.in_(chunk))))
    return out


def watch(session, actor: Actor, ids: Sequence[int], *, now: datetime, settings) -> list[dict]:
    """Make the actor a watcher of each conversation. Returns one record per id:
    {id, user, watching: True, changed}."""
    ids = list(dict.fromkeys(ids))
    _check_targets(session, actor, ids, settings)
    already = _watched(session, actor.id, ids)
    wanted = [i for i in ids if i not in already]
    # ON CONFLICT DO NOTHING: a concurrent `watch` of the same conversation is not a
    # conflict (watching is idempotent); RETURNING says which rows this call added.
    table = Watcher.__table__
    added = {row.conversation_id for row in insert_ignore(
        session, table, [{"conversation_id": i, "user_id": actor.id, "created_at": now} for i in wanted],
        returning=[table.c.conversation_id])} if wanted else set()
    new = [i for i in wanted if i in added]
    events.record_many(session, [{"conversation_id": i, "actor": actor.handle, "kind": "watched", "at": now,
                                  "data": {"user": actor.handle}} for i in new])
    return [{"id": i, "user": actor.handle, "watching": True, "changed": i in added} for i in ids]


def unwatch(session, actor: Actor, ids: Sequence[int], *, now: datetime, settings) -> list[dict]:
    """Stop watching. Not-watched ids are a no-op. Scope is not checked: anyone may stop
    following a conversation, even one that has since moved out of their reach."""
    ids = list(dict.fromkeys(ids))
    found: set[int] = set()
    for chunk in chunks(ids):
        found.update(session.scalars(select(Conversation.id).where(Conversation.id.in_(chunk))))
    missing: list[tuple[int, DeskError]] = [
        (i, NotFound(f"conversation not found: #{i}")) for i in ids if i not in found]
    if missing:
        raise BulkError(missing)
    removed: set[int] = set()
    table = Watcher.__table__
    for chunk in chunks(ids):
        # RETURNING: only the rows this call deleted count (a concurrent unwatch is a no-op).
        removed.update(session.scalars(
            delete(table).where(table.c.user_id == actor.id, table.c.conversation_id.in_(chunk))
            .returning(table.c.conversation_id)))
    gone = [i for i in ids if i in removed]
    events.record_many(session, [{"conversation_id": i, "actor": actor.handle, "kind": "unwatched", "at": now,
                                  "data": {"user": actor.handle}} for i in gone])
    return [{"id": i, "user": actor.handle, "watching": False, "changed": i in removed} for i in ids]


def inbox_select(session, actor: Actor, handle: str | None, *, sort: str | None = None, limit: int | None = None):
    """The ids of a user's working set: assigned or offered to them and not closed, plus
    watched (also not closed). Another user's inbox needs the supervisor or admin role."""
    if handle is None or handle == actor.handle:
        user_id = actor.id
    else:
        permissions.require_supervisor(actor, "another user's inbox")
        user_id = user_id_by_handle(session, handle)
    c = Conversation
    watched = exists().where(Watcher.conversation_id == c.id, Watcher.user_id == user_id)
    offered = c.offered_to == user_id
    stmt = select(c.id).where(and_(c.status != "closed", or_(c.assignee_id == user_id, watched, offered)))
    # Offers first (SPEC §10): they expire, the rest waits.
    stmt = apply_sort(stmt.order_by(case((offered, 0), else_=1)), sort or "-priority,created")
    if limit is not None:
        stmt = stmt.limit(limit)
    return stmt
