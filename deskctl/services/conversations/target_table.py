"""The targets of a bulk verb in a temporary table, read back a chunk at a time.

A verb on a million conversations holds no list of a million ids in Python (issue 16):
its targets, numbered in output order (explicit ids as given, else `--sort`, with
`--limit`), are selected into `bulk_targets` with the snapshot columns read once (status,
assignee, group, location, version, and whether the actor may act on each), then read back
by keyset (the position), a chunk at a time, for the checks (lifecycle._run keeps the
checked snapshots in a spool file for the writes). The table lives in the command's
transaction (created in it, so a rollback removes it too) and is dropped after the checks.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice

from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal,
    select,
    update,
)

from deskctl.db.dml import dialect_insert
from deskctl.models import Conversation
from deskctl.services.conversations import permissions
from deskctl.services.conversations.selection import (
    TargetSpec,
    apply_filter,
    check_selects_something,
    sort_order,
    target_sort,
)

C = Conversation
SNAPSHOT = ("status", "assignee_id", "group_id", "location_id", "version")

# Not in the models' metadata: no migration, created per command. `version` is NULL for an
# explicit id that matches no conversation; `allowed` is 1 when the actor's scope covers it.
TABLE = Table(
    "bulk_targets", MetaData(),
    Column("pos", Integer, primary_key=True, autoincrement=False),
    Column("id", Integer, nullable=False),
    Column("status", String(20)),
    Column("assignee_id", Integer),
    Column("group_id", Integer),
    Column("location_id", Integer),
    Column("version", Integer),
    Column("allowed", Integer),
    prefixes=["TEMPORARY"],
    postgresql_on_commit="DROP",
)
_COLUMNS = [TABLE.c.id, *(TABLE.c[name] for name in SNAPSHOT), TABLE.c.allowed]


def _allowed(actor, settings):
    scope = permissions.scope_clause(actor, settings)
    return literal(1) if scope is None else case((scope, 1), else_=0)


class Targets:
    """The filled table of one verb's targets: `read` them in chunks, then `drop` it."""

    def __init__(self, session):
        self.session = session

    def read(self, *, chunk: int) -> Iterator[list]:
        """Rows (id, *SNAPSHOT, allowed, pos), `chunk` at a time, in output order."""
        key = TABLE.c.pos
        stmt = select(*_COLUMNS, key).where(key > bindparam("after")).order_by(key).limit(chunk)
        conn = self.session.connection()
        after = -1
        while rows := conn.execute(stmt, {"after": after}).all():
            yield rows
            after = rows[-1][-1]

    def drop(self) -> None:
        drop(self.session)


def select_into(session, actor, spec: TargetSpec, settings, *, chunk: int) -> Targets:
    """(Re)create the table and fill it with the targets of `spec`."""
    check_selects_something(spec)
    conn = session.connection()
    drop(session)
    TABLE.create(conn)
    snapshot = {name: C.__table__.c[name] for name in SNAPSHOT}
    if spec.explicit:
        # The unique id drops a duplicate (its first position is kept); an id of no
        # conversation keeps a NULL snapshot. Filters select each conversation once: their
        # table has no index to maintain.
        conn.exec_driver_sql(f"CREATE UNIQUE INDEX {TABLE.name}_by_id ON {TABLE.name} (id)")
        add = dialect_insert(session)(TABLE).on_conflict_do_nothing()
        numbered: Iterator[tuple[int, int]] = enumerate(spec.ids)
        while part := list(islice(numbered, chunk)):
            conn.execute(add, [{"pos": pos, "id": cid} for pos, cid in part])
        if spec.limit is not None:
            last = select(TABLE.c.pos).order_by(TABLE.c.pos).offset(spec.limit - 1).limit(1).scalar_subquery()
            conn.execute(delete(TABLE).where(TABLE.c.pos > last))
        conn.execute(update(TABLE).where(TABLE.c.id == C.id)
                     .values(**snapshot, allowed=_allowed(actor, settings)))
        return Targets(session)
    sort = target_sort(spec)
    dialect = session.get_bind().dialect.name
    order = sort_order(sort, query=spec.filter.query, dialect=dialect)
    # By id (the default), the id is the position: no window to compute.
    pos = C.id if sort in (None, "id") else func.row_number().over(order_by=order)
    source = apply_filter(select(pos, C.id, *snapshot.values(), _allowed(actor, settings)),
                          session, spec.filter, actor_id=actor.id).order_by(*order)
    if spec.limit is not None:
        source = source.limit(spec.limit)
    conn.execute(insert(TABLE).from_select(["pos", *(c.name for c in _COLUMNS)], source))
    return Targets(session)


def drop(session) -> None:
    session.connection().exec_driver_sql(f"DROP TABLE IF EXISTS {TABLE.name}")
