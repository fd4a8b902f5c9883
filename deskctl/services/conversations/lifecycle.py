"""The verbs that change conversations (SPEC §2): claim, next, transfer, release,
pending, resolve, close, qualify, reopen, merge.

Every bulk verb goes through one engine, `_run`, whose memory stays flat whatever the
number of targets (issue 16): Python holds one chunk of them at a time.

1. select the targets (ids, `-`, a filter, `--all`, `--limit`), numbered in output order,
   with a snapshot of each (status, assignee, group, version, in scope or not) into a
   temporary table (target_table: one INSERT ... SELECT for a filter);
2. read them back by chunks, in output order: validate every target (exists, in the
   actor's scope, the transition is allowed) and spool its snapshot to a temporary file
   (ChangeRecords); if any fails, every chunk is still checked, and one error lists
   every failing id: nothing is written (and the transaction is rolled back);
3. read the spool back by chunks, and write set-based per chunk (in id order within
   it): one `UPDATE ... WHERE id IN (...) AND version = v` that bumps `version` (a row
   changed by someone else since the snapshot no longer matches: the rowcount falls
   short and the whole command fails with exit 4, rolled back), one INSERT of events,
   then watchers, notes, tags and the SLA state of the chunk; notifications gathered
   per chunk are queued at the end (one summary for many, as for one call);
4. return the spool, which gives the change records of SPEC §7 to print after the
   commit (the same with `dry_run`, which writes nothing).

Step 3 reports its progress to `session.info[PROGRESS]` when the caller put a
callable there (the command layer's progress bar).

Services never commit and never print: the command owns the transaction.
"""

from __future__ import annotations

import pickle
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import case, delete, func, insert, or_, select, update

from deskctl.db.dml import insert_keeping_existing
from deskctl.db.idlist import id_in
from deskctl.errors import BulkError, Conflict, DeskError, Forbidden, NotFound, UsageError
from deskctl.models import (
    Conversation,
    ConversationTag,
    Group,
    Message,
    Note,
    NoteVersion,
    User,
    Watcher,
)
from deskctl.services.conversations import events, permissions, routing, target_table
from deskctl.services.conversations.selection import (
    TargetSpec,
    check_selects_something,
    chunks,
    resolve_target_ids,
    select_conversations,
    target_sort,
)
from deskctl.services.outbound import notifications
from deskctl.services.sla import deadlines as sla
from deskctl.vocab import PRIORITIES

C = Conversation
CHUNK = 2000  # ids per UPDATE: 2 parameters each, well under every engine's limit
# The key of Session.info under which a caller may put a `progress(done, total)` callable:
# `_run` reports through it as it writes (the command layer draws the bar; see term.Progress).
PROGRESS = "deskctl.progress"


class Snap(NamedTuple):
    """A target as it was read before the change (a tuple: a bulk verb makes two for each
    target, built with `Snap._make(row)`, the cheapest way)."""

    id: int
    status: str
    assignee_id: int | None
    group_id: int | None
    location_id: int | None
    version: int


@dataclass
class Plan:
    """What one verb does to each target."""

    kind: str                                              # event kind (default)
    check: Callable[[Snap], DeskError | None]              # None: allowed
    values: dict                                           # SQL SET values (may be expressions)
    after: Callable[[Snap], tuple[str, int | None, int | None]]  # (status, assignee_id, group_id)
    data: Callable[[Snap], dict] = field(default=lambda s: {})
    event_kind: Callable[[Snap], str] | None = None
    touch: Callable[[Snap], bool] | None = None             # False: nothing to do for this row
    prepare: Callable[[list[Snap]], None] | None = None     # before `check` of each chunk: load its facts


class ChangeRecords:
    """A bulk verb's targets, in output order, spooled to a temporary file a chunk at a
    time (pickled tuples of Snap's fields) so that a million-row verb never holds them
    all: read back for the writes (`chunks`), and iterated once the transaction is over
    as the change records of SPEC §7 (`record(snap)`, dicts). `close` when done."""

    def __init__(self, record: Callable[[Snap], dict]):
        self._record = record
        self._file = tempfile.SpooledTemporaryFile(max_size=1 << 20)
        self._count = 0

    def add(self, snaps: list) -> None:  # tuples of Snap's fields
        if snaps:
            pickle.dump(snaps, self._file, pickle.HIGHEST_PROTOCOL)
            self._count += len(snaps)

    def chunks(self) -> Iterator[list[Snap]]:
        make = Snap._make
        self._file.seek(0)
        while True:
            try:
                rows = pickle.load(self._file)
            except EOFError:
                return
            yield [make(row) for row in rows]

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[dict]:
        record = self._record
        for snaps in self.chunks():
            for snap in snaps:
                yield record(snap)

    def close(self) -> None:
        self._file.close()


@dataclass
class Outcome:
    """What `_run` did: the change records and how many rows it changed."""

    records: ChangeRecords
    changed: int


class Names:
    """Handles and group names by id (directory tables are small)."""

    def __init__(self, session):
        self.users = dict(session.execute(select(User.id, User.handle)).all())
        self.groups = dict(session.execute(select(Group.id, Group.name)).all())

    def user(self, user_id):
        return self.users.get(user_id) if user_id is not None else None

    def group(self, group_id):
        return self.groups.get(group_id) if group_id is not None else None


def _snapshots(session, ids: Sequence[int]) -> dict[int, Snap]:
    # Core on the session's connection: no ORM overhead per row.
    conn = session.connection()
    out: dict[int, Snap] = {}
    stmt = select(C.id, C.status, C.assignee_id, C.group_id, C.location_id, C.version)
    for chunk in chunks(list(ids), CHUNK):
        for row in conn.execute(stmt.where(id_in(C.id, chunk))).all():
            out[row[0]] = Snap(*row)
    return out


