"""SLA deadlines and states (SPEC §7, §8).

`refresh` is called after every change to what an SLA depends on (messages in/out,
status, priority, group, location, contact VIP) and by the `sla-sweep` job for the
conversations whose `sla_next_check_at` has passed. For each conversation it:

1. picks the policy: the first of `sla.policies` whose `when` matches (vip, priority,
   channel, group, location; every given condition must hold);
2. computes the targets in the policy's hours (24x7 or a business-hours calendar):
   - `first_response`: from the first inbound message to the first reply;
   - `next_response`: from the first inbound message after the latest reply to the next
     reply (running only while the contact is waiting for an answer);
   - `resolution`: from creation to resolved/closed, paused while `pending` when the
     policy says `pause_when_pending` (the pauses are read from the event trail, so no
     caller has to account for them);
   no target runs while the conversation is `resolved` or `closed`;
3. stores `*_due`, `sla_policy`, `sla_state` and `sla_next_check_at` (the next moment a
   running target reaches its warning share or its due time), so the sweep is an
   indexed range query on `sla_next_check_at <= now`;
4. records each level reached once: a `sla_marks` row per (conversation, target,
   level), an `sla_warning`/`sla_breached` event and a notification to the assignee (or
   the group's supervisors when unassigned). A reply that comes after the due time
   marks that target breached too (recorded when the reply is stored).

State as stored: `breached` once any target has been breached (it stays, like the
`breached` list of the record), else `warning` while a running target is past its
warning share, else `ok`; `none` when no policy applies.

State as read (records, `list --sla`): time moves on between refreshes, so readers never
trust the stored state alone. `read_state` is the one rule, one SQL expression evaluated
at the reader's `now`: a target is late when it has a `breached` mark or is still running
past its due time; `sla.breached` lists exactly those targets and `sla.state` is
`breached` exactly when that list is not empty. A resolved or closed conversation has no
running target, so its reading is final: `outcome` `met` or `late`, with `late_s` frozen
at the moment it stopped (see `reading`).

Set-based: per chunk of ids, one query loads the facts (with a correlated subquery for
the start of the current next-response cycle), one the existing marks, one the pause
events (only for conversations that ever went pending under a pausing policy); then
Python computes, and one executemany UPDATE by primary key writes the changed rows.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, case, exists, func, insert, null, or_, select, update
from sqlalchemy.sql.expression import ColumnElement

from deskctl.db.bulk import execute_many
from deskctl.db.dml import insert_ignore
from deskctl.db.idlist import id_in
from deskctl.db.planner import not_indexed
from deskctl.models import (
    Contact,
    Conversation,
    Event,
    Group,
    GroupMember,
    Location,
    Message,
    SlaMark,
    User,
)
from deskctl.services.conversations import events as events_service
from deskctl.services.outbound import notifications
from deskctl.services.sla.business_hours import calendar_for
from deskctl.services.sla.core import STOPPED, assess, compute, match_policy, stored_targets

CHUNK = 2000

# Event kinds that take a conversation out of `pending` (ending a pause). `closed` ends
# it unless it left the conversation pending (`close --status pending`).
_PAUSE_END = ("resolved", "reopened", "boomerang_returned", "transferred", "released", "auto_closed",
              "auto_unassigned", "merged", "closed")
_PAUSE_KINDS = ("pending", *_PAUSE_END)

_SLA_COLUMNS = ("sla_policy", "sla_state", "first_response_due", "next_response_due", "resolution_due",
                "sla_next_check_at", "sla_paused_s")
_BIND = {col: f"_{col}" for col in _SLA_COLUMNS}  # their parameters in the executemany UPDATE


def _cycle_start() -> ColumnElement[Any]:
    """The first inbound message after the latest reply, for a conversation whose contact
    waits for an answer (else NULL): the start of the running next-response cycle."""
    c = Conversation
    first_unanswered: ColumnElement[Any] = (
        select(func.min(Message.created_at))
        .where(Message.conversation_id == c.id, Message.direction == "inbound",
               Message.created_at > c.last_outbound_at)
        .correlate(c)
        .scalar_subquery()
    )
    # The CASE keeps the engine from running the subquery for every other row.
    waiting = and_(c.status.notin_(STOPPED), c.first_response_at.isnot(None),
                   c.last_inbound_at > c.last_outbound_at)
    return case((waiting, first_unanswered), else_=null())


def _facts_select(ids):
    """What the SLA of these conversations depends on: `_REFRESH_FACTS`, what picks their
    policy (vip, group and location names) and the start of their next-response cycle."""
    c = Conversation
    return (
        select(*_REFRESH_FACTS, Contact.vip.label("vip"), Group.name.label("group_name"),
               Location.name.label("location_name"), _cycle_start().label("cycle_start"))
        .outerjoin(Contact, Contact.id == c.contact_id)
        .outerjoin(Group, Group.id == c.group_id)
        .outerjoin(Location, Location.id == c.location_id)
        .where(id_in(c.id, ids))
    )


# What a refresh (and the sweep) reads of a conversation.
_REFRESH_FACTS = tuple(getattr(Conversation, name) for name in (
    "id", "status", "priority", "channel", "assignee_id", "group_id", "created_at", "updated_at",
    "first_inbound_at", "first_response_at", "last_inbound_at", "last_outbound_at", "resolved_at", "closed_at",
    "pending_since", *_SLA_COLUMNS))


def _pause_events_select(ids: Sequence[int]):
    """Status-changing events of those of `ids` that ever went pending, in order."""
    went_pending = (
        select(Event.conversation_id)
        .where(id_in(Event.conversation_id, ids),
               or_(not_indexed(Event.kind) == "pending",
                   and_(not_indexed(Event.kind) == "closed", Event.data["status"].as_string() == "pending")))
    )
    # Only `closed` events need their data (did the close leave it pending?): decoding
    # every event's JSON was a fifth of a bulk resolve.
    data = case((Event.kind == "closed", Event.data), else_=null())
    return (
        select(Event.conversation_id, Event.kind, Event.at, data)
        .where(Event.conversation_id.in_(went_pending), not_indexed(Event.kind).in_(_PAUSE_KINDS))
        .order_by(Event.conversation_id, Event.id)
    )


def _pauses(session, ids: Sequence[int]) -> dict[int, list[tuple[str, datetime, dict]]]:
    if not ids:
        return {}
    out: dict[int, list] = defaultdict(list)
    for cid, kind, at, data in session.connection().execute(_pause_events_select(ids)):
        out[cid].append((kind, at, data or {}))
    return out


def refresh(session, conversation_ids: Sequence[int], *, now: datetime, settings,
            sweeping: bool = False) -> dict:
    """Recompute policy, due times, state and sla_next_check_at for these conversations.

    Called after any change to what SLA depends on: messages in/out, status, priority,
    group, contact VIP. Set-based for large id lists. Returns counts:
    {refreshed, warnings, breaches, notifications}.

    A target that finished late (a reply or resolution after its due time) is marked
    breached here, with its event. A running target that has reached its warning or due
    time is left to the sweep (`sweeping=True`), which records it and notifies: this
    call only makes sure `sla_next_check_at` is already due for it."""
    counts = {"refreshed": 0, "warnings": 0, "breaches": 0, "notifications": 0}
    ids = list(dict.fromkeys(int(i) for i in conversation_ids))
    if not ids:
        return counts
    session.flush()
    for start in range(0, len(ids), CHUNK):
        _refresh_chunk(session, ids[start:start + CHUNK], now=now, settings=settings, counts=counts,
                       sweeping=sweeping)
    _expire_loaded(session, set(ids))
    return counts


def _refresh_chunk(session, ids: list[int], *, now: datetime, settings, counts: dict, sweeping: bool) -> None:
    rows = session.connection().execute(_facts_select(ids)).all()
    if rows:
        _refresh_rows(session, rows, _marks(session, ids), now=now, settings=settings, counts=counts,
                      sweeping=sweeping)


def _refresh_rows(session, rows, marks: dict, *, now: datetime, settings, counts: dict, sweeping: bool) -> None:
    """The full refresh of conversations read with `_REFRESH_FACTS`, given their marks."""
    warning = settings.sla.warning
    chosen = _policies(rows, settings)
    pausing = [row.id for row in rows
               if chosen[row.id] is not None and chosen[row.id].pause_when_pending and chosen[row.id].resolution]
    trails = _pauses(session, pausing)

    calendars = {policy.hours: calendar_for(settings, policy.hours) for policy in chosen.values() if policy}
    updates: list[dict] = []
    new_marks: list[dict] = []
    announce: list[tuple] = []  # (row, target name, level, due, running)
    for row in rows:
        policy = chosen[row.id]
        if policy is None:
            values = dict(sla_policy=None, sla_state="none", first_response_due=None, next_response_due=None,
                          resolution_due=None, sla_next_check_at=None, sla_paused_s=0)
        else:
            targets, values = compute(row, policy, calendars[policy.hours], warning, trails.get(row.id, ()), now)
            state, next_check = _assess(row, targets, marks.get(row.id, set()), now, new_marks, announce,
                                        sweeping=sweeping)
            values.update(sla_policy=policy.name, sla_state=state, sla_next_check_at=next_check)
        if any(getattr(row, col) != values[col] for col in _SLA_COLUMNS):
            updates.append({"_id": row.id, **{_BIND[k]: v for k, v in values.items()}})
    counts["refreshed"] += len(rows)
    _write(session, _SLA_COLUMNS, updates, new_marks, announce, now=now, counts=counts, settings=settings)


def _policies(rows, settings) -> dict[int, Any]:
    """The policy of each row by id (None: no policy applies), matched once per distinct
    (vip, priority, channel, group, location): a chunk has few."""
    policies = settings.sla.policies
    chosen = {}
    by_facts: dict[tuple, Any] = {}
    for row in rows:
        key = (bool(row.vip), row.priority, row.channel, row.group_name, row.location_name)
        if key not in by_facts:
            by_facts[key] = match_policy(policies, vip=key[0], priority=key[1], channel=key[2], group=key[3],
                                         location=key[4])
        chosen[row.id] = by_facts[key]
    return chosen


def _write(session, columns: Sequence[str], updates: list[dict], new_marks: list[dict], announce: list[tuple], *,
           now: datetime, counts: dict, settings) -> None:
    """Store the changed SLA `columns` (`updates`: "_id" and "_<column>" each), the new
    marks, and announce the levels whose marks this call inserted."""
    if updates:
        t = Conversation.__table__
        stmt = (update(t).where(t.c.id == bindparam("_id"))
                .values({col: bindparam(_BIND[col]) for col in columns}))
        execute_many(session.connection(), stmt, updates)
    if new_marks:
        inserted = _insert_marks(session, new_marks)
        announce = [a for a in announce if (a[0].id, a[1], a[2]) in inserted]
        _announce(session, announce, now=now, counts=counts, settings=settings)


def _marks(session, ids: list[int]) -> dict[int, set[tuple[str, str]]]:
    """(target, level) marks each of these conversations already has."""
    marks: dict[int, set[tuple[str, str]]] = defaultdict(set)
    for cid, target, level in session.connection().execute(
            select(SlaMark.conversation_id, SlaMark.target, SlaMark.level).where(id_in(SlaMark.conversation_id, ids))):
        marks[cid].add((target, level))
    return marks


def _assess(row, targets, have: set, now: datetime, new_marks: list[dict], announce: list[tuple], *,
            sweeping: bool = True) -> tuple[str, datetime | None]:
    """`core.assess` for one conversation; the levels it reached go to `new_marks` and
    `announce`. Returns (state, next check)."""
    state, next_check, reached = assess(targets, have, now, sweeping=sweeping)
    for target, lv, announced in reached:
        new_marks.append({"conversation_id": row.id, "target": target.name, "level": lv, "at": now})
        if announced:
            announce.append((row, target.name, lv, target.due, target.running))
    return state, next_check


def _insert_marks(session, rows: list[dict]) -> set[tuple[int, str, str]]:
    """Insert marks, ignoring ones a concurrent transaction stored first; returns the
    (conversation, target, level) keys this call inserted."""
    table = SlaMark.__table__
    inserted = insert_ignore(session, table, rows, (table.c.conversation_id, table.c.target, table.c.level))
    return {(cid, target, level) for cid, target, level in inserted}


def _announce(session, announce: list[tuple], *, now: datetime, counts: dict, settings) -> None:
    """Events and notifications for newly reached levels (bulk inserts), then the
    automations `on` sla_warning / sla_breached (SPEC §11)."""
    if not announce:
        return
    event_rows = []
    for row, target, level, due, _running in announce:
        kind = "sla_warning" if level == "warning" else "sla_breached"
        event_rows.append({"conversation_id": row.id, "actor": events_service.SYSTEM, "kind": kind, "at": now,
                           "data": {"target": target, "due": due.isoformat() if due else None}})
        counts["warnings" if level == "warning" else "breaches"] += 1
    execute_many(session.connection(), insert(Event.__table__), event_rows)
    _notify_levels(session, announce, now=now, counts=counts)
    if settings.automations:
        from deskctl.services import automations

        for kind in ("sla_warning", "sla_breached"):
            ids = [r["conversation_id"] for r in event_rows if r["kind"] == kind]
            automations.on_events(session, kind, ids, now=now, settings=settings)


def _notify_levels(session, announce: list[tuple], *, now: datetime, counts: dict) -> None:
    """Notifications for newly reached levels: the assignee, else the group's supervisors."""
    # Recipients: the assignee, else the group's supervisors (supervisor or admin members).
    # Only levels the sweep found on running targets: a late reply needs no alert.
    announce = [a for a in announce if a[4]]
    if not announce:
        return
    unassigned_groups = {row.group_id for row, *_ in announce if row.assignee_id is None and row.group_id}
    supervisors: dict[int, list[int]] = defaultdict(list)
    if unassigned_groups:
        for gid, uid in session.execute(
                select(GroupMember.group_id, GroupMember.user_id).join(User, User.id == GroupMember.user_id)
                .where(GroupMember.group_id.in_(unassigned_groups), User.role.in_(("supervisor", "admin")),
                       User.active.is_(True))):
            supervisors[gid].append(uid)
    wanted: list[tuple[int, tuple]] = []
    for item in announce:
        row = item[0]
        if row.assignee_id:
            wanted.append((row.assignee_id, item))
        else:
            wanted.extend([(uid, item) for uid in supervisors.get(row.group_id, ())])
    if not wanted:
        return
    users = {u.id: u for u in session.execute(
        select(User.id, User.handle, User.email).where(User.id.in_({uid for uid, _ in wanted})))}
    outbox = []
    for uid, (row, target, level, due, _running) in wanted:
        user = users.get(uid)
        if user is None:
            continue
        word = "breached" if level == "breached" else "warning"
        label = target.replace("_", " ")
        when = due.isoformat(" ", "minutes")[:16] + " UTC" if due else "-"  # strftime cost 10x more
        outbox.append({
            "kind": "notification",
            "dedupe_key": f"sla_{word}:{row.id}:{target}:user:{uid}",
            "conversation_id": row.id, "user_id": uid, "recipient": user.email or user.handle,
            "subject": f"[#{row.id}] SLA {word}: {label} due {when}",
            "body": f"Conversation #{row.id}: the {label} target "
                    + ("is late" if level == "breached" else "is close to its due time") + f" (due {when}).",
            "status": "queued", "attempts": 0, "next_attempt_at": now, "created_at": now,
        })
    counts["notifications"] += notifications.insert_outbox(session, outbox)


