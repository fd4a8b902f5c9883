"""Conversation selection shared by `list`, every bulk verb, `inbox` and reports:
filter options → one SELECT; targets (ids, `-`, filters, --limit) → conversation ids."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime

from sqlalchemy import Select, case, exists, select

from deskctl.db.bulk import chunks  # IN lists in slices; imported from here by other services
from deskctl.errors import DeskError, NotFound, UsageError
from deskctl.models import (
    Conversation,
    ConversationTag,
    Group,
    Location,
    User,
    Watcher,
)
from deskctl.vocab import PRIORITIES

_ID = re.compile(r"^#?(\d{1,18})$")
# Ids are 32-bit on PostgreSQL; a larger one is well formed but cannot exist.
MAX_ID = 2**31 - 1


def parse_conversation_id(text: str) -> int:
    """`123` or `#123` → 123; anything else is a usage error."""
    match = _ID.match(str(text).strip())
    if not match:
        raise UsageError(f"invalid conversation id {text!r} (expected 123 or #123)")
    value = int(match.group(1))
    if value > MAX_ID:
        raise NotFound(f"conversation not found: #{value}")
    return value


def read_id_lines(lines: Iterable[str]) -> list[int]:
    """Ids from stdin: one per line; `#` comments and blank lines ignored.

    A line such as `#123` is an id, `# moved today` is a comment; text after an id and
    whitespace (as in `123  # vip`) is ignored too, so `list --format tsv` ids paste in."""
    ids = []
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or (line.startswith("#") and not _ID.match(line.split()[0])):
            continue
        token = line.split()[0]
        if not _ID.match(token):
            raise UsageError(f"stdin line {number}: invalid conversation id {token!r}")
        ids.append(int(token.lstrip("#")))
    return ids


@dataclass(frozen=True)
class ConversationFilter:
    """The filter options of `list` (SPEC §2); empty tuples/None mean "any"."""

    status: tuple[str, ...] = ()
    assignee: str | None = None
    unassigned: bool = False
    mine: bool = False
    group: str | None = None
    location: str | None = None
    channel: tuple[str, ...] = ()
    tag: tuple[str, ...] = ()
    priority: tuple[str, ...] = ()
    sla: tuple[str, ...] = ()
    watching: bool = False
    created_before: datetime | None = None
    created_after: datetime | None = None
    updated_before: datetime | None = None
    query: str | None = None
    # Not a `list` option: `transfer --from H` (every not-closed conversation of H).
    assigned_from: str | None = None
    # `list --unread`: inbound messages newer than the actor's last read (SPEC §10).
    unread: bool = False

    def is_empty(self) -> bool:
        return not any(getattr(self, f.name) for f in fields(self))


SORT_KEYS = {
    "id": Conversation.id,
    "created": Conversation.created_at,
    "updated": Conversation.updated_at,
    "status": Conversation.status,
    "channel": Conversation.channel,
    "subject": Conversation.subject,
    "boomerang": Conversation.boomerang_at,
    "sla": Conversation.sla_next_check_at,
    "priority": case({p: i for i, p in enumerate(PRIORITIES)}, value=Conversation.priority),
}


def check_query(text: str | None, max_chars: int) -> str | None:
    """A search text longer than `limits.query_chars` is refused up front: the database would
    otherwise fail on the pattern (SQLite: "too complex"), which no retry can fix."""
    if text is not None and len(text) > max_chars:
        raise UsageError(f"the search text is {len(text)} characters long; the limit is {max_chars} "
                         "(limits.query_chars)", option="query")
    return text


def _check_choices(values: Sequence[str], allowed: Sequence[str], what: str) -> None:
    for value in values:
        if value not in allowed:
            raise UsageError(f"invalid {what} {value!r} (choose from {', '.join(allowed)})")


def _id_named(session, model, column, value: str, what: str) -> int:
    """The id of the `model` row whose `column` is `value`; not found (3) when there is none."""
    row_id = session.scalar(select(model.id).where(column == value))
    if row_id is None:
        raise NotFound(f"{what} not found: {value}")
    return row_id


def user_id_by_handle(session, handle: str) -> int:
    return _id_named(session, User, User.handle, handle, "user")


def group_id_by_name(session, name: str) -> int:
    return _id_named(session, Group, Group.name, name, "group")


def location_id_by_name(session, name: str) -> int:
    return _id_named(session, Location, Location.name, name, "location")


def apply_filter(stmt: Select, session, flt: ConversationFilter, *, actor_id: int | None,
                 channels: Sequence[str] | None = None) -> Select:
    """Add the WHERE clauses of `flt` to a SELECT over conversations."""
    c = Conversation
    # status, priority and sla hold names of the vocabulary, checked at the edge (CommaChoice);
    # the channels are the desk's own (configuration), checked here.
    if channels is not None:
        _check_choices(flt.channel, channels, "channel")
    if flt.status:
        stmt = stmt.where(c.status.in_(flt.status))
    if flt.unassigned:
        stmt = stmt.where(c.assignee_id.is_(None))
    if flt.assignee:
        stmt = stmt.where(c.assignee_id == user_id_by_handle(session, flt.assignee))
    if flt.assigned_from:
        stmt = stmt.where(c.assignee_id == user_id_by_handle(session, flt.assigned_from),
                          c.status != "closed")
    if flt.mine:
        stmt = stmt.where(c.assignee_id == actor_id)
    if flt.group:
        stmt = stmt.where(c.group_id == group_id_by_name(session, flt.group))
    if flt.location:
        stmt = stmt.where(c.location_id == location_id_by_name(session, flt.location))
    if flt.channel:
        stmt = stmt.where(c.channel.in_(flt.channel))
    for tag in flt.tag:
        stmt = stmt.where(exists().where(ConversationTag.conversation_id == c.id, ConversationTag.tag == tag))
    if flt.priority:
        stmt = stmt.where(c.priority.in_(flt.priority))
    if flt.sla:
        from deskctl import clock
        from deskctl.services.sla.deadlines import read_state

        # The state as records print it, at this moment (not the stored, swept one).
        stmt = stmt.where(read_state(clock.now()).in_(flt.sla))
    if flt.watching:
        stmt = stmt.where(exists().where(Watcher.conversation_id == c.id, Watcher.user_id == actor_id))
    if flt.unread:
        from deskctl.services.conversations.read_state import unread_clause

        stmt = stmt.where(unread_clause(actor_id))
    if flt.created_before:
        stmt = stmt.where(c.created_at < flt.created_before)
    if flt.created_after:
        stmt = stmt.where(c.created_at >= flt.created_after)
    if flt.updated_before:
        stmt = stmt.where(c.updated_at < flt.updated_before)
    if flt.query:
        from deskctl.services.views import search
        stmt = search.matching(stmt, flt.query, session.get_bind().dialect.name)
    return stmt


def apply_sort(stmt: Select, sort: str | None, *, query: str | None = None, dialect: str = "sqlite") -> Select:
    """`--sort created,-priority`: comma-separated keys, one `-` for descending; id breaks
    ties. `relevance` (with --query) puts the best matches first."""
    return stmt.order_by(*sort_order(sort, query=query, dialect=dialect))


def sort_order(sort: str | None, *, query: str | None = None, dialect: str = "sqlite") -> list:
    """The ORDER BY clauses of `apply_sort` (also a window's order: bulk verbs number
    their targets with them)."""
    order = []
    names = []
    for key in ("id" if sort is None else sort).split(","):
        key = key.strip()
        descending = key.startswith("-")
        name = key[1:] if descending else key
        if name == "relevance":
            if not query:
                raise UsageError("sorting by relevance needs a search text", option="query")
            from deskctl.services.views import search
            score = search.relevance(query, dialect)
            order.append(score.asc() if descending else score.desc())
            names.append(name)
            continue
        # Only the exact key names: `--id`, `-`, `` or `+id` are mistakes, not `id`.
        if name not in SORT_KEYS:
            raise UsageError(f"invalid sort key {key!r} (choose from {', '.join(SORT_KEYS)}, "
                             "each optionally prefixed by one '-')")
        column = SORT_KEYS[name]
        order.append(column.desc() if descending else column.asc())
        names.append(name)
    if names[-1] != "id":
        order.append(Conversation.id.asc())
    return order


@dataclass(frozen=True)
class TargetSpec:
    """What a verb acts on: explicit ids (or `-`), or a filter, or --all."""

    ids: tuple[int, ...] = ()
    filter: ConversationFilter = field(default_factory=ConversationFilter)
    all: bool = False
    limit: int | None = None
    sort: str | None = None
    # Ids were read from stdin (`-`): none read is an empty selection, as when a filter
    # matches nothing (`list ... --format ids | deskctl close -` on a quiet day).
    stdin: bool = False

    @property
    def explicit(self) -> bool:
        return bool(self.ids) or self.stdin


def select_conversations(session, flt: ConversationFilter, *, actor_id: int | None,
                         sort: str | None = None, limit: int | None = None,
                         channels: Sequence[str] | None = None) -> Select:
    stmt = apply_filter(select(Conversation.id), session, flt, actor_id=actor_id, channels=channels)
    stmt = apply_sort(stmt, sort, query=flt.query, dialect=session.get_bind().dialect.name)
    if limit is not None:
        stmt = stmt.limit(limit)
    return stmt


def resolve_target_ids(session, spec: TargetSpec, *, actor_id: int | None) -> tuple[list[int], list[tuple[int, DeskError]]]:
    """The ids a verb acts on, in order, and the explicit ids that do not exist.

    Explicit ids keep their order (duplicates dropped); filters select in `--sort`
    order (oldest first by default, so `--limit` takes the oldest: workload balancing).
    """
    if spec.explicit:
        wanted = list(dict.fromkeys(spec.ids))
        if spec.limit is not None:
            wanted = wanted[: spec.limit]
        found: set[int] = set()
        for chunk in chunks(wanted):
            found.update(session.scalars(select(Conversation.id).where(Conversation.id.in_(chunk))))
        missing: list[tuple[int, DeskError]] = [
            (i, NotFound(f"conversation not found: #{i}")) for i in wanted if i not in found]
        return [i for i in wanted if i in found], missing
    check_selects_something(spec)
    stmt = select_conversations(session, spec.filter, actor_id=actor_id, sort=target_sort(spec), limit=spec.limit)
    return list(session.scalars(stmt)), []


def check_selects_something(spec: TargetSpec) -> None:
    """No ids, no filter and no --all: a usage error, never every conversation by accident."""
    if not spec.explicit and spec.filter.is_empty() and not spec.all:
        raise UsageError("no targets: give conversation ids, `-` to read them from stdin, a filter, or all of "
                         "them", option="all_")


def target_sort(spec: TargetSpec) -> str | None:
    """The order of filter-selected targets: --sort, else `transfer --from` takes the oldest
    first, else by id."""
    return spec.sort or ("created" if spec.filter.assigned_from else None)
