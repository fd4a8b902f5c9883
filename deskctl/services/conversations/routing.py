"""Routing (SPEC §10): waiting conversations offered or assigned to available agents.

One pass (`route`), used by the `route` job, by `availability set available` / `login`
and by `decline`:

1. withdraw expired offers (event `offer_expired`, the agent to `rona`, the group's
   supervisors notified); this happens in every mode, so offers left over from an
   `offer` desk switched back to `pull` do not hang forever;
2. in `pull` mode stop there;
3. plan in memory: each group's waiting conversations (new, unassigned, not offered),
   most urgent first (`lifecycle.urgency_order`), go to the group's `available` members
   with free capacity on the conversation's channel, least loaded first, then longest
   since their last routing; never to an agent who declined that conversation;
4. write agent by agent. The database guards the races: on PostgreSQL the agent's user
   row is locked (`FOR UPDATE SKIP LOCKED`: an agent another transaction holds is left
   to it) before their load is counted again, so two passes never push one agent over
   capacity; the conversation rows are taken with `FOR UPDATE SKIP
   LOCKED` (a row another pass or a `claim` holds is left for the next pass, and no two
   passes wait on each other's rows); and the UPDATE itself is conditional (still new,
   unassigned, not offered), so nothing is ever given to two agents. Every write bumps
   `version`, so a `claim` that read the row before loses with exit 4.

Services never commit: the caller owns the transaction.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, case, func, or_, select, update

from deskctl.errors import Conflict, NotFound
from deskctl.models import Conversation, Event, GroupMember, User
from deskctl.services.conversations import events
from deskctl.services.conversations.selection import chunks
from deskctl.services.outbound import notifications
from deskctl.services.sla import deadlines as sla
from deskctl.vocab import PRIORITIES, SUPERVISOR_ROLES

C = Conversation


def waiting_clause():
    """A conversation routing may hand out: new, nobody holds it, nobody is offered it."""
    return and_(C.status == "new", C.assignee_id.is_(None), C.offered_to.is_(None))


def withdraw_offer_values() -> dict:
    """The SET values that withdraw an offer (every verb that moves a conversation)."""
    return {"offered_to": None, "offer_expires_at": None}


@dataclass
class _Agent:
    id: int
    handle: str
    order: tuple  # (0, last routed) before this pass, (1, n) once this pass gave them work


@dataclass(frozen=True)
class _Waiting:
    id: int
    group_id: int
    channel: str
    key: tuple  # urgency: the sort key of lifecycle.urgency_order, in Python


def _is_pg(session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


# A pass whose planned rows were taken by a concurrent pass or claim plans again, from
# what has been committed since, at most this many times (the next job run does the rest).
ATTEMPTS = 3


def route(session, *, now: datetime, settings, group_ids: Iterable[int] | None = None) -> dict:
    """One routing pass; `group_ids` limits it to some groups. Returns counts."""
    counts = {"expired": expire_offers(session, now=now, settings=settings), "routed": 0, "offered": 0}
    if settings.routing.mode == "pull":
        return counts
    groups = None if group_ids is None else sorted(set(group_ids))
    key = "offered" if settings.routing.mode == "offer" else "routed"
    for _ in range(ATTEMPTS):
        given, lost = _pass(session, groups, now=now, settings=settings)
        counts[key] += given
        if not lost:
            break
    return counts


def _pass(session, groups, *, now: datetime, settings) -> tuple[int, bool]:
    """Plan and write once: (conversations given, whether some planned ones were lost)."""
    members = _available_members(session, groups)
    if not members:
        return 0, False
    # Nothing waiting in their groups: stop before counting anyone's load (the idle run).
    if session.execute(select(C.id).where(waiting_clause(), C.group_id.in_(sorted(members))).limit(1)).first() is None:
        return 0, False
    loads = _loads(session, {a.id for agents in members.values() for a in agents})
    capacity = settings.routing.capacity_for
    candidates = _candidates(session, members, loads, settings)
    if not candidates:
        return 0, False
    declined = _declined(session, [w.id for ws in candidates.values() for w in ws])

    totals: dict[int, int] = defaultdict(int)
    for (uid, _), n in loads.items():
        totals[uid] += n
    plan: dict[int, list[_Waiting]] = defaultdict(list)
    turn = 0
    for gid in sorted(candidates):
        agents = members[gid]
        for conv in sorted(candidates[gid], key=lambda w: w.key):
            cap = capacity(conv.channel)
            eligible = [a for a in agents if loads[(a.id, conv.channel)] < cap
                        and (conv.id, a.handle) not in declined]
            if not eligible:
                continue
            agent = min(eligible, key=lambda a: (totals[a.id], a.order, a.id))
            plan[agent.id].append(conv)
            loads[(agent.id, conv.channel)] += 1
            totals[agent.id] += 1
            turn += 1
            agent.order = (1, turn)
    handles = {a.id: a.handle for agents in members.values() for a in agents}
    given = _write(session, plan, handles, now=now, settings=settings)
    return given, given < sum(len(convs) for convs in plan.values())


def _available_members(session, group_ids: Sequence[int] | None) -> dict[int, list[_Agent]]:
    stmt = (select(GroupMember.group_id, User.id, User.handle, User.last_routed_at)
            .join(User, User.id == GroupMember.user_id)
            .where(User.active.is_(True), User.availability == "available"))
    if group_ids is not None:
        stmt = stmt.where(GroupMember.group_id.in_(group_ids))
    out: dict[int, list[_Agent]] = defaultdict(list)
    agents: dict[int, _Agent] = {}
    floor = datetime.min.replace(tzinfo=None)
    for gid, uid, handle, last in session.execute(stmt.order_by(GroupMember.group_id, User.id)):
        # One object per agent across groups: routing in one group moves them back in all.
        agent = agents.setdefault(uid, _Agent(uid, handle, (0, last.replace(tzinfo=None) if last else floor)))
        out[gid].append(agent)
    return out


def _load_rows(session, user_ids: Sequence[int], *, per_channel: bool = True):
    """(user, channel, n): open conversations assigned to them plus those offered to them."""
    holder = case((C.offered_to.is_not(None), C.offered_to), else_=C.assignee_id)
    held = or_(and_(C.assignee_id.in_(user_ids), C.status == "open"), C.offered_to.in_(user_ids))
    stmt = select(holder, C.channel, func.count()).where(held).group_by(holder, C.channel)
    return session.execute(stmt).all()


def _loads(session, user_ids: set[int]) -> dict[tuple[int, str], int]:
    loads: dict[tuple[int, str], int] = defaultdict(int)
    for chunk in chunks(sorted(user_ids), 1000):
        for uid, channel, n in _load_rows(session, chunk):
            if uid in user_ids:
                loads[(uid, channel)] += n
    return loads


def _urgency_columns():
    due = func.coalesce(C.next_response_due, C.first_response_due, C.resolution_due)
    return C.priority, due, C.created_at


def _urgency_key(priority: str, due, created_at, cid: int) -> tuple:
    """lifecycle.urgency_order in Python (merging per-channel lists of one group)."""
    rank = PRIORITIES.index(priority) if priority in PRIORITIES else 0
    return (-rank, due is None, due.timestamp() if due else 0.0, created_at.timestamp(), cid)


def _candidates(session, members, loads, settings) -> dict[int, list[_Waiting]]:
    """Per group, the most urgent waiting conversations of each channel: as many as its
    available members could take on that channel (plus the ones declined by some of
    them, which may be skipped), so a big backlog is never read whole."""
    from deskctl.services.conversations.lifecycle import urgency_order

    out: dict[int, list[_Waiting]] = {}
    for gid, agents in members.items():
        free = {}
        for channel in settings.channels:
            cap = settings.routing.capacity_for(channel)
            room = sum(max(0, cap - loads[(a.id, channel)]) for a in agents)
            if room:
                free[channel] = room
        if not free:
            continue
        declined_here = dict(session.execute(
            select(C.channel, func.count(func.distinct(Event.conversation_id)))
            .join(Event, Event.conversation_id == C.id)
            .where(waiting_clause(), C.group_id == gid, Event.kind == "declined")
            .group_by(C.channel)).all())
        rows = []
        for channel, room in free.items():
            stmt = (select(C.id, C.channel, *_urgency_columns())
                    .where(waiting_clause(), C.group_id == gid, C.channel == channel)
                    .order_by(*urgency_order()).limit(room + declined_here.get(channel, 0)))
            rows.extend(session.execute(stmt).all())
        if rows:
            out[gid] = [_Waiting(cid, gid, channel, _urgency_key(priority, due, created, cid))
                        for cid, channel, priority, due, created in rows]
    return out


def _declined(session, conversation_ids: Sequence[int]) -> set[tuple[int, str]]:
    """(conversation, handle) pairs: who declined what (never offered to them again)."""
    out: set[tuple[int, str]] = set()
    for chunk in chunks(list(conversation_ids), 2000):
        out.update(session.execute(select(Event.conversation_id, Event.actor)
                                   .where(Event.kind == "declined", Event.conversation_id.in_(chunk))).all())
    return out


def _write(session, plan: dict[int, list[_Waiting]], handles: dict[int, str], *, now: datetime,
           settings) -> int:
    """Offer or assign the planned conversations, re-checking under the database's guard;
    returns how many were given. A handful of statements for the whole plan, plus one
    conditional UPDATE per agent."""
    pg = _is_pg(session)
    capacity = settings.routing.capacity_for
    held: list[int] = []
    for chunk in chunks(sorted(plan), 1000):
        check = (select(User.id).where(User.id.in_(chunk), User.active.is_(True), User.availability == "available")
                 .order_by(User.id))
        if pg:
            # SKIP LOCKED: an agent another pass (or their own `availability set`) holds is
            # left to it, so passes never wait on each other and never deadlock.
            check = check.with_for_update(skip_locked=True)
        held += session.scalars(check)
    if not held:
        return 0
    current = _loads(session, set(held))  # counted again now that they are ours
    take: dict[int, list[int]] = {}
    for uid in held:
        for conv in plan[uid]:
            if current[(uid, conv.channel)] < capacity(conv.channel):
                current[(uid, conv.channel)] += 1
                take.setdefault(uid, []).append(conv.id)
    if pg:
        free: set[int] = set()
        wanted = sorted(cid for ids in take.values() for cid in ids)
        for chunk in chunks(wanted, 2000):
            free.update(session.scalars(select(C.id).where(C.id.in_(chunk), waiting_clause())
                                        .with_for_update(skip_locked=True)))
        take = {uid: [cid for cid in ids if cid in free] for uid, ids in take.items()}
    offer = settings.routing.mode == "offer"
    expires = now + settings.routing.offer_timeout
    given: dict[int, list[tuple[int, int]]] = {}
    for uid, ids in take.items():
        if not ids:
            continue
        values = ({"offered_to": uid, "offer_expires_at": expires} if offer
                  else {"assignee_id": uid, "status": "open", "claimed_at": now})
        rows = session.execute(update(C).where(C.id.in_(ids), waiting_clause())
                               .values(**values, updated_at=now, version=C.version + 1)
                               .returning(C.id, C.version).execution_options(synchronize_session=False)).all()
        if rows:
            given[uid] = sorted(rows)
    if not given:
        return 0
    session.execute(update(User).where(User.id.in_(sorted(given))).values(last_routed_at=now)
                    .execution_options(synchronize_session=False))
    kind = "offered" if offer else "routed"
    events.record_many(session, [
        {"conversation_id": cid, "actor": events.SYSTEM, "kind": kind, "at": now,
         "data": {"user": handles[uid], "expires_at": expires.isoformat()} if offer else {"user": handles[uid]}}
        for uid, rows in given.items() for cid, _ in rows])
    if offer:
        for uid, rows in given.items():
            for cid, version in rows:
                notifications.notify_users(
                    session, [uid], conversation_id=cid, event="offered",
                    subject=f"#{cid} is offered to you", now=now, key=f"{cid}:v{version}",
                    body=f"#{cid} is offered to you until {expires.isoformat()}: "
                         f"`deskctl claim {cid}` to accept it, `deskctl decline {cid}` to refuse it.")
    else:
        sla.after_change(session, sorted((cid, "new", "open") for rows in given.values() for cid, _ in rows),
                         frozenset({"assignee_id", "status", "claimed_at"}), now=now, settings=settings)
    return sum(len(rows) for rows in given.values())


def expire_offers(session, *, now: datetime, settings) -> int:
    """Withdraw every offer past its expiry: event `offer_expired`, the agent goes to
    `rona` (only from `available`: an agent who already set `away` stays away), and the
    supervisors of the conversation's group are told."""
    stmt = (select(C.id, C.offered_to, C.group_id, C.offer_expires_at)
            .where(C.offer_expires_at <= now, C.offered_to.is_not(None)).order_by(C.id))
    if _is_pg(session):
        stmt = stmt.with_for_update(skip_locked=True, of=C)  # a claim holding the row wins
    rows = session.execute(stmt).all()
    if not rows:
        return 0
    by_user: dict[int, list] = defaultdict(list)
    for row in rows:
        by_user[row.offered_to].append(row)
    handles = dict(session.execute(select(User.id, User.handle).where(User.id.in_(list(by_user)))).all())
    expired = []
    for uid, offers in sorted(by_user.items()):
        done = set(session.scalars(
            update(C).where(C.id.in_([r.id for r in offers]), C.offered_to == uid, C.offer_expires_at <= now)
            .values(**withdraw_offer_values(), version=C.version + 1)
            .returning(C.id).execution_options(synchronize_session=False)))
        expired += [r for r in offers if r.id in done]
    if not expired:
        return 0
    events.record_many(session, [
        {"conversation_id": r.id, "actor": events.SYSTEM, "kind": "offer_expired", "at": now,
         "data": {"user": handles.get(r.offered_to), "expired_at": r.offer_expires_at.isoformat()}}
        for r in expired])
    session.execute(update(User).where(User.id.in_(sorted({r.offered_to for r in expired})),
                                       User.availability == "available")
                    .values(availability="rona").execution_options(synchronize_session=False))
    supervisors: dict[int, list[int]] = defaultdict(list)
    for gid, uid in session.execute(
            select(GroupMember.group_id, User.id).join(User, User.id == GroupMember.user_id)
            .where(GroupMember.group_id.in_(sorted({r.group_id for r in expired if r.group_id})),
                   User.role.in_(SUPERVISOR_ROLES), User.active.is_(True))):
        supervisors[gid].append(uid)
    for r in expired:
        agent = handles.get(r.offered_to)
        notifications.notify_users(
            session, supervisors.get(r.group_id, []), conversation_id=r.id, event="offer_expired",
            subject=f"#{r.id}: {agent} let the offer expire and is now rona",
            body=f"The offer of #{r.id} to {agent} expired unanswered at {r.offer_expires_at.isoformat()}; "
                 f"{agent} gets no more offers until they set themselves available again.",
            now=now, key=f"{r.id}:{r.offered_to}:{r.offer_expires_at.isoformat()}")
    return len(expired)