def _expire_loaded(session, ids: set[int]) -> None:
    """Objects already in the session would otherwise keep their old SLA values."""
    for obj in list(session.identity_map.values()):
        if isinstance(obj, Conversation) and obj.id in ids:
            session.expire(obj, list(_SLA_COLUMNS))


# -- what a change can move ----------------------------------------------------------------

def _phase(status: str) -> str:
    """What a status means to the targets: running, paused (pending) or stopped."""
    if status in STOPPED:
        return "stopped"
    return "paused" if status == "pending" else "running"


# Conversation columns the policy choice reads (`when` conditions), by condition name.
_POLICY_INPUTS = {"priority": ("priority",), "group": ("group_id",), "location": ("group_id", "location_id"),
                  "channel": ("channel",), "vip": ("contact_id",)}


def policy_columns(settings) -> frozenset[str]:
    """Conversation columns that can change which policy applies under this config."""
    return frozenset(col for policy in settings.sla.policies for cond in policy.when
                     for col in _POLICY_INPUTS[cond])


def after_change(session, transitions: Sequence[tuple[int, str, str]], columns: frozenset[str], *,
                 now: datetime, settings, frozen: dict | None = None) -> None:
    """Bring the SLA of conversations a bulk verb changed up to date. `transitions` are
    (id, old status, new status); `columns` the conversation columns the verb set.

    Only rows whose deadlines can move are recomputed (at 50,000 rows the full refresh
    was most of a bulk verb's time): a change of phase (running, paused, stopped), a
    moved end of the resolution target, or a column some policy's `when` reads. A
    running conversation that stops (resolved, closed) only freezes: see `stop`.
    `frozen`: the verb's UPDATE already froze those rows (`freeze_values`); by id, what
    `stop_prepare` read before it: only the marks and the uncomputed rows remain."""
    reads_policy = bool(policy_columns(settings) & columns)
    full: list[int] = []
    stopping: list[int] = []
    for cid, old, new in transitions:
        before, after = _phase(old), _phase(new)
        if not reads_policy and before == "running" and after == "stopped":
            stopping.append(cid)
        elif reads_policy or before != after or (after == "stopped" and {"resolved_at", "closed_at"} & columns):
            full.append(cid)
    refresh(session, full, now=now, settings=settings)
    if frozen is None:
        stop(session, stopping, now=now, settings=settings)
    else:
        stop_finish(session, stopping, frozen, now=now, settings=settings)


