"""Read models: conversation records (SPEC §7) built with a few set-based queries per
batch of rows, so `list` streams a million conversations in constant memory."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from datetime import datetime
from functools import cache

from sqlalchemy import ARRAY, Integer, Select, any_, bindparam, select
from sqlalchemy.orm import aliased

from deskctl import clock
from deskctl.db.types import UTCDateTime
from deskctl.models import (
    Contact,
    Conversation,
    ConversationTag,
    Group,
    Location,
    SlaMark,
    User,
    Watcher,
)
from deskctl.services.sla import deadlines as sla
from deskctl.services.sla.core import TARGETS

BATCH = 1000

# Plain columns, not the mapped entity: no identity map to fill and empty again per row
# (expunging 100k ORM objects took most of `list`'s time; see docs/benchmarks.md).
_RECORD_COLUMNS = (
    Conversation.id, Conversation.subject, Conversation.status, Conversation.channel, Conversation.priority,
    Conversation.reason, Conversation.created_at, Conversation.updated_at, Conversation.boomerang_at,
    Conversation.linked_to_id, Conversation.closing_note, Conversation.csat, Conversation.sla_policy,
    Conversation.sla_state, Conversation.first_response_due, Conversation.next_response_due,
    Conversation.resolution_due, Conversation.first_response_at, Conversation.resolved_at,
    Conversation.closed_at, Conversation.offer_expires_at,
)
# The reader's time: the SLA state and late targets are evaluated when read (SPEC §9).
_NOW = bindparam("now", type_=UTCDateTime())


def _sla_columns() -> tuple:
    """The SLA reading at `:now`: the state, and per target whether it is running late."""
    late = sla.running_late(_NOW)
    return (sla.read_state(_NOW).label("sla_read_state"),
            *(condition.label(f"late_{target}") for target, condition in late.items()))


def _base_select() -> Select:
    assignee = aliased(User)
    offered = aliased(User)
    return (
        select(
            *_RECORD_COLUMNS,
            *_sla_columns(),
            assignee.handle.label("assignee"),
            offered.handle.label("offered_to"),
            Group.name.label("group"),
            Location.name.label("location"),
            Contact.id.label("contact_id"),
            Contact.name.label("contact_name"),
            Contact.email.label("contact_email"),
            Contact.vip.label("contact_vip"),
        )
        .outerjoin(assignee, assignee.id == Conversation.assignee_id)
        .outerjoin(offered, offered.id == Conversation.offered_to)
        .outerjoin(Group, Group.id == Conversation.group_id)
        .outerjoin(Location, Location.id == Conversation.location_id)
        .outerjoin(Contact, Contact.id == Conversation.contact_id)
    )


@cache
def _batch_statements(dialect: str) -> tuple[Select, Select, Select, Select]:
    """The four per-batch queries, built once per process with one `ids` parameter:
    building `in_(ids)` afresh coerced every id and recompiled each batch.

    SQLite gets an expanding `IN (...)`; PostgreSQL `= ANY(:ids)` with the list sent as
    one array, as expanding 1,000 placeholders (and psycopg splitting the query around
    them) cost a quarter of `list`'s time there."""
    if dialect == "postgresql":
        ids = bindparam("ids", type_=ARRAY(Integer))

        def matches(column):
            return column == any_(ids)
    else:
        ids = bindparam("ids", expanding=True)

        def matches(column):
            return column.in_(ids)
    return (
        _base_select().where(matches(Conversation.id)),
        select(ConversationTag.conversation_id, ConversationTag.tag)
        .where(matches(ConversationTag.conversation_id))
        .order_by(ConversationTag.tag),
        select(Watcher.conversation_id, User.handle)
        .join(User, User.id == Watcher.user_id)
        .where(matches(Watcher.conversation_id))
        .order_by(User.handle),
        select(SlaMark.conversation_id, SlaMark.target)
        .where(matches(SlaMark.conversation_id), SlaMark.level == "breached")
        .order_by(SlaMark.target),
    )


def conversation_records(session, id_select: Select) -> Iterator[dict]:
    """Records for the conversations `id_select` yields, in its order, batch by batch."""
    result = session.execute(id_select.execution_options(yield_per=BATCH))
    for partition in result.partitions(BATCH):
        ids = [row[0] for row in partition]
        yield from records_for_ids(session, ids)


def records_for_ids(session, ids: Sequence[int], now: datetime | None = None) -> list[dict]:
    """Records of these conversations, in this order; the SLA read at `now` (the clock)."""
    if not ids:
        return []
    now = now if now is not None else clock.now()
    # Plain Core rows through the session's connection: no ORM loading step per row
    # (and so no autoflush: flush what the caller changed first).
    session.flush()
    conn = session.connection()
    records_stmt, tags_stmt, watchers_stmt, breached_stmt = _batch_statements(conn.dialect.name)
    params = {"ids": list(ids)}
    rows = conn.execute(records_stmt, {**params, "now": now}).all()
    tags: dict[int, list[str]] = defaultdict(list)
    for cid, tag in conn.execute(tags_stmt, params):
        tags[cid].append(tag)
    watchers: dict[int, list[str]] = defaultdict(list)
    for cid, handle in conn.execute(watchers_stmt, params):
        watchers[cid].append(handle)
    breached: dict[int, list[str]] = defaultdict(list)
    for cid, target in conn.execute(breached_stmt, params):
        breached[cid].append(target)
    by_id = {}
    for row in rows:
        conv = row  # the conversation's own columns, by name
        late_now = [t for t in TARGETS if getattr(row, f"late_{t}")]
        # One list, one state: the marks plus what is running late at `now`.
        late = sorted(set(breached.get(conv.id, ())) | set(late_now))
        by_id[conv.id] = {
            "id": conv.id,
            "subject": conv.subject,
            "status": conv.status,
            "channel": conv.channel,
            "priority": conv.priority,
            "assignee": row.assignee,
            "group": row.group,
            "location": row.location,
            "contact": (
                {"id": row.contact_id, "name": row.contact_name, "email": row.contact_email,
                 "vip": bool(row.contact_vip)}
                if row.contact_id is not None else None
            ),
            "tags": tags.get(conv.id, []),
            "reason": conv.reason,
            "watchers": watchers.get(conv.id, []),
            "created_at": conv.created_at,
            "updated_at": conv.updated_at,
            "boomerang_at": conv.boomerang_at,
            "linked_to": conv.linked_to_id,
            "offered_to": row.offered_to,
            "offer_expires_at": conv.offer_expires_at,
            "closing_note": conv.closing_note,
            "csat": conv.csat,
            "sla": {
                "policy": conv.sla_policy,
                "state": row.sla_read_state,
                "first_response_due": conv.first_response_due,
                "next_response_due": conv.next_response_due,
                "resolution_due": conv.resolution_due,
                "breached": late,
                **sla.reading(row, late, late_now, now),
            },
        }
    return [by_id[i] for i in ids if i in by_id]