def _check_chunks(targets: target_table.Targets) -> Iterator[list]:
    """The targets selected into target_table, a chunk at a time in output order, as rows
    (id, status, assignee_id, group_id, location_id, version, allowed): a version of
    None when there is no such conversation."""
    return targets.read(chunk=CHUNK)


def _write_chunks(spooled: ChangeRecords) -> Iterator[list[Snap]]:
    """The snapshots of the targets (all checked: they exist and are in scope), a chunk
    at a time in output order."""
    return spooled.chunks()


def _update_versioned(session, snaps: Sequence[Snap], values: dict) -> None:
    """UPDATE the rows still at the version we read, bumping it; a shortfall means a
    concurrent change won: exit 4, and the caller's transaction is rolled back.

    Rows of a chunk are grouped by their version (a plain `id IN (...) AND version = v`
    per distinct version: usually one), which compiles far cheaper than a tuple IN."""
    conn = session.connection()
    table = C.__table__
    values = dict(values)
    # Withdrawing offers (SET offered_to = NULL, ...) is a separate UPDATE of the few rows
    # that have one: SQLite rewrites an index entry of every row an UPDATE lists an
    # indexed column for, whatever its value (a sixth of a 50,000-row resolve).
    withdraw = {k: values.pop(k) for k in routing.withdraw_offer_values() if k in values and values[k] is None}
    for chunk in chunks(list(snaps), CHUNK):
        by_version: dict[int, list[int]] = {}
        for s in chunk:
            by_version.setdefault(s.version, []).append(s.id)
        for version, ids in by_version.items():
            result = conn.execute(table.update().where(id_in(table.c.id, ids), table.c.version == version)
                                  .values(**values))
            if result.rowcount != len(ids):
                raise lost_race()
        if withdraw:
            conn.execute(table.update().where(id_in(table.c.id, [s.id for s in chunk]),
                                              or_(*[table.c[k].is_not(None) for k in withdraw]))
                         .values(**withdraw))


def _insert_events(session, actor: str, at: datetime, rows: list[tuple[int, str, dict]]) -> None:
    """Audit events (services/events.py data conventions) for (conversation id, kind,
    data) rows. Rows sharing kind and data (the usual case for a bulk verb: same actor,
    same from/to) are written by one `INSERT INTO events ... SELECT ... WHERE id IN`;
    when most rows differ, one executemany INSERT."""
    from sqlalchemy import literal

    from deskctl.db.types import JsonType, UTCDateTime
    from deskctl.models import Event

    if not rows:
        return
    conn = session.connection()
    table = Event.__table__
    groups: dict[tuple[str, str], tuple[dict, list[int]]] = {}
    for cid, kind, data in rows:
        # repr is a cheap, exact key: the data dicts of one verb are built in one key order.
        groups.setdefault((kind, repr(data)), (data, []))[1].append(cid)
    if len(groups) * 4 > len(rows):
        conn.execute(table.insert(), [{"conversation_id": cid, "actor": actor, "kind": kind, "at": at, "data": data}
                                      for cid, kind, data in rows])
        return
    for (kind, _), (data, ids) in groups.items():
        source = (select(C.id, literal(at, UTCDateTime()), literal(actor), literal(kind), literal(data, JsonType))
                  .where(id_in(C.id, ids)).order_by(C.id))
        conn.execute(table.insert().from_select(["conversation_id", "at", "actor", "kind", "data"], source))


def _fail(failures: list[tuple[int, DeskError]]) -> None:
    """One failure: its own one-line error; several: the list (exit code of the first)."""
    if not failures:
        return
    if len(failures) == 1:
        cid, error = failures[0]
        raise type(error)(f"#{cid}: {error.format_message()}", option=error.options)
    raise BulkError(failures)


def lost_race() -> Conflict:
    return Conflict("changed by someone else while this command ran; retry")