def is_running(status: str) -> bool:
    """Whether a conversation in this status has running targets (not paused, not stopped)."""
    return _phase(status) == "running"


def freezes(columns: frozenset[str], new_status, settings) -> bool:
    """Whether a verb setting `columns` (status to `new_status` for every row) can freeze
    the SLA of its running rows in its own UPDATE (`freeze_values`): they stop, and no
    policy reads what it changes."""
    return isinstance(new_status, str) and new_status in STOPPED and not (policy_columns(settings) & columns)


def freeze_values(now: datetime) -> dict:
    """SET values that freeze, in the verb's own UPDATE, the SLA of the rows that were
    running with a computed policy (what `stop` writes in a second UPDATE: no next
    check, no open next-response cycle, `breached` when a breached mark exists or a
    target ends late now). SET expressions read the row as it was, so the late tests see
    the due times before they are cleared; other rows keep their values."""
    c = Conversation
    running = and_(c.status.notin_(STOPPED), c.status != "pending", c.sla_policy.isnot(None))
    breached = or_(select(SlaMark.conversation_id)
                   .where(SlaMark.conversation_id == c.id, SlaMark.level == "breached").exists(),
                   *_ending_late(now).values())
    return {"next_response_due": case((running, null()), else_=c.next_response_due),
            "sla_next_check_at": case((running, null()), else_=c.sla_next_check_at),
            "sla_state": case((running, case((breached, "breached"), else_="ok")), else_=c.sla_state)}