def route_for_agent(session, user_id: int, *, now: datetime, settings) -> dict | None:
    """Immediate routing when an agent becomes available: a pass over their groups."""
    if settings.routing.mode == "pull":
        return None
    groups = list(session.scalars(select(GroupMember.group_id).where(GroupMember.user_id == user_id)))
    if not groups:
        return None
    return route(session, now=now, settings=settings, group_ids=groups)


def offers_held(session, ids: Sequence[int] | None = None) -> dict[int, int]:
    """Conversation id → the user it is offered to (few rows: offers are bounded by
    agents x capacity, read through the offered_to index)."""
    stmt = select(C.id, C.offered_to).where(C.offered_to.is_not(None))
    if ids is not None:
        out: dict[int, int] = {}
        for chunk in chunks(list(ids)):
            out.update(session.execute(stmt.where(C.id.in_(chunk))).all())
        return out
    return dict(session.execute(stmt).all())


def decline(session, actor, conversation_id: int, *, now: datetime, settings) -> dict:
    """Refuse an offer: event `declined`; the conversation waits again and is never
    offered to `actor` again. Returns the change record (SPEC §7)."""
    row = session.execute(select(C.id, C.status, C.group_id, C.offered_to)
                          .where(C.id == conversation_id)).first()
    if row is None:
        raise NotFound(f"conversation not found: #{conversation_id}")
    if row.offered_to != actor.id:
        raise Conflict(f"#{conversation_id}: is not offered to {actor.handle}: nothing to decline")
    result = session.execute(update(C).where(C.id == conversation_id, C.offered_to == actor.id)
                             .values(**withdraw_offer_values(), version=C.version + 1)
                             .execution_options(synchronize_session=False))
    if result.rowcount != 1:
        raise Conflict(f"#{conversation_id}: changed by someone else while this command ran; retry")
    events.record_many(session, [{"conversation_id": conversation_id, "actor": actor.handle, "kind": "declined",
                                  "at": now, "data": {"user": actor.handle}}])
    from deskctl.services.conversations.lifecycle import Names

    names = Names(session)
    record = {"id": conversation_id, "status": row.status, "assignee": None, "group": names.group(row.group_id),
              "previous_status": row.status, "previous_assignee": None, "previous_group": names.group(row.group_id)}
    if row.group_id is not None:
        route(session, now=now, settings=settings, group_ids=[row.group_id])  # on to the next agent
    return record