def _run(session, actor, spec: TargetSpec, plan: Plan, *, now: datetime, settings, dry_run: bool,
         names: Names | None = None, before_write: Callable[[list[Snap]], None] | None = None,
         after_write: Callable[[list[Snap]], None] | None = None,
         finish: Callable[[], None] | None = None) -> Outcome:
    """`before_write` and `after_write` are called for each chunk of changed rows, in
    output order; `finish` once after the last (to queue what was gathered per chunk)."""
    names = names or Names(session)

    def record(snap: Snap) -> dict:
        status, assignee_id, group_id = plan.after(snap)
        return {"id": snap.id, "status": status, "assignee": names.user(assignee_id),
                "group": names.group(group_id), "previous_status": snap.status,
                "previous_assignee": names.user(snap.assignee_id), "previous_group": names.group(snap.group_id)}

    targets = target_table.select_into(session, actor, spec, settings, chunk=CHUNK)
    # Pass 1, in output order: check every target (all of them, to list every failure),
    # spool the snapshots while none has failed, count the rows to change.
    failures: list[tuple[int, DeskError]] = []
    spooled = ChangeRecords(record)
    touched = 0
    make = Snap._make
    for chunk in _check_chunks(targets):
        fields = [row[:6] if row[5] is not None and row[6] else None for row in chunk]
        snaps = [None if f is None else make(f) for f in fields]
        if plan.prepare is not None:
            plan.prepare([snap for snap in snaps if snap is not None])
        for row, snap in zip(chunk, snaps, strict=True):
            if snap is None:
                cid = row[0]
                failures.append((cid, NotFound(f"conversation not found: #{cid}") if row[5] is None
                                 else permissions.forbidden_error(actor)))
                continue
            error = plan.check(snap)
            if error is not None:
                failures.append((snap.id, error))
            elif not failures:
                touched += plan.touch is None or plan.touch(snap)
        if not failures:
            spooled.add(fields)
    targets.drop()
    if failures:
        spooled.close()
        _fail(failures)
    if dry_run or not touched:
        return Outcome(spooled, 0)

    table = C.__table__
    values = dict(plan.values, version=table.c.version + 1, updated_at=now)
    progress = session.info.get(PROGRESS) or (lambda done, total: None)
    steps = 2 * touched  # each row is written, then its SLA refreshed (the slower half)
    # A verb that stops running rows freezes their SLA in its own UPDATE (one write of
    # each row instead of two); what the freeze leaves to do is read before it.
    freezes = sla.freezes(frozenset(plan.values), plan.values.get("status"), settings)
    if freezes:
        values.update(sla.freeze_values(now))
    watchers = _watcher_notices(session, actor, plan.kind, now=now)
    # Pass 2, in output order (the callbacks see the rows as a verb's reader expects), each
    # chunk written in id order: write, record events, gather what watchers are told and
    # refresh the SLA a chunk at a time.
    written = 0
    for chunk in _write_chunks(spooled):
        changed = chunk if plan.touch is None else [snap for snap in chunk if plan.touch(snap)]
        if not changed:
            continue
        if before_write is not None:
            before_write(changed)
        by_id = sorted(changed)  # Snaps are tuples: by id first
        frozen = ({row.id: row for row in sla.stop_prepare(
            session, [s.id for s in by_id if sla.is_running(s.status)], now)} if freezes else None)
        _update_versioned(session, by_id, values)
        _insert_events(session, actor.handle, now, [
            (s.id, plan.event_kind(s) if plan.event_kind else plan.kind, plan.data(s)) for s in by_id])
        written += len(changed)
        progress(written, steps)
        if after_write is not None:
            after_write(changed)
        if watchers is not None:
            watchers.add({s.id: f"{s.id}:v{s.version + 1}" for s in by_id})
        transitions = [(s.id, s.status, plan.after(s)[0]) for s in by_id]
        for start in range(0, len(transitions), sla.CHUNK):
            part = transitions[start:start + sla.CHUNK]
            sla.after_change(session, part, frozenset(plan.values), now=now, settings=settings, frozen=frozen)
            written += len(part)
            progress(written, steps)
    # The direct notifications first: a watcher who also got one is not told twice.
    if finish is not None:
        finish()
    if watchers is not None:
        watchers.flush()
    return Outcome(spooled, touched)


# What watchers hear about ("it stays in their inbox and they get notified of activity"):
# every verb that moves a conversation, in the words of the notification.
_WATCHED_VERBS = {"claimed": "claimed", "transferred": "transferred", "released": "released",
                  "pending": "put pending", "resolved": "resolved", "closed": "closed", "reopened": "reopened"}


def _watcher_notices(session, actor, kind: str, *, now: datetime) -> notifications.FollowerNotices | None:
    """Watchers other than the actor, one notification per conversation (a summary
    for more than notifications.EACH_MAX), gathered chunk by chunk. Keys follow the
    direct notifications (`transferred:ID:vN`), so a watcher who is also the new
    assignee gets one. None: this verb tells watchers nothing."""
    verb = _WATCHED_VERBS.get(kind)
    if verb is None:
        return None
    # Handles are [a-z0-9._-] and statuses fixed words: safe inside the templates.
    by = f"{verb} by {actor.handle}"
    return notifications.FollowerNotices(
        session, event=kind, now=now,
        subject=f"[#{{id}}] {by}: {{subject}}", body=f"Conversation #{{id}} ({{subject}}) was {by}.",
        summary=f"{{n}} conversations you watch were {by}", exclude_user_id=actor.id)


# -- helpers shared by several verbs -------------------------------------------------------

def _add_watchers(session, conversation_ids: Sequence[int], user_id: int, now: datetime) -> None:
    """Make `user_id` a watcher of each conversation (set-based, existing ones kept)."""
    insert_keeping_existing(session, Watcher.__table__, [
        {"conversation_id": cid, "user_id": user_id, "created_at": now} for cid in dict.fromkeys(conversation_ids)])


def _add_tags(session, conversation_ids: Sequence[int], tags: Sequence[str]) -> None:
    """Add the tags (set-based, ones already there kept)."""
    insert_keeping_existing(session, ConversationTag.__table__, [
        {"conversation_id": cid, "tag": t} for cid in dict.fromkeys(conversation_ids) for t in dict.fromkeys(tags)])


# The column each qualification value of `close` and `qualify` is stored in.
_QUALIFICATION_COLUMNS = {"reason": "reason", "priority": "priority", "note": "closing_note", "csat": "csat"}


def _qualification(**given) -> dict:
    """UPDATE values for the qualification given (None: left as it is)."""
    return {_QUALIFICATION_COLUMNS[name]: value for name, value in given.items() if value is not None}


def _remove_tags(session, conversation_ids: Sequence[int], tags: Sequence[str]) -> None:
    if not tags:
        return
    for chunk in chunks(list(conversation_ids), CHUNK):
        session.execute(delete(ConversationTag).where(ConversationTag.conversation_id.in_(chunk),
                                                      ConversationTag.tag.in_(tags)))


def _clean_tags(tags: Sequence[str], option: str) -> list[str]:
    """`option`: the parameter the tags came in (`tags`, `untags`)."""
    out = []
    for raw in tags or ():
        for tag in raw.split(","):
            tag = tag.strip()
            if not tag:
                continue
            if len(tag) > 100:
                raise UsageError(f"invalid tag {tag[:20]!r}...: at most 100 characters", option=option)
            out.append(tag)
    return list(dict.fromkeys(out))