def _ending_late(now: datetime) -> dict:
    """Per target, "running and past its due time" from the stored columns (a due column
    is set only while its target can still be missed, see `running_late`)."""
    c = Conversation
    return {"first_response": and_(c.first_response_at.is_(None), c.first_response_due < now),
            "next_response": c.next_response_due < now,
            "resolution": c.resolution_due < now}


_DUE_OF = {"first_response": "first_response_due", "next_response": "next_response_due",
           "resolution": "resolution_due"}


def stop_prepare(session, conversation_ids: Sequence[int], now: datetime) -> list:
    """Before the rows stop: those never computed (no policy stored) and those with a
    target ending late, with what `stop_finish` needs (one query per chunk)."""
    c = Conversation
    ids = list(dict.fromkeys(int(i) for i in conversation_ids))
    if not ids:
        return []
    session.flush()
    conn = session.connection()
    special = (select(c.id, c.sla_policy, c.first_response_at, c.first_response_due, c.next_response_due,
                      c.resolution_due, c.assignee_id, c.group_id)
               .where(or_(c.sla_policy.is_(None), *_ending_late(now).values())).order_by(c.id))
    rows: list = []
    for start in range(0, len(ids), CHUNK):
        rows.extend(conn.execute(special.where(id_in(c.id, ids[start:start + CHUNK]))).all())
    return rows


