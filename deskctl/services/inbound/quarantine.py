"""The quarantine: input that could not be ingested, kept whole with the reason.

A row is `held` until someone deals with it: `retry` feeds its raw bytes through the
ingest again (after a fix to the config, a new group, or an edited copy of the bytes)
and marks it `retried` when that works; `drop` marks it `dropped`. Rows are never
deleted by deskctl, so nothing that reached the gateway is ever lost.

An input over a size cap (SPEC §13) is not copied into the table: its bytes stay in the
file the reader spilled them to (`intake.Spilled`), and the row's `raw` is empty with
`filename` the absolute path of that file. Origins (a file's base name, `box.mbox#3`,
a Maildir key) are never absolute paths, so the two cannot be confused.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, update

from deskctl.errors import Conflict, NotFound
from deskctl.models import Quarantine
from deskctl.services.inbound.intake import HEAD_BYTES, Spilled

SOURCES = ("email", "jsonl")
MAX_REASON = 2000


def _reason(text: str) -> str:
    """A reason the text column takes on both engines: it may quote the input, so NUL is
    dropped and a lone surrogate replaced by "?"; cut to MAX_REASON characters."""
    text = text.replace("\x00", "")
    return text.encode("utf-8", "replace").decode("utf-8")[:MAX_REASON] if not text.isascii() else text[:MAX_REASON]


def _held_ids(session, source: str, raws: Sequence[bytes | Spilled]) -> dict[bytes | Spilled, int]:
    """Entries still held with exactly these bytes (or this on-disk copy): a re-delivery
    is not held twice."""
    found: dict = {}
    in_table = sorted({r for r in raws if not isinstance(r, Spilled)})
    if in_table:
        for qid, raw in session.execute(select(Quarantine.id, Quarantine.raw).where(
                Quarantine.source == source, Quarantine.status == "held",
                Quarantine.raw.in_(in_table)).order_by(Quarantine.id)):
            found.setdefault(bytes(raw), qid)
    on_disk = {str(r.path): r for r in raws if isinstance(r, Spilled)}
    if on_disk:
        for qid, filename in session.execute(select(Quarantine.id, Quarantine.filename).where(
                Quarantine.source == source, Quarantine.status == "held",
                Quarantine.filename.in_(sorted(on_disk))).order_by(Quarantine.id)):
            found.setdefault(on_disk[filename], qid)
    return found


def _row(source: str, reason: str, raw: bytes | Spilled, filename: str | None, line_no: int | None, now) -> dict:
    if isinstance(raw, Spilled):
        # The origin has no column left: it goes with the reason.
        reason = f"{reason} (from {filename})" if filename else reason
        filename = str(raw.path)
        raw = b""
    return {"source": source, "reason": _reason(reason), "raw": raw, "filename": filename, "line_no": line_no,
            "status": "held", "created_at": now}


def hold(session, *, source: str, reason: str, raw: bytes | Spilled, now: datetime, filename: str | None = None,
         line_no: int | None = None) -> int:
    """Store one unusable input (unless the same bytes are already held); returns the
    quarantine id."""
    existing = _held_ids(session, source, [raw]).get(raw)
    if existing is not None:
        return existing
    return session.execute(insert(Quarantine).returning(Quarantine.id),
                           _row(source, reason, raw, filename, line_no, now)).scalar_one()


def hold_many(session, rows: Sequence[dict], *, now: datetime) -> list[int]:
    """Store several (source, reason, raw, filename, line_no) at once; ids in the given order."""
    if not rows:
        return []
    held: dict = {}
    for source in {r["source"] for r in rows}:
        held.update(_held_ids(session, source, [r["raw"] for r in rows if r["source"] == source]))
    fresh = [r for r in rows if r["raw"] not in held]
    params = [_row(r["source"], r["reason"], r["raw"], r.get("filename"), r.get("line_no"), now) for r in fresh]
    if params:
        result = session.execute(insert(Quarantine).returning(Quarantine.id, sort_by_parameter_order=True), params)
        for r, (qid,) in zip(fresh, result, strict=True):
            held.setdefault(r["raw"], qid)
    return [held[r["raw"]] for r in rows]


def disk_copy(row: Quarantine) -> Path | None:
    """The file holding an over-cap entry's bytes, or None when they are in the row."""
    if row.raw or not row.filename or not os.path.isabs(row.filename):
        return None
    return Path(row.filename)