def _check_until(until: datetime | None, now: datetime) -> None:
    if until is not None and until <= now:
        raise UsageError(f"boomerang time {until.isoformat()} is not in the future", option="until")


class _RulesById:
    """The rules of §8 for each target, as its channel makes them (`rules.channels`,
    SPEC §10): `load` reads the channels of a chunk of targets (Plan.prepare), then
    calling it with an id gives that target's rules; without per-channel rules, the
    global ones and no query."""

    def __init__(self, session, settings):
        self.session, self.settings = session, settings
        self.channels: dict[int, str] = {}

    def load(self, snaps: Sequence[Snap]) -> None:
        if self.settings.channel_rules:
            self.channels = dict(self.session.execute(
                select(C.id, C.channel).where(id_in(C.id, [s.id for s in snaps]))).all())

    def __call__(self, cid: int):
        if not self.settings.channel_rules:
            return self.settings.rules
        return self.settings.rules_for(self.channels.get(cid))


def check_reason(reason: str | None, settings) -> None:
    """A contact reason must be one of `reasons:` when the desk lists them (SPEC §10)."""
    if reason is not None and settings.reasons is not None and reason not in settings.reasons:
        raise UsageError(f"invalid contact reason {reason!r} (choose from {', '.join(settings.reasons)})",
                         option="reason")


class _Notices:
    """What one user is told about a bulk verb's conversations, gathered chunk by chunk
    (`add`, in output order) and queued by `flush`: one notification per conversation for
    a handful, one summary for more than notifications.EACH_MAX. Holds at most the ids a
    summary lists."""

    def __init__(self, session, user_id: int, *, event: str, subject: str, body: str, now: datetime,
                 summary: str):
        self.session, self.user_id, self.event, self.now = session, user_id, event, now
        self.subject, self.body, self.summary = subject, body, summary
        self.count = 0
        self.first: list[Snap] = []  # the first ones: all of a handful, the summary's list of many

    def add(self, snaps: Sequence[Snap]) -> None:
        self.count += len(snaps)
        room = max(notifications.EACH_MAX, notifications.ID_LIST_MAX) + 1 - len(self.first)
        self.first.extend(snaps[:room])

    def flush(self) -> None:
        session, user_id, event, n = self.session, self.user_id, self.event, self.count
        if n == 0:
            return
        if n <= notifications.EACH_MAX:
            for s in self.first:
                notifications.notify_users(session, [user_id], conversation_id=s.id, event=event,
                                           subject=self.subject.format(id=s.id), body=self.body.format(id=s.id),
                                           now=self.now, key=f"{s.id}:v{s.version + 1}")
        else:
            first = self.first[0]
            notifications.notify_users(
                session, [user_id], conversation_id=None, event=event, subject=self.summary.format(n=n),
                body=self.summary.format(n=n) + ": " + notifications.id_list([s.id for s in self.first]),
                now=self.now, key=f"bulk:{first.id}:v{first.version + 1}:{n}")
        self.count, self.first = 0, []


# -- claim ----------------------------------------------------------------------------------

def claim(session, actor, spec: TargetSpec, *, steal: bool = False, now: datetime, settings,
          dry_run: bool = False) -> ChangeRecords:
    """assignee = actor, `new` → `open`; someone else's: exit 4 unless `steal` (supervisor)."""
    if steal:
        permissions.require_supervisor(actor, "stealing a claimed conversation")
    names = Names(session)
    # Offered conversations (SPEC §10): the offered agent's claim accepts the offer.
    offers = routing.offers_held(session)

    def check(s: Snap):
        if s.status == "closed":
            return Conflict("is closed: reopen it before claiming it")
        if s.assignee_id not in (None, actor.id) and not steal:
            return Conflict(f"claimed by {names.user(s.assignee_id)}: a supervisor or admin may steal it",
                            option="steal")
        if offers.get(s.id, actor.id) != actor.id and not steal:
            return Conflict(f"offered to {names.user(offers[s.id])}: a supervisor or admin may steal it",
                            option="steal")
        return None

    def touch(s: Snap):
        return not (s.assignee_id == actor.id and s.status != "new")

    plan = Plan(
        kind="claimed", check=check,
        values={"assignee_id": actor.id, "claimed_at": now,
                "status": case((C.status == "new", "open"), else_=C.status), **routing.withdraw_offer_values()},
        after=lambda s: ("open" if s.status == "new" else s.status, actor.id, s.group_id),
        data=lambda s: ({"from_user": names.user(s.assignee_id)}
                        if s.assignee_id not in (None, actor.id) else {}),
        event_kind=lambda s: "stolen" if s.assignee_id not in (None, actor.id) else "claimed",
        touch=touch,
    )

    stolen_from: dict[int, _Notices] = {}  # by previous holder

    def after_write(changed):
        for s in changed:
            if s.assignee_id not in (None, actor.id):
                if s.assignee_id not in stolen_from:
                    stolen_from[s.assignee_id] = _Notices(
                        session, s.assignee_id, event="stolen", subject=f"#{{id}} was taken over by {actor.handle}",
                        body=f"{actor.handle} took over #{{id}}.", now=now,
                        summary=f"{{n}} of your conversations were taken over by {actor.handle}")
                stolen_from[s.assignee_id].add([s])

    def finish():
        for notices in stolen_from.values():
            notices.flush()

    return _run(session, actor, spec, plan, now=now, settings=settings, dry_run=dry_run, names=names,
                after_write=after_write, finish=finish).records


# -- next -----------------------------------------------------------------------------------