def stop_finish(session, conversation_ids: Sequence[int], prepared: dict, *, now: datetime, settings) -> None:
    """After the rows stopped (frozen): the marks and `sla_breached` events (no alert) of
    the targets that ended late, and a full refresh of the rows never computed.
    `prepared`: id → row of `stop_prepare`, read before the rows stopped."""
    wanted = set(int(i) for i in conversation_ids)
    rows = [prepared[cid] for cid in sorted(wanted) if cid in prepared]
    _mark_late(session, rows, now, settings)
    refresh(session, [row.id for row in rows if row.sla_policy is None], now=now, settings=settings)
    _expire_loaded(session, wanted)


def _mark_late(session, rows: list, now: datetime, settings) -> None:
    """Marks (warning and breached) and the `sla_breached` event of each target of `rows`
    (from `stop_prepare`) that ends late; no alert."""
    counts = {"warnings": 0, "breaches": 0, "notifications": 0}
    late_in_python = {"first_response": lambda r: (r.first_response_at is None and r.first_response_due is not None
                                                   and r.first_response_due < now),
                      "next_response": lambda r: r.next_response_due is not None and r.next_response_due < now,
                      "resolution": lambda r: r.resolution_due is not None and r.resolution_due < now}
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start:start + CHUNK]
        for target, is_late in late_in_python.items():
            late = [row for row in chunk if row.sla_policy is not None and is_late(row)]
            if not late:
                continue
            inserted = _insert_marks(session, [{"conversation_id": row.id, "target": target, "level": lv, "at": now}
                                               for row in late for lv in ("warning", "breached")])
            _announce(session, [(row, target, "breached", getattr(row, _DUE_OF[target]), False) for row in late
                                if (row.id, target, "breached") in inserted], now=now, counts=counts,
                      settings=settings)


