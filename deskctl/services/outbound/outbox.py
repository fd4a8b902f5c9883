"""`deskctl outbox`: look at what waits to leave the desk, retry it, drop it (SPEC §11).

Users see four statuses (SPEC §12 "New names"): `queued` (not tried yet), `retrying` (a
try failed; the next one is at next_attempt_at), `sent`, `failed` (permanent, or gave
up). A row a `notify` run is delivering right now is stored `sending` (the claim that
keeps two runs from sending it twice) and shown as queued or retrying by its attempts.

Supervisors and admins only: the outbox holds every contact's replies and every user's
notifications.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import case, delete, select, update

from deskctl.errors import BulkError, Conflict, DeskError, Forbidden, NotFound, UsageError
from deskctl.models import Outbox
from deskctl.services.actor import Actor
from deskctl.vocab import OUTBOX_STATUSES

STATUSES = OUTBOX_STATUSES


def shown_status(status: str, attempts: int) -> str:
    if status == "sending":
        return "queued" if attempts <= 1 else "retrying"
    return status


def _shown_status_sql():
    return case((Outbox.status == "sending", case((Outbox.attempts <= 1, "queued"), else_="retrying")),
                else_=Outbox.status)


def require_supervisor(actor: Actor) -> None:
    if not actor.is_supervisor:
        raise Forbidden(f"the outbox is for supervisors and admins ({actor.handle} is {actor.role})")


def record(row: Outbox) -> dict:
    status = shown_status(row.status, row.attempts)
    return {
        "id": row.id, "conversation_id": row.conversation_id, "channel": row.channel, "to": row.recipient,
        "status": status, "attempts": row.attempts,
        "next_attempt_at": row.next_attempt_at if status in ("queued", "retrying") else None,
        "last_error": row.last_error, "created_at": row.created_at, "sent_at": row.sent_at,
        "kind": row.kind, "subject": row.subject or None,
    }


def detail(row: Outbox) -> dict:
    """`outbox show`: the record, the text, and for a channel reply the JSON its connector gets."""
    out = record(row)
    payload = None
    if row.kind == "message" and row.raw:
        try:
            payload = json.loads(row.raw)
        except ValueError:
            payload = None
    out.update(text=row.body or None, payload=payload, dedupe_key=row.dedupe_key)
    return out


def _check_values(values: Sequence[str], known: Sequence[str], option: str) -> None:
    bad = [v for v in values if v not in known]
    if bad:
        raise UsageError(f"unknown {option} {bad[0]!r} (one of: {', '.join(known)})", option=option)


def list_records(session, actor: Actor, *, settings, statuses: Sequence[str] = (), channels: Sequence[str] = (),
                 limit: int | None = None) -> list[dict]:
    """Newest first; filtered by shown status and by channel."""
    require_supervisor(actor)
    _check_values(statuses, STATUSES, "status")
    _check_values(channels, settings.channels, "channel")
    query = select(Outbox).order_by(Outbox.id.desc())
    if statuses:
        query = query.where(_shown_status_sql().in_(sorted(set(statuses))))
    if channels:
        query = query.where(Outbox.channel.in_(sorted(set(channels))))
    if limit is not None:
        query = query.limit(limit)
    return [record(row) for row in session.scalars(query)]


def show(session, actor: Actor, outbox_id: int) -> dict:
    require_supervisor(actor)
    row = session.get(Outbox, outbox_id)
    if row is None:
        raise NotFound(f"outbox row not found: {outbox_id}")
    return detail(row)


def _rows(session, ids: Sequence[int], *, refuse_sent: bool, verb: str) -> list[Outbox]:
    """The rows to change, every target checked first: nothing changes if one fails."""
    wanted = sorted(set(ids))
    rows = {row.id: row for row in session.scalars(select(Outbox).where(Outbox.id.in_(wanted))
                                                   .with_for_update())}
    failures: list[tuple[int, DeskError]] = []
    for outbox_id in wanted:
        row = rows.get(outbox_id)
        if row is None:
            failures.append((outbox_id, NotFound("not found")))
        elif row.status == "sending":
            failures.append((outbox_id, Conflict(f"being delivered right now; {verb} it after this run")))
        elif refuse_sent and row.status == "sent":
            when = f" at {row.sent_at.isoformat()}" if row.sent_at else ""
            failures.append((outbox_id, Conflict(f"already sent{when}")))
    if failures:
        raise BulkError(failures, label="outbox {}")
    return [rows[i] for i in wanted]


def _changed_all(result, expected: int) -> None:
    if result.rowcount != expected:  # a notify run claimed one between the check and here
        raise Conflict("an outbox row changed while this command ran (a notify run took it); retry")


def retry(session, actor: Actor, ids: Sequence[int] = (), *, failed: bool = False, now: datetime) -> list[dict]:
    """Make rows due now: a failed row starts again (queued, attempts 0, its last error
    kept until the next try); a queued or retrying row skips the rest of its backoff.
    Sent rows and rows being delivered are refused (4)."""
    require_supervisor(actor)
    if failed == bool(ids):
        raise UsageError("give outbox ids or ask for every failed row (exactly one)", option="failed")
    if failed:
        ids = list(session.scalars(select(Outbox.id).where(Outbox.status == "failed").order_by(Outbox.id)))
        if not ids:
            return []
    rows = _rows(session, ids, refuse_sent=True, verb="retry")
    table = Outbox.__table__.c
    result = session.execute(
        update(Outbox).where(Outbox.id.in_([r.id for r in rows]), Outbox.status != "sending",
                             Outbox.status != "sent")
        .values(status=case((table.status == "failed", "queued"), else_=table.status),
                attempts=case((table.status == "failed", 0), else_=table.attempts),
                next_attempt_at=now, claimed_at=None)
        .execution_options(synchronize_session=False))
    _changed_all(result, len(rows))
    return [record(row) for row in session.scalars(
        select(Outbox).where(Outbox.id.in_([r.id for r in rows])).order_by(Outbox.id)
        .execution_options(populate_existing=True))]


def drop(session, actor: Actor, ids: Sequence[int]) -> list[dict]:
    """Delete rows for good (a reply that must not go out after all, a dead notification);
    returns them as they were. Rows being delivered are refused (4)."""
    require_supervisor(actor)
    if not ids:
        raise UsageError("give the outbox ids to drop")
    rows = _rows(session, ids, refuse_sent=False, verb="drop")
    records = [record(row) for row in rows]
    result = session.execute(delete(Outbox).where(Outbox.id.in_([r["id"] for r in records]),
                                                  Outbox.status != "sending")
                             .execution_options(synchronize_session=False))
    _changed_all(result, len(records))
    return records