def urgency_order():
    """Most urgent first: priority, then the nearest SLA deadline, then age."""
    rank = case({p: i for i, p in enumerate(PRIORITIES)}, value=C.priority, else_=0)
    due = func.coalesce(C.next_response_due, C.first_response_due, C.resolution_due)
    return [rank.desc(), due.asc().nulls_last(), C.created_at.asc(), C.id.asc()]


def next_(session, actor, *, group: str | None = None, now: datetime, settings, dry_run: bool = False,
          attempts: int = 20) -> list[dict]:
    """Claim the most urgent waiting (new, unassigned) conversation of the actor's groups.

    Race-safe: on PostgreSQL the candidate row is locked with FOR UPDATE SKIP LOCKED (a
    concurrent `next` skips it and takes the following one); everywhere the UPDATE is
    conditional (still new, still unassigned), and a lost candidate is retried."""
    if actor.availability != "available":
        raise Conflict(f"{actor.handle} is {actor.availability}, not available: "
                       "run `deskctl availability set available` first")
    names = Names(session)
    if group is not None:
        group_id = next((gid for gid, name in names.groups.items() if name == group), None)
        if group_id is None:
            raise NotFound(f"group not found: {group}")
        if group_id not in actor.group_ids and not actor.is_supervisor:
            raise Forbidden(f"{actor.handle} is not a member of {group}")
        group_ids = [group_id]
    else:
        group_ids = sorted(actor.group_ids)
    where_groups = ", ".join(sorted(names.group(g) for g in group_ids)) or "no group"
    if not group_ids:
        raise NotFound(f"no conversation waiting: {actor.handle} is in no group (name one)", option="group")
    waiting = [C.status == "new", C.assignee_id.is_(None), C.offered_to.is_(None), C.group_id.in_(group_ids)]
    scope = permissions.scope_clause(actor, settings)
    if scope is not None:
        waiting.append(scope)
    for _ in range(attempts):
        stmt = (select(C.id, C.status, C.assignee_id, C.group_id, C.location_id, C.version)
                .where(*waiting).order_by(*urgency_order()).limit(1))
        if session.get_bind().dialect.name == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True, of=C)
        row = session.execute(stmt).first()
        if row is None:
            raise NotFound(f"no conversation waiting in {where_groups}")
        snap = Snap(*row)
        record = {"id": snap.id, "status": "open", "assignee": actor.handle, "group": names.group(snap.group_id),
                  "previous_status": snap.status, "previous_assignee": None,
                  "previous_group": names.group(snap.group_id)}
        if dry_run:
            return [record]
        result = session.execute(
            update(C).where(C.id == snap.id, C.version == snap.version, *waiting[:3])
            .values(assignee_id=actor.id, status="open", claimed_at=now, updated_at=now, version=C.version + 1)
            .execution_options(synchronize_session=False))
        if result.rowcount != 1:
            continue  # someone else took it between our read and our write: next candidate
        events.record_many(session, [{"conversation_id": snap.id, "actor": actor.handle, "kind": "claimed",
                                      "at": now, "data": {"via": "next"}}])
        sla.refresh(session, [snap.id], now=now, settings=settings)
        return [record]
    raise lost_race()


# -- transfer -------------------------------------------------------------------------------

@dataclass(frozen=True)
class TransferTarget:
    kind: str            # "user" | "group"
    id: int
    name: str
    availability: str | None = None
    location_id: int | None = None


def resolve_ref(session, ref: str) -> TransferTarget:
    """`user:H`, `group:G`, or a bare name matching exactly one user or group."""
    ref = (ref or "").strip()
    kind, sep, name = ref.partition(":")
    if sep and kind in ("user", "group"):
        if not name:
            raise UsageError(f"invalid transfer target {ref!r}: expected user:HANDLE, group:NAME or a name",
                             option="to")
        kinds = [kind]
    elif sep:
        raise UsageError(f"invalid transfer target {ref!r}: expected user:HANDLE, group:NAME or a name",
                         option="to")
    else:
        name, kinds = ref, ["user", "group"]
    if not name:
        raise UsageError("no transfer target: expected user:HANDLE, group:NAME or a name", option="to")
    found = []
    if "user" in kinds:
        user = session.execute(select(User.id, User.handle, User.availability, User.active)
                               .where(User.handle == name)).first()
        if user is not None:
            if not user.active:
                raise Conflict(f"user {name} is deactivated")
            found.append(TransferTarget("user", user.id, user.handle, availability=user.availability))
    if "group" in kinds:
        group = session.execute(select(Group.id, Group.name, Group.location_id).where(Group.name == name)).first()
        if group is not None:
            found.append(TransferTarget("group", group.id, group.name, location_id=group.location_id))
    if len(found) > 1:
        raise UsageError(f"transfer target {name!r} is ambiguous: both user:{name} and group:{name} exist; "
                         "say which", option="to")
    if not found:
        what = {"user": "user", "group": "group"}[kinds[0]] if len(kinds) == 1 else "user or group"
        raise NotFound(f"{what} not found: {name}")
    return found[0]


def transfer_values(assignee_id: int | None, group_id: int | None = None,
                    location_id: int | None = None) -> dict:
    """The SET values of a transfer (also automations' `group` and `assign`): status
    `new`, claim, boomerang and pending cleared, any offer withdrawn, the assignee set
    (None: cleared); to a group, the group and, when it has one, its location."""
    values: dict = {"status": "new", "assignee_id": assignee_id, "claimed_at": None, "boomerang_at": None,
                    "pending_since": None, **routing.withdraw_offer_values()}
    if group_id is not None:
        values["group_id"] = group_id
        if location_id is not None:
            values["location_id"] = location_id
    return values