def stop(session, conversation_ids: Sequence[int], *, now: datetime, settings) -> None:
    """SLA of running conversations that have just been resolved or closed, set-based.

    What `refresh` computes for that step, from the stored columns: no deadline moves
    (the policy and the pauses are those of the last refresh), the running targets
    stop now (no next check, no open next-response cycle), and a target still running
    past its due time ends late (its marks and `sla_breached` event, no alert). Rows
    never computed (no policy stored) go through `refresh`. A bulk verb does the same
    with the freeze inside its own UPDATE (`freezes`, `freeze_values`, `stop_finish`)."""
    c = Conversation
    ids = list(dict.fromkeys(int(i) for i in conversation_ids))
    if not ids:
        return
    rows = stop_prepare(session, ids, now)
    _mark_late(session, rows, now, settings)  # first: the state written below reads the marks
    conn = session.connection()
    breached = (select(SlaMark.conversation_id)
                .where(SlaMark.conversation_id == c.id, SlaMark.level == "breached").exists())
    for start in range(0, len(ids), CHUNK):
        conn.execute(update(c.__table__).where(id_in(c.id, ids[start:start + CHUNK]), c.sla_policy.isnot(None))
                     .values(next_response_due=None, sla_next_check_at=None,
                             sla_state=case((breached, "breached"), else_="ok")))
    refresh(session, [row.id for row in rows if row.sla_policy is None], now=now, settings=settings)
    _expire_loaded(session, set(ids))