def size(row: Quarantine) -> int:
    path = disk_copy(row)
    if path is None:
        return len(row.raw or b"")
    try:
        return path.stat().st_size
    except OSError:
        return 0


def raw_input(row: Quarantine, settings) -> bytes | Spilled:
    """The entry's bytes for a retry: read back from disk only if they now fit the cap."""
    path = disk_copy(row)
    if path is None:
        return bytes(row.raw or b"")
    if not path.is_file():
        raise NotFound(f"quarantine entry {row.id}: its bytes are missing from {path}")
    total = path.stat().st_size
    if total > settings.limits.message_bytes:
        with open(path, "rb") as fh:
            head = fh.read(HEAD_BYTES)
        return Spilled(path, total, head, f"{total} bytes: over limits.message_bytes "
                                          f"({settings.limits.message_bytes} bytes)")
    return path.read_bytes()


def write_raw(row: Quarantine, out) -> None:
    """The entry's bytes, exactly as received, to a binary stream (from disk in pieces)."""
    path = disk_copy(row)
    if path is None:
        out.write(row.raw or b"")
        return
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            out.write(chunk)


def record(row: Quarantine, *, raw: bool = False) -> dict:
    out: dict[str, Any] = {"id": row.id, "source": row.source, "status": row.status, "reason": row.reason,
           "filename": row.filename, "line": row.line_no, "size": size(row), "created_at": row.created_at}
    if raw:
        path = disk_copy(row)
        if path is None:
            out["raw"] = (row.raw or b"").decode("utf-8", "replace")
        else:
            try:
                with open(path, "rb") as fh:
                    head = fh.read(HEAD_BYTES)
            except OSError as exc:
                head = f"[bytes unreadable: {exc.strerror}]".encode()
            more = out["size"] - len(head)
            out["raw"] = head.decode("utf-8", "replace") + (f"\n[... {more} more bytes in {path}]" if more > 0 else "")
    return out


def list_rows(session, *, status: Sequence[str] = ("held",), source: str | None = None, limit: int | None = None):
    stmt = select(Quarantine).where(Quarantine.status.in_(list(status))).order_by(Quarantine.id)
    if source:
        stmt = stmt.where(Quarantine.source == source)
    if limit:
        stmt = stmt.limit(limit)
    for row in session.scalars(stmt):
        yield record(row)


def get(session, quarantine_id: int) -> Quarantine:
    row = session.get(Quarantine, quarantine_id)
    if row is None:
        raise NotFound(f"quarantine entry not found: {quarantine_id}")
    return row


def get_many(session, ids: Sequence[int], *, held_only: bool) -> list[Quarantine]:
    """All of them or an error naming each missing (3) or already handled (4) one."""
    rows = {r.id: r for r in session.scalars(select(Quarantine).where(Quarantine.id.in_(list(ids))))}
    missing = [i for i in ids if i not in rows]
    if missing:
        raise NotFound("quarantine entry not found: " + ", ".join(str(i) for i in missing))
    if held_only:
        done = [f"{i} ({rows[i].status})" for i in ids if rows[i].status != "held"]
        if done:
            raise Conflict("already handled: " + ", ".join(done))
    return [rows[i] for i in ids]


def drop(session, ids: Sequence[int]) -> list[dict]:
    rows = get_many(session, ids, held_only=True)
    session.execute(update(Quarantine).where(Quarantine.id.in_(list(ids))).values(status="dropped"))
    for row in rows:
        row.status = "dropped"
    return [record(r) for r in rows]


def mark(session, quarantine_id: int, *, status: str, reason: str | None = None) -> None:
    values: dict = {"status": status}
    if reason is not None:
        values["reason"] = _reason(reason)
    session.execute(update(Quarantine).where(Quarantine.id == quarantine_id).values(**values))