def transfer(session, actor, spec: TargetSpec, to: str, *, message: str | None = None,
             keep_informed: bool = True, reason: str | None = None, now: datetime, settings,
             dry_run: bool = False, warn: Callable[[str], None] | None = None) -> ChangeRecords:
    """To a group: assignee cleared, group set, `new`. To a user: assignee set, `new`,
    the user notified. `message` is an internal note linked to each transfer event."""
    target = resolve_ref(session, to)
    if target.kind == "user" and not settings.rules.transfer_to_user and not settings.channel_rules:
        raise Forbidden("transfers to users are turned off (rules.transfer_to_user): transfer to group:NAME",
                        option="to")
    if message is not None and not message.strip():
        raise UsageError("the transfer message is empty", option="message")
    names = Names(session)
    rules_of = _RulesById(session, settings)
    after: Callable[[Snap], tuple[str, int | None, int | None]]  # (status, assignee, group) once moved

    def check(s: Snap):
        rules = rules_of(s.id)
        if s.status == "closed":
            return Conflict("is closed: reopen it before transferring it")
        if target.kind == "user" and not rules.transfer_to_user:
            return Forbidden("transfers to users are turned off for its channel (rules.transfer_to_user): "
                             "transfer to group:NAME", option="to")
        if rules.transfer_requires_claim and not actor.is_supervisor and s.assignee_id != actor.id:
            return Conflict("claim it first (rules.transfer_requires_claim)")
        return None

    if target.kind == "user":
        values = transfer_values(target.id)
        after = lambda s: ("new", target.id, s.group_id)  # noqa: E731
        to_user, to_group = target.name, None
    else:
        values = transfer_values(None, target.id, target.location_id)
        after = lambda s: ("new", None, target.id)  # noqa: E731
        to_user, to_group = None, target.name

    note_ids: dict[int, int] = {}  # of the chunk being written

    def before_write(changed):
        if message is None:
            return
        note_ids.clear()
        # The note first, so each transfer event can name its note; the note is linked
        # back to its event once the events exist.
        for chunk in chunks(changed, CHUNK):
            rows = [{"conversation_id": s.id, "author_id": actor.id, "text": message, "created_at": now,
                     "updated_at": now} for s in chunk]
            ids = session.scalars(insert(Note).returning(Note.id, sort_by_parameter_order=True), rows).all()
            note_ids.update(zip([s.id for s in chunk], ids, strict=True))
            session.execute(insert(NoteVersion), [
                {"note_id": nid, "version": 1, "text": message, "author_id": actor.id, "at": now} for nid in ids])

    def data(s: Snap):
        return {"from_user": names.user(s.assignee_id), "to_user": to_user,
                "from_group": names.group(s.group_id), "to_group": to_group or names.group(s.group_id),
                "reason": reason, "note_id": note_ids.get(s.id)}

    def after_write(changed):
        if message is not None:
            from deskctl.models import Event

            for chunk in chunks(changed, CHUNK):
                pairs = session.execute(
                    select(Event.id, Event.conversation_id).where(
                        Event.conversation_id.in_([s.id for s in chunk]), Event.kind == "transferred",
                        Event.at == now, Event.actor == actor.handle).order_by(Event.id)).all()
                by_conv = {cid: eid for eid, cid in pairs}  # the latest event per conversation wins
                session.execute(update(Note), [{"id": note_ids[cid], "event_id": eid} for cid, eid in by_conv.items()
                                               if cid in note_ids])
        if keep_informed:
            _add_watchers(session, [s.id for s in changed], actor.id, now)
        if receiver is not None:
            receiver.add(changed)

    receiver = None if target.kind != "user" or target.id == actor.id else _Notices(
        session, target.id, event="transferred", subject=f"#{{id}} was transferred to you by {actor.handle}",
        body=f"{actor.handle} transferred #{{id}} to you." + (f"\n\n{message}" if message else ""), now=now,
        summary=f"{{n}} conversations were transferred to you by {actor.handle}")
    plan = Plan(kind="transferred", check=check, values=values, after=after, data=data, prepare=rules_of.load)
    outcome = _run(session, actor, spec, plan, now=now, settings=settings, dry_run=dry_run, names=names,
                   before_write=before_write, after_write=after_write,
                   finish=receiver.flush if receiver is not None else None)
    if (target.kind == "user" and target.availability != "available" and outcome.records
            and warn is not None):
        warn(f"{target.name} is {target.availability}: the transferred conversations wait until they are back")
    return outcome.records


# -- release --------------------------------------------------------------------------------

def release(session, actor, spec: TargetSpec, *, now: datetime, settings, dry_run: bool = False) -> ChangeRecords:
    """Give claimed conversations back to their group: assignee cleared, `new`."""
    names = Names(session)

    def check(s: Snap):
        if s.status == "closed":
            return Conflict("is closed: nothing to release")
        if s.assignee_id is None:
            return Conflict("is not assigned to anyone")
        if s.assignee_id != actor.id and not actor.is_supervisor:
            return Forbidden(f"is assigned to {names.user(s.assignee_id)}: only they or a supervisor "
                             "can release it")
        return None

    plan = Plan(kind="released", check=check,
                values={"assignee_id": None, "status": "new", "claimed_at": None, "boomerang_at": None,
                        "pending_since": None, **routing.withdraw_offer_values()},
                after=lambda s: ("new", None, s.group_id),
                data=lambda s: {"from_user": names.user(s.assignee_id)})
    return _run(session, actor, spec, plan, now=now, settings=settings, dry_run=dry_run, names=names).records


# -- pending / resolve ----------------------------------------------------------------------