# -- the sweep ---------------------------------------------------------------------------

def due_ids(session, now: datetime, limit: int | None = None) -> list[int]:
    """Conversations whose next SLA check has come: an indexed range query."""
    stmt = (select(Conversation.id).where(Conversation.sla_next_check_at <= now)
            .order_by(Conversation.sla_next_check_at, Conversation.id))
    if limit is not None:
        stmt = stmt.limit(limit)
    return list(session.scalars(stmt))


def sweep(session, *, now: datetime, settings) -> dict:
    """The `sla-sweep` job's work: the levels reached by what is due; counts of what it found.

    Only time passed since a due conversation's last refresh (every change refreshes), so
    its stored due times still hold: each is checked against its policy, no pause trail is
    read, and only the state and the next check are written. A conversation whose stored
    due times do not hold (the configuration changed), or that needs its pause trail, is
    refreshed in full."""
    ids = due_ids(session, now)
    counts = {"refreshed": 0, "warnings": 0, "breaches": 0, "notifications": 0}
    session.flush()
    for start in range(0, len(ids), CHUNK):
        _sweep_chunk(session, ids[start:start + CHUNK], now=now, settings=settings, counts=counts)
    _expire_loaded(session, set(ids))
    return {"checked": counts["refreshed"], "warnings": counts["warnings"], "breaches": counts["breaches"],
            "notifications": counts["notifications"]}


_SWEPT_COLUMNS = ("sla_state", "sla_next_check_at")


def _sweep_chunk(session, ids: list[int], *, now: datetime, settings, counts: dict) -> None:
    """Levels, state and next check of due conversations from their stored due times, and
    the full refresh (from the same rows) of those whose stored due times do not hold."""
    rows = session.connection().execute(_facts_select(ids)).all()
    chosen = _policies(rows, settings)
    marks = _marks(session, ids)
    warning = settings.sla.warning
    full = []
    updates: list[dict] = []
    new_marks: list[dict] = []
    announce: list[tuple] = []
    calendars = {policy.hours: calendar_for(settings, policy.hours) for policy in chosen.values() if policy}
    for row in rows:
        policy = chosen[row.id]
        targets = None
        if policy is not None and policy.name == row.sla_policy and row.status not in STOPPED:
            targets = stored_targets(row, policy, calendars[policy.hours], warning)
        if targets is None:
            full.append(row)
            continue
        state, next_check = _assess(row, targets, marks.get(row.id, set()), now, new_marks, announce)
        if state != row.sla_state or next_check != row.sla_next_check_at:
            updates.append({"_id": row.id, "_sla_state": state, "_sla_next_check_at": next_check})
        counts["refreshed"] += 1
    _write(session, _SWEPT_COLUMNS, updates, new_marks, announce, now=now, counts=counts, settings=settings)
    if full:
        _refresh_rows(session, full, marks, now=now, settings=settings, counts=counts, sweeping=True)


def compact_duration(seconds: float) -> str:
    """2h10m, 35m, 3d4h, 45s: the two largest units."""
    seconds = int(max(seconds, 0))
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size or (unit == "s" and not parts):
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
        if len(parts) == 2:
            break
    return "".join(p for p in parts if not p.startswith("0") or len(parts) == 1)


