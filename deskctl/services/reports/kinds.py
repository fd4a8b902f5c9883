"""Reports (SPEC §6): aggregation queries, one function per KIND, rows in spec column order.

Every number is computed by the database (GROUP BY over indexed columns, COUNT, SUM,
AVG; medians and p90 with `percentile_cont` on PostgreSQL and a window-function query on
SQLite that returns only the rows at the percentile positions). Python only merges the
few aggregated rows of each query by key and fills in empty periods. Read-only.

Definitions (also in `deskctl report --help` and docs/reports.md):
- A period is [since, until): `--by day|week|month` cut it at local midnights of the
  configured timezone (weeks start on Monday); the key is the period's first day.
- `handle_s`: seconds from a conversation's creation to its last resolution or closing
  (`resolved_at`), for conversations currently resolved or closed.
- `first_response_s`: seconds from its first inbound message to its first reply.
- Durations are whole seconds (differences of truncated epoch seconds), medians and
  p90 are interpolated (`percentile_cont`) and rounded half up to whole seconds.
- `pct` values are 0-100, one decimal, rounded half up; null when nothing to divide.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Date,
    Float,
    Integer,
    and_,
    case,
    cast,
    distinct,
    extract,
    func,
    literal_column,
    or_,
    select,
)
from sqlalchemy.orm import Session, aliased

from deskctl.errors import UsageError
from deskctl.models import Conversation, ConversationTag, Event, Group, Location, User
from deskctl.services.conversations.selection import ConversationFilter, apply_filter
from deskctl.vocab import REPORT_KINDS, REPORT_TIME_KEYS

FINISHED = ("resolved", "closed")
DEFAULT_DAYS = 7


@dataclass(frozen=True)
class ReportColumn:
    """name and kind: int | float | duration | str | date | datetime | list."""

    name: str
    kind: str


def _cols(*pairs: tuple[str, str]) -> tuple[ReportColumn, ...]:
    return tuple(ReportColumn(n, k) for n, k in pairs)


# SPEC §6, in order, after the key column.
COLUMNS: dict[str, tuple[ReportColumn, ...]] = {
    "volume": _cols(("created", "int"), ("resolved", "int"), ("closed", "int"), ("reopened", "int"),
                    ("backlog_end", "int")),
    "sla": _cols(("conversations", "int"), ("first_response_met", "int"), ("first_response_breached", "int"),
                 ("first_response_pct", "float"), ("resolution_met", "int"), ("resolution_breached", "int"),
                 ("resolution_pct", "float"), ("median_first_response_s", "duration"),
                 ("p90_first_response_s", "duration")),
    "agents": _cols(("claimed", "int"), ("transferred_in", "int"), ("transferred_out", "int"), ("replies", "int"),
                    ("resolved", "int"), ("closed", "int"), ("median_handle_s", "duration"),
                    ("offered", "int"), ("declined", "int"), ("rona", "int")),
    "tags": _cols(("conversations", "int"), ("median_handle_s", "duration"), ("mean_handle_s", "duration")),
    "csat": _cols(("rated", "int"), ("mean_csat", "float"), ("pct_4_or_5", "float")),
    "backlog": _cols(("new", "int"), ("open", "int"), ("pending", "int"), ("resolved", "int"), ("breached", "int")),
    "conversations": _cols(("subject", "str"), ("channel", "str"), ("group", "str"), ("assignee", "str"),
                           ("status", "str"), ("priority", "str"), ("tags", "list"), ("reason", "str"),
                           ("created_at", "datetime"), ("first_response_s", "duration"), ("handle_s", "duration"),
                           ("csat", "int"), ("sla_breached", "list")),
}

# What each report counts: shown by `deskctl report [KIND] --help`.
DEFINITIONS: dict[str, str] = {
    "volume": (
        "created: conversations created in the period. resolved / closed / reopened: distinct "
        "conversations with a `resolved`, `closed` (closing status closed, or auto-closed) or "
        "`reopened` event in the period. backlog_end: conversations not resolved or closed at the end "
        "of the period (created before it, minus those whose last resolution or closing came before "
        "it). With --by agent the key is the current assignee."
    ),
    "sla": (
        "Conversations created in the period. *_breached: those with an `sla_breached` event for the "
        "target (first_response, resolution); *_met: those answered (first response) or resolved/closed "
        "(resolution) without that breach; *_pct = met / (met + breached) x 100. "
        "median/p90_first_response_s: first inbound message to first reply."
    ),
    "agents": (
        "By the acting user of each event in the period: claimed (claims and steals), "
        "transferred_in / transferred_out (transfers to / away from the agent), replies (outbound "
        "messages), resolved, closed (closing status closed). median_handle_s: conversations assigned to "
        "the agent whose last resolution or closing falls in the period. Routing (SPEC §10): offered "
        "(offers made to the agent), declined (offers they refused), rona (offers they let expire)."
    ),
    "tags": (
        "Conversations resolved or closed in the period (last resolution or closing) and still so, by "
        "qualification tag with --by tag (untagged: empty key): count, median and mean handle_s "
        "(creation to last resolution or closing)."
    ),
    "csat": (
        "Conversations with a satisfaction score (1-5) whose last resolution or closing falls in the "
        "period: rated, mean_csat (two decimals), pct_4_or_5 (share rated 4 or 5)."
    ),
    "backlog": (
        "Now: conversations not closed by current status, and breached = those whose SLA state is "
        "breached. Default --by group; with --by day/week/month they are bucketed by creation time "
        "within the period, otherwise the period is ignored."
    ),
    "conversations": (
        "One row per conversation whose last resolution or closing falls in the period, key id; "
        "first_response_s, handle_s in seconds; sla_breached lists the breached SLA targets. --by is ignored."
    ),
}

DEFAULT_BY = {kind: "day" for kind in REPORT_KINDS} | {"tags": "tag", "backlog": "group"}


def columns_for(kind: str, by: str) -> list[ReportColumn]:
    if kind == "conversations":
        key = ReportColumn("id", "int")
    else:
        key = ReportColumn(by, "date" if by in REPORT_TIME_KEYS else "str")
    return [key, *COLUMNS[kind]]


def default_period(now: datetime, tz: str) -> tuple[datetime, datetime]:
    """The last 7 days: from local midnight six days ago (today included) until now."""
    zone = ZoneInfo(tz)
    today = now.astimezone(zone).date()
    return local_midnight(today - timedelta(days=DEFAULT_DAYS - 1), zone), now


def local_midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), zone).astimezone(UTC)


def period_start(day: date, by: str) -> date:
    if by == "week":
        return day - timedelta(days=day.weekday())
    if by == "month":
        return day.replace(day=1)
    return day


def next_period(day: date, by: str) -> date:
    if by == "week":
        return day + timedelta(days=7)
    if by == "month":
        return (day.replace(day=28) + timedelta(days=4)).replace(day=1)
    return day + timedelta(days=1)


# -- the query context ------------------------------------------------------------------

@dataclass
class _Ctx:
    session: Session
    dialect: str
    kind: str
    by: str
    since: datetime
    until: datetime
    tz: str
    zone: ZoneInfo
    flt: ConversationFilter
    actor_id: int | None
    channels: Sequence[str] | None

    @property
    def timed(self) -> bool:
        return self.by in REPORT_TIME_KEYS

    @property
    def pg(self) -> bool:
        return self.dialect == "postgresql"

    def norm(self, value):
        """A key as read from the database → the key of the report row: the period's first
        day, or the handle/name for the ids that agent/group/location keys group by."""
        if self.timed:
            if isinstance(value, datetime):
                return value.date()
            return date.fromisoformat(value) if isinstance(value, str) else value
        if isinstance(value, int) and self.by in ("agent", "group", "location"):
            names = self.__dict__.get("_names")
            if names is None:
                key, column = {"agent": (User.id, User.handle), "group": (Group.id, Group.name),
                               "location": (Location.id, Location.name)}[self.by]
                names = self.__dict__["_names"] = dict(self.session.execute(select(key, column)).all())
            return names.get(value, str(value))
        return value

    def bucket_keys(self) -> list[date]:
        first = period_start(self.since.astimezone(self.zone).date(), self.by)
        last = period_start((self.until - timedelta(microseconds=1)).astimezone(self.zone).date(), self.by)
        keys = []
        while first <= last:
            keys.append(first)
            first = next_period(first, self.by)
        return keys


def _offset_segments(zone: ZoneInfo, since: datetime, until: datetime) -> list[tuple[datetime | None, int]]:
    """[(segment end or None for the last, UTC offset seconds)] over [since, until)."""

    def offset(ts: int) -> int:
        utcoffset = datetime.fromtimestamp(ts, zone).utcoffset()
        assert utcoffset is not None  # an aware datetime always has one
        return int(utcoffset.total_seconds())

    start, end = int(since.timestamp()), int(until.timestamp()) + 1
    current = offset(start)
    segments: list[tuple[datetime | None, int]] = []
    t = start
    while t < end:
        nxt = min(t + 86400, end)  # transitions are months apart: a day step cannot miss one
        if offset(nxt) != current:
            lo, hi = t, nxt  # offset(lo) == current != offset(hi): bisect to the second
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if offset(mid) == current:
                    lo = mid
                else:
                    hi = mid
            segments.append((datetime.fromtimestamp(hi, UTC), current))
            current = offset(hi)
        t = nxt
    segments.append((None, current))
    return segments


def _period_expr(ctx: _Ctx, ts):
    """The local period (day, Monday of the week, 1st of the month) of a UTC timestamp column."""
    if ctx.pg:
        return cast(func.date_trunc(ctx.by, func.timezone(ctx.tz, ts)), Date)
    tail = {"day": (), "week": ("-6 days", "weekday 1"), "month": ("start of month",)}[ctx.by]

    def local(offset: int):
        mods = (f"{offset:+d} seconds",) if offset else ()
        return func.date(ts, *mods, *tail)

    segments = _offset_segments(ctx.zone, ctx.since, ctx.until)
    if len(segments) == 1:
        return local(segments[0][1])
    return case(*[(ts < end, local(off)) for end, off in segments[:-1]], else_=local(segments[-1][1]))


def seconds_between(dialect: str, later, earlier):
    """Whole seconds between two timestamp columns (difference of truncated epoch seconds)."""
    if dialect == "postgresql":
        return cast(func.floor(extract("epoch", later)) - func.floor(extract("epoch", earlier)), Integer)
    return cast(func.strftime("%s", later), Integer) - cast(func.strftime("%s", earlier), Integer)


def _dimension(ctx: _Ctx):
    """(key expression, [(joined entity, on clause)]) for a non-time key over conversations.
    Agents, groups and locations group by their id (no join per row); ctx.norm names them."""
    c = Conversation
    if ctx.by == "agent":
        return c.assignee_id, []
    if ctx.by == "group":
        return c.group_id, []
    if ctx.by == "location":
        return c.location_id, []
    if ctx.by == "channel":
        return c.channel, []
    if ctx.by == "tag":
        t = aliased(ConversationTag)  # aliased: `--tag` filters use their own EXISTS
        return t.tag, [(t, t.conversation_id == c.id)]
    raise AssertionError(ctx.by)


def _filtered(ctx: _Ctx, stmt):
    if ctx.flt.is_empty():
        return stmt
    return apply_filter(stmt, ctx.session, ctx.flt, actor_id=ctx.actor_id, channels=ctx.channels)


def _conv_select(ctx: _Ctx, ts, *columns, where=(), in_period: bool = True):
    """SELECT key AS k, columns FROM conversations [joins] WHERE ts in period, filters.
    Returns (statement, key expression) for the caller to GROUP BY."""
    c = Conversation
    joins = []
    if ctx.timed:
        key = _period_expr(ctx, ts)
    else:
        key, joins = _dimension(ctx)
    stmt = select(key.label("k"), *columns).select_from(c)
    for entity, onclause in joins:
        stmt = stmt.outerjoin(entity, onclause)
    if ts is not None and in_period:
        stmt = stmt.where(ts >= ctx.since, ts < ctx.until)
    stmt = _filtered(ctx, stmt.where(*where))
    return stmt, key


def _event_select(ctx: _Ctx, kinds: Sequence[str], *columns, agent=None, where=()):
    """SELECT key AS k, columns FROM events [JOIN conversations] for events of these kinds
    in the period. `agent`: the key for --by agent (default: the conversation's assignee)."""
    e, c = Event, Conversation
    need_conv = not ctx.flt.is_empty() or ctx.by in ("group", "location", "channel", "tag") or (
        ctx.by == "agent" and agent is None)
    joins = []
    if ctx.timed:
        key = _period_expr(ctx, e.at)
    elif ctx.by == "agent" and agent is not None:
        key = agent
    else:
        key, joins = _dimension(ctx)
    stmt = select(key.label("k"), *columns).select_from(e)
    if need_conv:
        stmt = stmt.join(c, c.id == e.conversation_id)
        for entity, onclause in joins:
            stmt = stmt.outerjoin(entity, onclause)
    kind_clause = e.kind == kinds[0] if len(kinds) == 1 else e.kind.in_(kinds)
    stmt = stmt.where(kind_clause, e.at >= ctx.since, e.at < ctx.until, *where)
    return _filtered(ctx, stmt), key


def _grouped(ctx: _Ctx, stmt, key) -> dict:
    """{key: (aggregates...)} of a _conv_select/_event_select statement grouped by its key."""
    # By the output name: PostgreSQL would not match a repeated expression with bound parameters.
    return {ctx.norm(row[0]): tuple(row[1:]) for row in ctx.session.execute(stmt.group_by(literal_column("k")))}


def _percentiles(ctx: _Ctx, stmt, fractions: Sequence[float]) -> dict:
    """{key: [percentile_cont(f) for f in fractions]} of the `v` column of `stmt` (k, v)."""
    sub = stmt.subquery()
    if ctx.pg:
        q = select(sub.c.k, *[func.percentile_cont(f).within_group(cast(sub.c.v, Float)) for f in fractions])
        return {ctx.norm(k): [None if x is None else float(x) for x in vals]
                for k, *vals in ctx.session.execute(q.group_by(sub.c.k))}
    # SQLite: the deskctl_percentiles aggregate (db/sqlite_functions.py), same definition.
    spec = ",".join(repr(float(f)) for f in fractions)
    q = select(sub.c.k, func.deskctl_percentiles(sub.c.v, spec))
    return {ctx.norm(k): json.loads(values) for k, values in ctx.session.execute(q.group_by(sub.c.k))
            if values is not None}


def _round(value) -> int | None:
    """Half up to whole seconds."""
    if value is None:
        return None
    import math

    return int(math.floor(float(value) + 0.5))


def _ratio(numerator: int, denominator: int, scale: int, digits: int) -> float | None:
    """numerator/denominator x scale, rounded half up to `digits` decimals, exactly."""
    if not denominator:
        return None
    unit = 10 ** digits
    scaled = (2 * numerator * scale * unit + denominator) // (2 * denominator)
    return scaled / unit


def _pct(numerator: int, denominator: int) -> float | None:
    return _ratio(numerator, denominator, 100, 1)


# -- the reports -------------------------------------------------------------------------

def _count_or_zero(value) -> int:
    return int(value or 0)


def _volume(ctx: _Ctx) -> dict:
    c, e = Conversation, Event
    out: dict = defaultdict(dict)
    for k, (n,) in _grouped(ctx, *_conv_select(ctx, c.created_at, func.count())).items():
        out[k]["created"] = n
    closed_status = func.coalesce(e.data["status"].as_string(), "closed")
    for column, kinds, where in (
        ("resolved", ("resolved",), ()),
        ("closed", ("closed", "auto_closed"), (or_(e.kind == "auto_closed", closed_status == "closed"),)),
        ("reopened", ("reopened",), ()),
    ):
        stmt, key = _event_select(ctx, kinds, func.count(distinct(e.conversation_id)), where=where)
        for k, (n,) in _grouped(ctx, stmt, key).items():
            out[k][column] = n
    # backlog at a moment t = created before t - finished (resolved/closed now) before t.
    finished = c.status.in_(FINISHED)
    if not ctx.timed:
        not_done = ~and_(finished, c.resolved_at < ctx.until)
        stmt, key = _conv_select(ctx, c.created_at, func.count(), where=(c.created_at < ctx.until, not_done),
                                 in_period=False)
        for k, (n,) in _grouped(ctx, stmt, key).items():
            out[k]["backlog_end"] = n
        return out
    # Finished before the period = all finished - finished in it - finished after it: three
    # index range counts (status; resolved_at, status) instead of a scan of all history.
    def count(*where) -> int:
        return ctx.session.scalar(_filtered(ctx, select(func.count()).select_from(c).where(*where)))

    finished_per = _grouped(ctx, *_conv_select(ctx, c.resolved_at, func.count(), where=(finished,)))
    finished_in = sum(n for (n,) in finished_per.values())
    finished_before = count(finished) - finished_in - count(c.resolved_at >= ctx.until, finished)
    backlog = count(c.created_at < ctx.since) - finished_before
    for k in ctx.bucket_keys():
        backlog += out.get(k, {}).get("created", 0) - finished_per.get(k, (0,))[0]
        out[k]["backlog_end"] = backlog
    return out


def _sla(ctx: _Ctx) -> dict:
    c, e = Conversation, Event
    out: dict = defaultdict(dict)
    responded = func.sum(case((c.first_response_at.is_not(None), 1), else_=0))
    resolved = func.sum(case((c.resolved_at.is_not(None) & c.status.in_(FINISHED), 1), else_=0))
    base = _grouped(ctx, *_conv_select(ctx, c.created_at, func.count(), responded, resolved))
    # Breaches: every sla_breached event comes after its conversation's creation, so only
    # events since the period's start can belong to conversations created in it. The
    # (conversation, target) pairs are selected first (few rows, by the kind/at index),
    # then joined to their conversations by primary key.
    target = e.data["target"].as_string()
    pairs = (select(e.conversation_id.label("cid"), target.label("target"))
             .where(e.kind == "sla_breached", e.at >= ctx.since, target.in_(("first_response", "resolution")))
             .distinct().subquery())
    breach_stmt, key = _conv_select(
        ctx, c.created_at, pairs.c.target.label("target"), func.count(),
        func.sum(case((c.first_response_at.is_not(None), 1), else_=0)),
        func.sum(case((c.resolved_at.is_not(None) & c.status.in_(FINISHED), 1), else_=0)))
    breach_stmt = breach_stmt.join(pairs, pairs.c.cid == c.id)
    breaches: dict = defaultdict(dict)
    grouping = breach_stmt.group_by(literal_column("k"), literal_column("target"))
    for k, tgt, n, n_responded, n_resolved in ctx.session.execute(grouping):
        breaches[ctx.norm(k)][tgt] = (n, int(n_responded or 0), int(n_resolved or 0))
    frs = seconds_between(ctx.dialect, c.first_response_at, c.first_inbound_at)
    pct_stmt, _ = _conv_select(ctx, c.created_at, frs.label("v"),
                               where=(c.first_response_at.is_not(None), c.first_inbound_at.is_not(None),
                                      c.first_response_at >= c.first_inbound_at))
    percentiles = _percentiles(ctx, pct_stmt, (0.5, 0.9))
    for k, (total, n_responded, n_resolved) in base.items():
        fr_breached, fr_breached_responded, _ = breaches.get(k, {}).get("first_response", (0, 0, 0))
        res_breached, _, res_breached_resolved = breaches.get(k, {}).get("resolution", (0, 0, 0))
        fr_met = _count_or_zero(n_responded) - fr_breached_responded
        res_met = _count_or_zero(n_resolved) - res_breached_resolved
        median, p90 = percentiles.get(k, (None, None))
        out[k].update(
            conversations=total, first_response_met=fr_met, first_response_breached=fr_breached,
            first_response_pct=_pct(fr_met, fr_met + fr_breached), resolution_met=res_met,
            resolution_breached=res_breached, resolution_pct=_pct(res_met, res_met + res_breached),
            median_first_response_s=_round(median), p90_first_response_s=_round(p90))
    return out


def _handle_select(ctx: _Ctx, *columns):
    c = Conversation
    handle = seconds_between(ctx.dialect, c.resolved_at, c.created_at)
    return _conv_select(ctx, c.resolved_at, *columns, handle.label("v"), where=(c.status.in_(FINISHED),))


def _agents(ctx: _Ctx) -> dict:
    e = Event
    out: dict = defaultdict(dict)
    to_user, from_user = e.data["to_user"].as_string(), e.data["from_user"].as_string()
    routed_user = e.data["user"].as_string()
    closed_status = func.coalesce(e.data["status"].as_string(), "closed")
    for column, kinds, agent, where in (
        ("claimed", ("claimed", "stolen"), e.actor, ()),
        ("transferred_in", ("transferred",), to_user, (to_user.is_not(None),)),
        ("transferred_out", ("transferred",), from_user, (from_user.is_not(None),)),
        ("replies", ("message_out",), e.actor, ()),
        ("resolved", ("resolved",), e.actor, ()),
        ("closed", ("closed",), e.actor, (closed_status == "closed",)),
        ("offered", ("offered",), routed_user, ()),
        ("declined", ("declined",), e.actor, ()),
        ("rona", ("offer_expired",), routed_user, ()),
    ):
        for k, (n,) in _grouped(ctx, *_event_select(ctx, kinds, func.count(), agent=agent, where=where)).items():
            out[k][column] = n
    stmt, _ = _handle_select(ctx)
    for k, (median,) in _percentiles(ctx, stmt, (0.5,)).items():
        out[k]["median_handle_s"] = _round(median)
    return out


def _tags(ctx: _Ctx) -> dict:
    out: dict = defaultdict(dict)
    stmt, key = _handle_select(ctx)
    sub = stmt.subquery()
    for k, n, mean in ctx.session.execute(select(sub.c.k, func.count(), func.avg(sub.c.v)).group_by(sub.c.k)):
        out[ctx.norm(k)].update(conversations=n, mean_handle_s=_round(mean))
    for k, (median,) in _percentiles(ctx, stmt, (0.5,)).items():
        out[k]["median_handle_s"] = _round(median)
    return out


def _csat(ctx: _Ctx) -> dict:
    c = Conversation
    out: dict = defaultdict(dict)
    stmt, key = _conv_select(ctx, c.resolved_at, func.count(), func.sum(c.csat),
                             func.sum(case((c.csat >= 4, 1), else_=0)), where=(c.csat.is_not(None),))
    for k, (n, total, high) in _grouped(ctx, stmt, key).items():
        out[k].update(rated=n, mean_csat=_ratio(int(total or 0), n, 1, 2), pct_4_or_5=_pct(int(high or 0), n))
    return out


def _backlog(ctx: _Ctx) -> dict:
    c = Conversation
    out: dict = defaultdict(dict)
    columns = [func.sum(case((c.status == s, 1), else_=0)) for s in ("new", "open", "pending", "resolved")]
    columns.append(func.sum(case((c.sla_state == "breached", 1), else_=0)))
    stmt, key = _conv_select(ctx, c.created_at, *columns, where=(c.status != "closed",), in_period=ctx.timed)
    for k, values in _grouped(ctx, stmt, key).items():
        out[k].update(zip(("new", "open", "pending", "resolved", "breached"), (int(v or 0) for v in values),
                          strict=True))
    return out


AGGREGATES = {"volume": _volume, "sla": _sla, "agents": _agents, "tags": _tags, "csat": _csat,
              "backlog": _backlog}

_ZERO_IS_EMPTY = {"int"}


def _rows(ctx: _Ctx, values: dict) -> Iterator[dict]:
    columns = COLUMNS[ctx.kind]
    if ctx.timed:
        keys = ctx.bucket_keys()  # every period, empty ones included
    else:
        keys = sorted(values, key=lambda k: (k is None, str(k) if k is not None else ""))
    for k in keys:
        got = values.get(k, {})
        row = {ctx.by: k.isoformat() if isinstance(k, date) else k}
        for col in columns:
            value = got.get(col.name)
            if value is None and col.kind in _ZERO_IS_EMPTY:
                value = 0
            row[col.name] = value
        yield row


# -- conversations: one row per conversation ----------------------------------------------

BATCH = 1000


_SEP = "\x1f"  # joins list values inside SQLite (tag names may contain commas)


def _list_of(ctx: _Ctx, column, *where):
    """A correlated scalar subquery: the values of `column` for the row's conversation, as
    an array (PostgreSQL) or a joined string (SQLite); see _split."""
    if ctx.pg:
        return select(func.array_agg(column)).where(*where).scalar_subquery()
    return select(func.group_concat(column, _SEP)).where(*where).scalar_subquery()


def _split(value) -> list[str]:
    if value is None:
        return []
    items = value.split(_SEP) if isinstance(value, str) else value
    return sorted({item for item in items if item})


def _conversation_rows(ctx: _Ctx) -> Iterator[dict]:
    """One statement, streamed: tags and breached targets come from correlated subqueries
    on (conversation_id, ...) indexes, so there is no per-batch IN list."""
    c, e = Conversation, Event
    u, g = aliased(User), aliased(Group)
    frs = case((c.first_response_at >= c.first_inbound_at,
                seconds_between(ctx.dialect, c.first_response_at, c.first_inbound_at)))
    handle = seconds_between(ctx.dialect, c.resolved_at, c.created_at)
    t = aliased(ConversationTag)
    tags = _list_of(ctx, t.tag, t.conversation_id == c.id)
    breached = _list_of(ctx, e.data["target"].as_string(), e.conversation_id == c.id, e.kind == "sla_breached")
    stmt = (
        select(c.id, c.subject, c.channel, g.name, u.handle, c.status, c.priority, c.reason, c.created_at,
               frs, handle, c.csat, tags, breached)
        .select_from(c)
        .outerjoin(u, u.id == c.assignee_id)
        .outerjoin(g, g.id == c.group_id)
        .where(c.resolved_at >= ctx.since, c.resolved_at < ctx.until)
        .order_by(c.id)
    )
    stmt = _filtered(ctx, stmt)
    for (cid, subject, channel, group, assignee, status, priority, reason, created_at, first_s, handle_s,
         csat, tag_list, breach_list) in ctx.session.connection().execute(stmt.execution_options(yield_per=BATCH)):
        yield {
            "id": cid, "subject": subject, "channel": channel, "group": group, "assignee": assignee,
            "status": status, "priority": priority, "tags": _split(tag_list), "reason": reason,
            "created_at": created_at, "first_response_s": None if first_s is None else int(first_s),
            "handle_s": None if handle_s is None else int(handle_s), "csat": csat,
            "sla_breached": _split(breach_list),
        }


# -- entry point ---------------------------------------------------------------------------

def run_report(session, kind: str, *, since: datetime | None, until: datetime | None, by: str | None,
               settings, now: datetime, flt: ConversationFilter | None = None,
               actor_id: int | None = None) -> tuple[list[ReportColumn], Iterator[dict]]:
    """(columns, rows) of report KIND over [since, until) (default: the last 7 days),
    grouped by `by` (default DEFAULT_BY[kind]). Reads only."""
    by = by or DEFAULT_BY[kind]  # kind and by are names of vocab.REPORT_KINDS and REPORT_BY
    tz = settings.timezone
    if since is None:  # the 7 local days up to --until (default: up to now, today included)
        since = default_period(now if until is None else until - timedelta(microseconds=1), tz)[0]
    until = until or now
    if since >= until:
        raise UsageError("the start of the period must be before its end", option=("since", "until"))
    ctx = _Ctx(session=session, dialect=session.get_bind().dialect.name, kind=kind, by=by, since=since,
               until=until, tz=tz, zone=ZoneInfo(tz), flt=flt or ConversationFilter(), actor_id=actor_id,
               channels=settings.channels)
    if not ctx.flt.is_empty():  # validate (and fail on unknown names) before any output
        apply_filter(select(Conversation.id), session, ctx.flt, actor_id=actor_id, channels=settings.channels)
    columns = columns_for(kind, by)
    if kind == "conversations":
        return columns, _conversation_rows(ctx)
    values = AGGREGATES[kind](ctx)
    return columns, _rows(ctx, values)