def pending(session, actor, spec: TargetSpec, *, until: datetime | None = None, note: str | None = None,
            now: datetime, settings, dry_run: bool = False) -> ChangeRecords:
    """`pending`: waits for the contact; `until` also sets a boomerang."""
    _check_until(until, now)

    def check(s: Snap):
        if s.status == "closed":
            return Conflict("is closed: cannot put it pending (reopen it first)")
        if s.status == "pending" and until is None:
            return Conflict("is already pending (only a boomerang time would change it)", option="until")
        return None

    plan = Plan(kind="pending", check=check,
                values={"status": "pending", "boomerang_at": until, **routing.withdraw_offer_values(),
                        "pending_since": case((C.status == "pending", C.pending_since), else_=now)},
                after=lambda s: ("pending", s.assignee_id, s.group_id),
                data=lambda s: {"until": until.isoformat() if until else None, "note": note})
    return _run(session, actor, spec, plan, now=now, settings=settings, dry_run=dry_run).records


def resolve(session, actor, spec: TargetSpec, *, until: datetime | None = None, now: datetime, settings,
            dry_run: bool = False) -> ChangeRecords:
    """`resolved`: answered; a contact reply brings it back. `until` sets a boomerang."""
    _check_until(until, now)

    def check(s: Snap):
        if s.status == "closed":
            return Conflict("is closed: cannot resolve it (reopen it first)")
        if s.status == "resolved" and until is None:
            return Conflict("is already resolved")
        return None

    plan = Plan(kind="resolved", check=check,
                values={"status": "resolved", "boomerang_at": until, "resolved_at": now, "pending_since": None,
                        **routing.withdraw_offer_values()},
                after=lambda s: ("resolved", s.assignee_id, s.group_id),
                data=lambda s: {"until": until.isoformat() if until else None})
    return _run(session, actor, spec, plan, now=now, settings=settings, dry_run=dry_run).records


# -- close / qualify ------------------------------------------------------------------------


def close(session, actor, spec: TargetSpec, *, tags: Sequence[str] = (), reason: str | None = None,
          note: str | None = None, csat: int | None = None, status: str = "closed",
          transcript_to: str | None = None, now: datetime, settings, dry_run: bool = False) -> ChangeRecords:
    """End the conversation with its qualification. `status` closed (default), or
    pending/open to end a chat session but keep the request going."""
    tags = _clean_tags(tags, "tag")
    check_reason(reason, settings)
    if transcript_to is not None:
        from deskctl.services.addresses import check_address

        check_address(transcript_to, "the transcript", option="transcript_to")
    rules_of = _RulesById(session, settings)
    tagged: set[int] = set()  # of the chunk being checked
    some_need_tags = settings.rules.close_requires_tag or any(
        r.close_requires_tag for r in settings.channel_rules.values())

    def prepare(snaps: list[Snap]) -> None:
        rules_of.load(snaps)
        if some_need_tags and not tags:
            tagged.clear()
            tagged.update(session.scalars(select(ConversationTag.conversation_id).where(
                id_in(ConversationTag.conversation_id, [s.id for s in snaps])).distinct()))

    def check(s: Snap):
        rules = rules_of(s.id)
        if s.status == "closed":
            return Conflict("is already closed")
        if rules.close_requires_tag and not tags and s.id not in tagged:
            return UsageError("needs a tag to close (rules.close_requires_tag)", option="tag")
        if rules.close_requires_reason and reason is None:
            hint = f" (one of {', '.join(settings.reasons)})" if settings.reasons else ""
            return UsageError(f"needs a contact reason to close (rules.close_requires_reason){hint}", option="reason")
        return None

    values: dict = {"status": status, "boomerang_at": None, **routing.withdraw_offer_values()}
    if status == "closed":
        values.update(closed_at=now, resolved_at=now, pending_since=None)
    elif status == "pending":
        values["pending_since"] = case((C.status == "pending", C.pending_since), else_=now)
    else:  # open: somebody must hold it
        values.update(assignee_id=func.coalesce(C.assignee_id, actor.id), pending_since=None,
                      claimed_at=func.coalesce(C.claimed_at, now))
    values.update(_qualification(reason=reason, note=note, csat=csat))

    def after(s: Snap):
        assignee = s.assignee_id if status != "open" or s.assignee_id is not None else actor.id
        return status, assignee, s.group_id

    def after_write(changed):
        ids = [s.id for s in changed]
        _add_tags(session, ids, tags)
        if transcript_to is not None:
            from deskctl.services.outbound import transcripts as mail
            for cid in ids:
                mail.queue_transcript(session, cid, transcript_to, actor=actor.handle, now=now, settings=settings)
        if status == "closed":
            from deskctl.services import automations

            automations.on_events(session, "closed", ids, now=now, settings=settings)

    plan = Plan(kind="closed", check=check, values=values, after=after, prepare=prepare,
                data=lambda s: {"status": status, "tags": tags, "reason": reason, "csat": csat, "note": note})
    return _run(session, actor, spec, plan, now=now, settings=settings, dry_run=dry_run,
                after_write=after_write).records


def qualify(session, actor, spec: TargetSpec, *, tags: Sequence[str] = (), untags: Sequence[str] = (),
            reason: str | None = None, priority: str | None = None, note: str | None = None, now: datetime,
            settings, dry_run: bool = False) -> ChangeRecords:
    """Set or fix the qualification at any time, also after closing."""
    tags = _clean_tags(tags, "tag")
    untags = _clean_tags(untags, "untag")
    if not (tags or untags or reason is not None or priority is not None or note is not None):
        raise UsageError("nothing to qualify: no tag to add or remove, no contact reason, priority or note",
                         option=("tag", "untag", "reason", "priority", "note"))
    both = set(tags) & set(untags)
    if both:
        raise UsageError(f"tag {sorted(both)[0]!r} is both added and removed")
    check_reason(reason, settings)
    values = _qualification(reason=reason, priority=priority, note=note)

    def after_write(changed):
        ids = [s.id for s in changed]
        _remove_tags(session, ids, untags)
        _add_tags(session, ids, tags)

    plan = Plan(kind="qualified", check=lambda s: None, values=values,
                after=lambda s: (s.status, s.assignee_id, s.group_id),
                data=lambda s: {"tags_added": tags, "tags_removed": untags, "reason": reason,
                                "priority": priority, "note": note})
    return _run(session, actor, spec, plan, now=now, settings=settings, dry_run=dry_run,
                after_write=after_write).records