# -- reading -----------------------------------------------------------------------------

def running_late(now) -> dict[str, ColumnElement[bool]]:
    """Per target, the SQL condition "still running and past its due time at `now`".

    `refresh` runs after every change to what the SLA depends on, so the stored due
    columns are current and a due column is set only while its target can still be
    missed: first response until the first reply, next response while the contact
    waits, resolution while neither resolved, closed nor paused."""
    c = Conversation
    live = c.status.not_in(STOPPED)
    return {
        "first_response": and_(live, c.first_response_at.is_(None), c.first_response_due <= now),
        "next_response": and_(live, c.next_response_due <= now),
        "resolution": and_(live, c.resolution_due <= now),
    }


def read_state(now):
    """The SLA state at `now` as one SQL expression (`ok`, `warning`, `breached`, `none`):
    what records print and `list --sla` filters on."""
    c = Conversation
    marked = exists().where(SlaMark.conversation_id == c.id, SlaMark.level == "breached")
    # A warning moment of a running target passed since the last sweep: sla_next_check_at
    # is the earliest unswept moment (a due time passed would already be late above).
    warned = and_(c.status.not_in(STOPPED), (c.sla_state == "warning") | (c.sla_next_check_at <= now))
    return case(
        (c.sla_state == "none", "none"),
        (marked, "breached"),
        *((condition, "breached") for condition in running_late(now).values()),
        (warned, "warning"),
        else_="ok",
    )


def reading(row, breached: Sequence[str], late_now: Sequence[str], now: datetime) -> dict:
    """`outcome` and `late_s` of a record (SPEC §9: a closed conversation's SLA shows its
    final outcome, not a growing delay).

    `breached` is the record's list of late targets and `late_now` those of them still
    running past their due time. While the conversation runs: `outcome` is None and
    `late_s` counts from the earliest due time passed by a running target (None when
    none is). Resolved or closed: `outcome` is `met` or `late`, and `late_s` is how late
    the first response and the resolution were when they ended (the reply, else the
    stop), the larger of the two; None when only a past next-response cycle was late."""
    if row.sla_state == "none":
        return {"outcome": None, "late_s": None}
    if row.status not in STOPPED:
        dues = {"first_response": row.first_response_due, "next_response": row.next_response_due,
                "resolution": row.resolution_due}
        passed = [dues[t] for t in late_now if dues.get(t) is not None]
        return {"outcome": None, "late_s": int((now - min(passed)).total_seconds()) if passed else None}
    stop = row.resolved_at or row.closed_at or row.updated_at
    late = []
    if "first_response" in breached and row.first_response_due is not None:
        late.append((row.first_response_at or stop) - row.first_response_due)
    if "resolution" in breached and row.resolution_due is not None:
        late.append(stop - row.resolution_due)
    late = [int(d.total_seconds()) for d in late if d.total_seconds() > 0]
    return {"outcome": "late" if breached else "met", "late_s": max(late) if late else None}


def describe(sla: dict, now: datetime) -> str:
    """The table cell for a record's `sla`: "2h10m left", "late 35m", "met", or the state."""
    state = sla.get("state")
    if state in (None, "none"):
        return ""
    if sla.get("outcome") == "met":
        return "met"
    if sla.get("late_s") is not None:
        return f"late {compact_duration(sla['late_s'])}"
    if sla.get("outcome") == "late":
        return "late"
    dues = [sla.get(k) for k in ("first_response_due", "next_response_due", "resolution_due")]
    upcoming = [d for d in dues if d is not None and d > now]
    if upcoming:
        return f"{compact_duration((min(upcoming) - now).total_seconds())} left"
    return state


__all__ = ["refresh", "sweep", "due_ids", "match_policy", "running_late", "read_state", "reading", "describe",
           "compact_duration", "after_change", "stop", "policy_columns"]
