"""Set-based sweeps run by the scheduler (SPEC §5): boomerang, auto-close, auto-unassign.
(The SLA sweep is `sla.sweep`.)

Each sweep selects the candidates with one indexed query, then changes them with a
conditional UPDATE ... WHERE id IN (chunk) AND <the condition again> RETURNING id, so
only rows that still qualify change: a rerun, or a command that changed a row in the
meantime, makes it a no-op for that row. Events go in with one executemany INSERT per
chunk, notifications with one INSERT ... ON CONFLICT DO NOTHING (de-duplication keys),
and the SLA of the changed conversations is refreshed set-based.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from sqlalchemy import and_, case, func, insert, or_, select, update

from deskctl.db.bulk import execute_many
from deskctl.db.idlist import id_in
from deskctl.models import Conversation, Event, User, Watcher
from deskctl.services.conversations.events import SYSTEM
from deskctl.services.conversations.selection import chunks
from deskctl.services.outbound import notifications
from deskctl.services.sla import deadlines as sla

RETURNABLE = ("pending", "resolved")


def _update_returning(session, stmt) -> list[int]:
    return [row[0] for row in session.connection().execute(stmt.returning(Conversation.id))]


def _events(session, rows: list[dict]) -> None:
    execute_many(session.connection(), insert(Event.__table__), rows)


def _notify(session, per_conversation: dict[int, set[int]], *, event: str, key: dict[int, str],
            subject: dict[int, str], body: dict[int, str], now: datetime) -> int:
    """Queue one notification per (conversation, user); returns how many were new."""
    user_ids = {uid for uids in per_conversation.values() for uid in uids}
    if not user_ids:
        return 0
    users = {u.id: u for u in session.connection().execute(
        select(User.id, User.handle, User.email).where(User.id.in_(user_ids), User.active.is_(True)))}
    rows = []
    for cid, uids in per_conversation.items():
        for uid in sorted(uids):
            user = users.get(uid)
            if user is None:
                continue
            rows.append({
                "kind": "notification", "dedupe_key": f"{event}:{key[cid]}:user:{uid}",
                "conversation_id": cid, "user_id": uid, "recipient": user.email or user.handle,
                "subject": subject[cid], "body": body[cid], "status": "queued", "attempts": 0,
                "next_attempt_at": now, "created_at": now,
            })
    return notifications.insert_outbox(session, rows)


# -- boomerang ---------------------------------------------------------------------------

def boomerang(session, *, now: datetime, settings) -> dict:
    """Every pending or resolved conversation whose boomerang time has passed goes back to
    `new`: boomerang cleared, event `boomerang_returned`, a notification to its assignee
    and watchers. A stale boomerang on a conversation in another status is just cleared."""
    c = Conversation
    counts = {"returned": 0, "cleared": 0, "notifications": 0}
    candidates = session.connection().execute(
        select(c.id, c.status, c.boomerang_at, c.subject, c.assignee_id)
        .where(c.boomerang_at <= now).order_by(c.boomerang_at, c.id)).all()
    stale = [r.id for r in candidates if r.status not in RETURNABLE]
    for chunk in chunks(stale):
        counts["cleared"] += len(_update_returning(session, (
            update(c).where(id_in(c.id, chunk), c.boomerang_at <= now, c.status.not_in(RETURNABLE))
            .values(boomerang_at=None).execution_options(synchronize_session=False))))
    due = [r for r in candidates if r.status in RETURNABLE]
    returned: list[int] = []
    for chunk in chunks(due):
        by_id = {r.id: r for r in chunk}
        won = _update_returning(session, (
            update(c).where(id_in(c.id, by_id), c.boomerang_at <= now, c.status.in_(RETURNABLE))
            .values(status="new", boomerang_at=None, pending_since=None, updated_at=now, version=c.version + 1)
            .execution_options(synchronize_session=False)))
        if not won:
            continue
        returned.extend(won)
        _events(session, [{
            "conversation_id": cid, "actor": SYSTEM, "kind": "boomerang_returned", "at": now,
            "data": {"previous_status": by_id[cid].status, "boomerang_at": by_id[cid].boomerang_at.isoformat()},
        } for cid in won])
        recipients: dict[int, set[int]] = defaultdict(set)
        for cid in won:
            if by_id[cid].assignee_id:
                recipients[cid].add(by_id[cid].assignee_id)
        for cid, uid in session.connection().execute(
                select(Watcher.conversation_id, Watcher.user_id).where(id_in(Watcher.conversation_id, won))):
            recipients[cid].add(uid)
        # The reminder written with `pending --note` (SPEC §10) comes back with it.
        from deskctl.services.conversations.events import reminders

        notes = reminders(session, [cid for cid in won if by_id[cid].status == "pending"])
        counts["notifications"] += _notify(
            session, recipients, event="boomerang_returned", now=now,
            key={cid: f"{cid}:{by_id[cid].boomerang_at.isoformat()}" for cid in won},
            subject={cid: f"[#{cid}] back from {by_id[cid].status}: {by_id[cid].subject}" for cid in won},
            body={cid: f"Conversation #{cid} came back to `new`: its boomerang time "
                       f"{by_id[cid].boomerang_at.strftime('%Y-%m-%d %H:%M UTC')} has passed."
                       + (f"\nReminder: {notes[cid]}" if cid in notes else "") for cid in won})
    counts["returned"] = len(returned)
    sla.refresh(session, returned, now=now, settings=settings)
    _expire(session, returned + stale)
    return counts


# -- auto-close -------------------------------------------------------------------------

def auto_close(session, *, now: datetime, settings) -> dict:
    """Close `resolved` conversations untouched (updated_at) for `jobs.auto-close.after`.
    A resolved conversation with a boomerang set is left for the boomerang."""
    c = Conversation
    after = settings.jobs["auto-close"].after
    counts = {"closed": 0}
    if after is None:
        return counts
    cutoff = now - after
    condition = and_(c.status == "resolved", c.updated_at <= cutoff, c.boomerang_at.is_(None))
    ids = list(session.scalars(select(c.id).where(condition).order_by(c.updated_at, c.id)))
    closed: list[int] = []
    for chunk in chunks(ids):
        won = _update_returning(session, (
            update(c).where(id_in(c.id, chunk), condition)
            .values(status="closed", closed_at=now, updated_at=now, version=c.version + 1)
            .execution_options(synchronize_session=False)))
        closed.extend(won)
        _events(session, [{"conversation_id": cid, "actor": SYSTEM, "kind": "auto_closed", "at": now,
                           "data": {"after_s": int(after.total_seconds())}} for cid in won])
    counts["closed"] = len(closed)
    sla.refresh(session, closed, now=now, settings=settings)
    from deskctl.services import automations

    automations.on_events(session, "closed", closed, now=now, settings=settings)
    _expire(session, closed)
    return counts


# -- auto-unassign (RONA) ----------------------------------------------------------------

def auto_unassign(session, *, now: datetime, settings) -> dict:
    """`open` conversations whose assignee has not replied within `after` of claiming (or
    of the last inbound message, if later) go back to their group: assignee cleared,
    status `new`, event `auto_unassigned`, a notification to the former assignee.
    Off unless `jobs.auto-unassign.after` is set."""
    c = Conversation
    after = settings.jobs["auto-unassign"].after
    counts = {"unassigned": 0, "notifications": 0}
    if after is None:
        return counts
    cutoff = now - after
    claimed = func.coalesce(c.claimed_at, c.created_at)
    inbound = func.coalesce(c.last_inbound_at, claimed)
    waiting_since = case((inbound > claimed, inbound), else_=claimed)
    condition = and_(
        c.status == "open", c.assignee_id.is_not(None), waiting_since <= cutoff,
        or_(c.last_outbound_at.is_(None), c.last_outbound_at < waiting_since),
    )
    candidates = session.connection().execute(
        select(c.id, c.assignee_id, c.subject, User.handle).join(User, User.id == c.assignee_id)
        .where(condition).order_by(c.id)).all()
    done: list[int] = []
    for chunk in chunks(candidates):
        by_id = {r.id: r for r in chunk}
        won = _update_returning(session, (
            # a new claim meanwhile moves claimed_at, so the condition no longer holds
            update(c).where(id_in(c.id, by_id), condition)
            .values(status="new", assignee_id=None, claimed_at=None, updated_at=now, version=c.version + 1)
            .execution_options(synchronize_session=False)))
        if not won:
            continue
        done.extend(won)
        _events(session, [{"conversation_id": cid, "actor": SYSTEM, "kind": "auto_unassigned", "at": now,
                           "data": {"from_user": by_id[cid].handle, "after_s": int(after.total_seconds())}}
                          for cid in won])
        counts["notifications"] += _notify(
            session, {cid: {by_id[cid].assignee_id} for cid in won}, event="auto_unassigned", now=now,
            key={cid: f"{cid}:{now.isoformat()}" for cid in won},
            subject={cid: f"[#{cid}] returned to its group: {by_id[cid].subject}" for cid in won},
            body={cid: f"Conversation #{cid} had no reply within {int(after.total_seconds() // 60)} minutes "
                       "of being claimed and went back to its group." for cid in won})
    counts["unassigned"] = len(done)
    sla.refresh(session, done, now=now, settings=settings)
    _expire(session, done)
    return counts


def _expire(session, ids) -> None:
    """ORM objects loaded before the UPDATE must not keep the old values."""
    ids = set(ids)
    for obj in list(session.identity_map.values()):
        if isinstance(obj, Conversation) and obj.id in ids:
            session.expire(obj)