# -- reopen ---------------------------------------------------------------------------------

def reopen(session, actor, spec: TargetSpec, *, now: datetime, settings, dry_run: bool = False) -> ChangeRecords:
    """Back to `new` (from pending, resolved or closed); the assignee is kept."""
    def check(s: Snap):
        if s.status in ("new", "open"):
            return Conflict(f"is {s.status}: only pending, resolved or closed conversations can be reopened")
        return None

    plan = Plan(kind="reopened", check=check,
                values={"status": "new", "boomerang_at": None, "pending_since": None, "closed_at": None},
                after=lambda s: ("new", s.assignee_id, s.group_id),
                data=lambda s: {"previous_status": s.status, "cause": "manual"})
    return _run(session, actor, spec, plan, now=now, settings=settings, dry_run=dry_run).records


# -- merge ----------------------------------------------------------------------------------

def merge(session, actor, duplicate_id: int, into_id: int, *, now: datetime, settings,
          dry_run: bool = False) -> list[dict]:
    """Move the duplicate's messages, notes and watchers to `into_id`, then close it with
    `linked_to` = `into_id`. Returns the change records of both conversations."""
    if duplicate_id == into_id:
        raise UsageError("cannot merge a conversation into itself")
    names = Names(session)
    snaps = _snapshots(session, [duplicate_id, into_id])
    for cid in (duplicate_id, into_id):
        if cid not in snaps:
            raise NotFound(f"conversation not found: #{cid}")
    forbidden = permissions.forbidden_ids(session, actor, [duplicate_id, into_id], settings)
    if forbidden:
        raise Forbidden(f"#{forbidden[0]}: {permissions.forbidden_error(actor).format_message()}")
    dup, into = snaps[duplicate_id], snaps[into_id]
    if dup.status == "closed":
        raise Conflict(f"#{duplicate_id}: is closed: reopen it before merging it")
    if into.status == "closed":
        raise Conflict(f"#{into_id}: is closed: reopen it, or merge the other way round")

    def record(s: Snap, status: str) -> dict:
        return {"id": s.id, "status": status, "assignee": names.user(s.assignee_id),
                "group": names.group(s.group_id), "previous_status": s.status,
                "previous_assignee": names.user(s.assignee_id), "previous_group": names.group(s.group_id)}

    records = [record(dup, "closed"), record(into, into.status)]
    if dry_run:
        return records
    for s, values in (
        (dup, {"status": "closed", "linked_to_id": into_id, "closed_at": now, "resolved_at": now,
               "boomerang_at": None, "pending_since": None, **routing.withdraw_offer_values()}),
        (into, {}),
    ):
        result = session.execute(update(C).where(C.id == s.id, C.version == s.version)
                                 .values(**values, version=C.version + 1, updated_at=now)
                                 .execution_options(synchronize_session=False))
        if result.rowcount != 1:
            raise lost_race()
    session.execute(update(Message).where(Message.conversation_id == duplicate_id)
                    .values(conversation_id=into_id).execution_options(synchronize_session=False))
    session.execute(update(Note).where(Note.conversation_id == duplicate_id)
                    .values(conversation_id=into_id).execution_options(synchronize_session=False))
    watcher_ids = list(session.scalars(select(Watcher.user_id).where(Watcher.conversation_id == duplicate_id)))
    for user_id in watcher_ids:
        _add_watchers(session, [into_id], user_id, now)
    session.execute(delete(Watcher).where(Watcher.conversation_id == duplicate_id))
    # The survivor's message timestamps now cover both threads.
    stats = session.execute(
        select(func.min(Message.created_at).filter(Message.direction == "inbound"),
               func.max(Message.created_at).filter(Message.direction == "inbound"),
               func.min(Message.created_at).filter(Message.direction == "outbound"),
               func.max(Message.created_at).filter(Message.direction == "outbound"))
        .where(Message.conversation_id == into_id)).one()
    session.execute(update(C).where(C.id == into_id).values(
        first_inbound_at=stats[0], last_inbound_at=stats[1], first_response_at=stats[2],
        last_outbound_at=stats[3]).execution_options(synchronize_session=False))
    events.record_many(session, [
        {"conversation_id": duplicate_id, "actor": actor.handle, "kind": "merged", "at": now,
         "data": {"into": into_id}},
        {"conversation_id": into_id, "actor": actor.handle, "kind": "merged", "at": now,
         "data": {"from": duplicate_id}},
    ])
    sla.refresh(session, [duplicate_id, into_id], now=now, settings=settings)
    return records


# -- a count for the confirmation prompt ------------------------------------------------------

def count_targets(session, actor, spec: TargetSpec) -> int:
    if spec.explicit:
        ids, _ = resolve_target_ids(session, spec, actor_id=actor.id)
        return len(ids)
    check_selects_something(spec)
    stmt = select_conversations(session, spec.filter, actor_id=actor.id, sort=target_sort(spec), limit=spec.limit)
    return session.scalar(select(func.count()).select_from(stmt.subquery()))
