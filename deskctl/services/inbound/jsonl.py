"""JSON lines in: chat, SMS, social and web messages (SPEC §7).

One object a line:
  {"channel": "chat", "thread": "chat-8812", "id": "m-1", "at": "2026-11-20T10:02:00Z",
   "from": {"name": ..., "email": ..., "phone": ..., "handle": ...}, "text": "...",
   "subject": null, "group": null, "priority": null, "attachments": []}

Messages with the same (channel, thread) form one conversation (its `thread_key`); where
that conversation was merged or closed, `messages.Router` (the rule email uses too) sends
the message to the survivor, to the follow-up already opened, or to a new follow-up
linked to it. (channel, id) is the message's external id: a re-delivered line (same
sender, same content) is a `duplicate`, a different message reusing it is quarantined.
A bad line is quarantined with its line number and the rest of the batch is kept.

Speed: a batch is a handful of set-based statements (one SELECT each for duplicates,
threads, contacts and groups; one executemany INSERT each for conversations,
messages, attachments and events; one UPDATE executemany for touched conversations).
"""

from __future__ import annotations

import base64
import binascii
import json
import mimetypes
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import and_, bindparam, case, func, insert, literal_column, or_, select, update

from deskctl.db.types import UTCDateTime
from deskctl.models import PRIORITIES, Attachment, Contact, Conversation, Event, Group, Message
from deskctl.services.conversations import events
from deskctl.services.inbound import quarantine as quarantine_service
from deskctl.services.inbound.intake import Spilled, spill
from deskctl.services.inbound.messages import (
    REOPENED_BY_REPLY,
    Router,
    StoredMessage,
    body_sha256,
    redelivery_problem,
)
from deskctl.services.outbound import notifications
from deskctl.services.sla import deadlines as sla

SOURCE = "jsonl"
_ADDRESS = re.compile(r"^[^@\s<>,;\"]+@[^@\s<>,;\"]+$")
_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f/\\]+")
_SURROGATE = re.compile("[\ud800-\udfff]")
_FIELDS = {"channel", "thread", "id", "at", "from", "text", "html", "subject", "group", "priority",
           "attachments", "type", "url"}



# Columns every JSON-lines message has the same value in: rendered once in the INSERT
# instead of bound (and JSON-encoded) per row.
_MESSAGE_CONSTANTS = {"direction": "inbound", "in_reply_to": None, "references": None, "author_user_id": None,
                      "cc": literal_column("'[]'"), "bcc": literal_column("'[]'")}


def insert_ids(conn, table, rows: list[dict], inline: dict | None = None) -> list[int]:
    """INSERT many rows (Core, one executemany) and return their new ids in order.

    The ids are chosen first and sent with the rows, so the INSERT needs no RETURNING:
    - PostgreSQL: one `nextval` per row from the id column's sequence, in one query
      (safe under concurrency, as the sequence is). An ordered `INSERT ... RETURNING`
      took two to three times as long as a plain executemany of the same rows.
    - SQLite cannot batch an ordered RETURNING at all (SQLAlchemy falls back to one
      statement per row), so ids continue from max(id): safe because a SQLite writer
      holds the database's write lock for its whole transaction (BEGIN IMMEDIATE; a
      deferred one would fail with "database is locked" rather than collide, and the
      primary key forbids a duplicate)."""
    if not rows:
        return []
    stmt = insert(table).values(**inline) if inline else insert(table)
    if conn.dialect.name == "sqlite":
        start = conn.execute(select(func.max(table.c.id))).scalar() or 0
        ids = range(start + 1, start + 1 + len(rows))
    else:
        sequence = func.pg_get_serial_sequence(table.name, table.c.id.name)
        ids = conn.execute(select(func.nextval(sequence)).select_from(func.generate_series(1, len(rows)))).scalars().all()
    for row, new_id in zip(rows, ids, strict=True):
        row["id"] = new_id
    conn.execute(stmt, rows)
    return [row["id"] for row in rows]



class Bad(Exception):
    """The line cannot be ingested; the text is the reason."""


class OverLimit(Bad):
    """The line breaks a size cap of `limits` (SPEC §13)."""


@dataclass
class Item:
    line: int
    raw: bytes
    channel: str
    thread: str
    external_id: str
    at: datetime
    name: str
    email: str | None
    phone: str | None
    handle: str | None
    text: str
    html: str | None
    subject: str | None
    group: str | None
    priority: str | None
    message_type: str | None
    attachments: list[tuple[str, str, bytes]] = field(default_factory=list)
    url: str | None = None

    @property
    def contact_key(self) -> tuple[str, str]:
        if self.email:
            return ("email", self.email)
        if self.phone:
            return ("phone", self.phone)
        return ("handle", f"{self.channel}:{self.handle}")


def batches(lines, size: int):
    """(line number, raw bytes) pairs (from `intake.jsonl_lines`) in lists of `size`."""
    batch = []
    for line in lines:
        batch.append(line)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _text(value: str, key: str) -> str:
    """A JSON string as stored: NUL removed (PostgreSQL text cannot hold it; both engines
    store the same), and Bad if it holds a lone surrogate (valid JSON, e.g. "\\ud800",
    but not Unicode text: no database can store it)."""
    if "\x00" in value:
        value = value.replace("\x00", "")
    if not value.isascii():
        found = _SURROGATE.search(value)
        if found:
            raise Bad(f"`{key}` holds a lone surrogate (\\u{ord(found.group()):04x}) at character {found.start()}: "
                      "not Unicode text")
    return value


def _str(obj: dict, key: str, *, required: bool = False, limit: int = 998, path: str = "") -> str | None:
    value = obj.get(key)
    if value is None or value == "":
        if required:
            raise Bad(f"`{key}` is missing")
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise Bad(f"`{key}` must be a string")
    value = _text(str(value), path + key).strip()
    if required and not value:
        raise Bad(f"`{key}` is empty")
    if len(value) > limit:
        raise Bad(f"`{key}` is longer than {limit} characters")
    return value or None


def parse_line(number: int, raw: bytes, *, now: datetime, channels, subject_chars: int = 998) -> Item:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Bad(f"not UTF-8 (byte {exc.start})") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise Bad(f"invalid JSON: {exc.msg} at column {exc.colno}") from None
    except RecursionError:
        raise Bad("invalid JSON: nested too deeply") from None
    if not isinstance(obj, dict):
        raise Bad("not a JSON object")
    channel = _str(obj, "channel", required=True, limit=32)
    if channel not in channels:
        raise Bad(f"unknown channel {channel!r} (configured: {', '.join(channels)})")
    thread = _str(obj, "thread", required=True, limit=200)
    external_id = _str(obj, "id", required=True)
    at = now
    if obj.get("at") is not None:
        if not isinstance(obj["at"], str):
            raise Bad("`at` must be an ISO 8601 string")
        try:
            at = datetime.fromisoformat(obj["at"].strip())
        except ValueError:
            raise Bad(f"`at` is not an ISO 8601 date-time: {obj['at']!r}") from None
        at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
        at = min(at, now)
    sender = obj.get("from")
    if not isinstance(sender, dict):
        raise Bad("`from` must be an object with an email, phone or handle")
    email = _str(sender, "email", limit=320, path="from.")
    if email is not None:
        email = email.lower()
        if not _ADDRESS.match(email):
            raise Bad(f"`from.email` is not an email address: {email!r}")
    phone = _str(sender, "phone", limit=64, path="from.")
    handle = _str(sender, "handle", limit=150, path="from.")
    if not (email or phone or handle):
        raise Bad("`from` has no email, phone or handle")
    body = obj.get("text")
    if body is not None and not isinstance(body, str):
        raise Bad("`text` must be a string")
    body = _text(body, "text") if body else body
    html = obj.get("html")
    if html is not None and not isinstance(html, str):
        raise Bad("`html` must be a string")
    html = _text(html, "html") if html else html
    priority = _str(obj, "priority", limit=16)
    if priority is not None and priority not in PRIORITIES:
        raise Bad(f"unknown priority {priority!r} (choose from {', '.join(PRIORITIES)})")
    attachments = _attachments(obj.get("attachments"))
    if not (body or "").strip() and not attachments and not html:
        raise Bad("no text and no attachments")
    if html is not None and not (body or "").strip():
        from deskctl.services.inbound.htmltext import html_to_text

        body = html_to_text(html)
    return Item(line=number, raw=raw, channel=channel, thread=thread, external_id=external_id, at=at,
                name=(_str(sender, "name", limit=200, path="from.") or ""), email=email, phone=phone, handle=handle,
                text=body or "", html=html, subject=_subject(obj, subject_chars), group=_str(obj, "group", limit=100),
                priority=priority, message_type=_str(obj, "type", limit=64), attachments=attachments,
                url=_url(obj))


def _url(obj: dict) -> str | None:
    """`url`: the message's page on its channel; http(s) only, shown to agents as a link."""
    url = _str(obj, "url", limit=2000)
    if url is not None and (not re.match(r"^https?://[^\s]+$", url, re.IGNORECASE)):
        raise Bad("`url` must be an http:// or https:// address")
    return url


def _subject(obj: dict, limit: int) -> str | None:
    value = _str(obj, "subject", limit=len(str(obj.get("subject") or "")))
    if value is not None and len(value) > limit:
        raise OverLimit(f"`subject` is {len(value)} characters: over limits.subject_chars ({limit})")
    return value


def _attachments(value) -> list[tuple[str, str, bytes]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise Bad("`attachments` must be a list")
    out = []
    for n, att in enumerate(value, 1):
        if not isinstance(att, dict) or not isinstance(att.get("data"), str):
            raise Bad(f"attachment {n} must be an object with base64 `data` (and `filename`, `content_type`)")
        try:
            data = base64.b64decode(att["data"], validate=True)
        except (binascii.Error, ValueError):
            raise Bad(f"attachment {n}: `data` is not valid base64") from None
        filename = _text(att["filename"], f"attachments[{n}].filename") \
            if isinstance(att.get("filename"), str) else None
        ctype = _text(att["content_type"], f"attachments[{n}].content_type") \
            if isinstance(att.get("content_type"), str) else None
        ctype = (ctype or (mimetypes.guess_type(filename)[0] if filename else None)
                 or "application/octet-stream")[:200]
        filename = _UNSAFE_NAME.sub("_", filename or "").strip(" .") or f"attachment-{n}"
        out.append((filename[-500:], ctype, data))
    return out


def ingest_batch(session, lines: list[tuple[int, bytes | Spilled]], *, now: datetime, settings,
                 filename: str | None = None, hold: bool = True, store_attachment=None) -> list[dict]:
    """Ingest (line number, raw bytes) pairs in the caller's transaction; one result
    per line, in order: `created`, `appended`, `duplicate` or `quarantined`."""
    results: dict[int, dict] = {}
    bad: list[tuple[int, bytes, str]] = []
    items: list[Item] = []
    for number, raw in lines:
        try:
            if isinstance(raw, Spilled):
                raise Bad(raw.reason)
            items.append(parse_line(number, raw, now=now, channels=settings.channels,
                                    subject_chars=settings.limits.subject_chars))
        except OverLimit as exc:
            # Over a cap: the line is kept on disk (SPEC §13).
            bad.append((number, spill(settings, raw, str(exc)) if hold else raw, str(exc)))
        except Bad as exc:
            bad.append((number, raw, str(exc)))
    groups = _groups(session, {i.group for i in items if i.group})
    good = []
    for item in items:
        if item.group and item.group not in groups:
            bad.append((item.line, item.raw, f"unknown group {item.group!r}"))
        else:
            good.append(item)
    if good:
        bad += _store(session, good, results, groups=groups, now=now, settings=settings,
                      store_attachment=store_attachment)
    if bad:
        bad.sort()
        ids = quarantine_service.hold_many(
            session, [{"source": SOURCE, "reason": reason, "raw": raw, "filename": filename, "line_no": number}
                      for number, raw, reason in bad], now=now) if hold else [None] * len(bad)
        for (number, _raw, reason), qid in zip(bad, ids, strict=True):
            results[number] = {"line": number, "id": None, "action": "quarantined", "external_id": None,
                               "quarantine_id": qid, "reason": reason}
    return [results[number] for number, _ in lines if number in results]


def _groups(session, names: set[str]) -> dict[str, tuple[int, int | None]]:
    if not names:
        return {}
    return {name: (gid, loc) for gid, name, loc in session.execute(
        select(Group.id, Group.name, Group.location_id).where(Group.name.in_(sorted(names))))}


def _store(session, items: list[Item], results: dict, *, groups, now, settings, store_attachment,
           refresh: bool = True) -> list[tuple[int, bytes, str]]:
    """Store the items and fill their results; returns (line, raw, reason) for each one
    to quarantine instead: a different message reusing a stored (channel, id)."""
    conn = session.connection()
    # 1. duplicates: already stored, or earlier in this batch; a re-delivery only from the
    # same sender with the same content (SPEC §13), else the line is quarantined
    stored: dict[tuple[str, str], StoredMessage] = {}
    for channel, external_id, conversation_id, direction, contact_id, sha256 in conn.execute(
            select(Message.channel, Message.external_id, Message.conversation_id, Message.direction,
                   Message.author_contact_id, Message.body_sha256)
            .where(Message.channel.in_(sorted({i.channel for i in items})),  # the (channel, external_id) index
                   Message.external_id.in_(sorted({i.external_id for i in items})))):
        stored[(channel, external_id)] = StoredMessage(conversation_id, direction == "outbound", contact_id, sha256)
    digests = {item.line: body_sha256(item.text, item.html, (data for _, _, data in item.attachments))
               for item in items}
    reused = [item for item in items if (item.channel, item.external_id) in stored]
    senders = _contacts(session, reused, now=now, create=False) if reused else {}
    verdicts: dict[int, str | None] = {}  # line -> None (store it), "duplicate", or the reason to quarantine
    first_in_batch: dict[tuple[str, str], StoredMessage] = {}
    for item in items:
        key = (item.channel, item.external_id)
        if key in stored:
            problem = redelivery_problem(stored[key], sender=senders.get(item.contact_key),
                                         sha256=digests[item.line])
        elif key in first_in_batch:
            problem = redelivery_problem(first_in_batch[key], sender=item.contact_key, sha256=digests[item.line])
        else:
            first_in_batch[key] = StoredMessage(None, False, item.contact_key, digests[item.line])
            verdicts[item.line] = None
            continue
        verdicts[item.line] = "duplicate" if problem is None else (
            f"{item.channel} message id {item.external_id!r} is already stored and this is a different "
            f"message: {problem}")
    fresh = [item for item in items if verdicts[item.line] is None]
    # 2. threads: the newest conversation of each (channel, thread), then where its
    # messages go now (a merge or a follow-up may have moved them on)
    threads: dict[tuple[str, str], object] = {}
    keys = {(i.channel, i.thread) for i in fresh}
    if keys:
        for cid, channel, thread_key in conn.execute(
                select(Conversation.id, Conversation.channel, Conversation.thread_key)
                .where(Conversation.channel.in_(sorted({k[0] for k in keys})),
                       Conversation.thread_key.in_(sorted({k[1] for k in keys}))).order_by(Conversation.id)):
            if (channel, thread_key) in keys:
                threads[(channel, thread_key)] = cid
    router = Router(conn, threads.values())
    # 3. contacts
    contacts = _contacts(session, fresh, now=now)

    new_convs: list[dict] = []  # placeholders: "ref" is ("new", index) until inserted
    touched: dict = {}  # ref -> {"first": at, "last": at, "reopened": previous status or None}
    planned: list[tuple[Item, object, str]] = []
    rejected: list[tuple[int, bytes, str]] = []
    seen: dict[tuple[str, str], object] = {}
    for item in items:
        key = (item.channel, item.external_id)
        verdict = verdicts[item.line]
        if verdict == "duplicate":
            if key in stored:
                results[item.line] = {"line": item.line, "id": stored[key].conversation_id, "action": "duplicate",
                                      "external_id": item.external_id, "quarantine_id": None, "reason": None}
            else:
                planned.append((item, seen[key], "duplicate"))
            continue
        if verdict is not None:
            rejected.append((item.line, item.raw, verdict))
            continue
        thread = threads.get((item.channel, item.thread))
        target = router.target(thread) if thread is not None else None
        contact_id = contacts[item.contact_key]
        if target is None or target[1]["status"] == "closed":
            linked = target[0] if target is not None else None
            if item.group:
                group_id, location_id = groups[item.group]
            else:
                group_id = target[1]["group_id"] if target is not None else None
                location_id = None
            ref = ("new", len(new_convs))
            new_convs.append({
                "subject": (item.subject or _subject_from(item.text))[:998], "channel": item.channel,
                "status": "new", "priority": item.priority or "low", "group_id": group_id,
                "location_id": location_id, "contact_id": contact_id, "linked_to_id": linked,
                "thread_key": item.thread, "created_at": item.at, "updated_at": now, "sla_state": "none",
                "sla_paused_s": 0, "version": 1, "first_inbound_at": item.at, "last_inbound_at": item.at,
            })
            threads[(item.channel, item.thread)] = ref
            router.opened(linked, ref, group_id=group_id)
            action = "created"
        else:
            ref, state = target
            action = "appended"
            if isinstance(ref, tuple):
                conv = new_convs[ref[1]]
                conv["first_inbound_at"] = min(conv["first_inbound_at"], item.at)
                conv["last_inbound_at"] = max(conv["last_inbound_at"], item.at)
            else:
                mark = touched.setdefault(ref, {"first": item.at, "last": item.at, "reopened": None})
                mark["first"] = min(mark["first"], item.at)
                mark["last"] = max(mark["last"], item.at)
                if state["status"] in REOPENED_BY_REPLY:
                    mark["reopened"] = state["status"]
                    state["status"] = "new"
        seen[key] = ref
        planned.append((item, ref, action))

    # 4. new conversations, then every id is known
    new_ids: list[int] = []
    if new_convs:
        missing = [c for c in new_convs if c["group_id"] is not None and c["location_id"] is None]
        if missing:
            locations = dict(conn.execute(select(Group.id, Group.location_id).where(
                Group.id.in_(sorted({c["group_id"] for c in missing})))).all())
            for conv in missing:
                conv["location_id"] = locations.get(conv["group_id"])
        new_ids = insert_ids(conn, Conversation.__table__, new_convs)

    def real(ref):
        return new_ids[ref[1]] if isinstance(ref, tuple) else ref

    # 5. messages, attachments, events
    message_rows = []
    to_store = []
    for item, ref, action in planned:
        if action == "duplicate":
            continue
        message_rows.append({
            "conversation_id": real(ref), "author_contact_id": contacts[item.contact_key],
            "author_name": item.name or item.handle or None, "channel": item.channel,
            "message_type": item.message_type, "subject": item.subject, "text": item.text, "html": item.html,
            "external_id": item.external_id, "created_at": item.at, "body_sha256": digests[item.line],
            "url": item.url,
        })
        to_store.append(item)
    message_ids = insert_ids(conn, Message.__table__, message_rows, inline=_MESSAGE_CONSTANTS)
    attachment_rows = []
    for item, message_id in zip(to_store, message_ids, strict=True):
        for name, ctype, data in item.attachments:
            if store_attachment is None:
                from deskctl.services.outbound.replies import store_attachment
            attachment_rows.append({"message_id": message_id, "filename": name, "content_type": ctype,
                                    "size": len(data), "sha256": store_attachment(settings, data)})
    if attachment_rows:
        conn.execute(insert(Attachment.__table__), attachment_rows)
    event_rows = [events.created_row(cid, channel=new_convs[index]["channel"], source=SOURCE, at=now,
                                     linked_to=new_convs[index]["linked_to_id"])
                  for index, cid in enumerate(new_ids)]
    for item, ref, action in planned:
        results[item.line] = {"line": item.line, "id": real(ref), "action": action,
                              "external_id": item.external_id, "quarantine_id": None, "reason": None}
    stored = [(ref, real(ref), item.external_id) for item, ref, action in planned if action != "duplicate"]
    message_events, first_reply = message_in_events(stored, message_ids, touched, now=now)
    event_rows += message_events
    if event_rows:
        conn.execute(insert(Event.__table__), event_rows)

    # 6. existing conversations: inbound timestamps, and back to `new` on a contact reply
    existing = [(ref, state) for ref, state in touched.items() if not isinstance(ref, tuple)]
    update_touched(conn, existing, now=now)
    notifications.notify_contact_messages(session, first_reply, now=now)
    touched_ids = sorted({*new_ids, *(ref for ref, _ in existing)})
    if touched_ids and refresh:
        sla.refresh(session, touched_ids, now=now, settings=settings)
    # TEMPORARY (automations): the pipeline's single call site replaces this.
    from deskctl.services import automations

    automations.on_arrivals(session, [
        automations.Arrival(real(ref), mid, ("created",) if isinstance(ref, tuple) else
                            ("message_in", "reopened") if touched.get(ref, {}).get("reopened") else ("message_in",),
                            item.channel, item.subject, item.text, item.email, {})
        for (item, ref, _), mid in zip([x for x in planned if x[2] != "duplicate"], message_ids, strict=True)],
        now=now, settings=settings)
    return rejected


def message_in_events(stored: list[tuple[object, int, str]], message_ids: list[int], touched: dict, *,
                      now: datetime) -> tuple[list[dict], dict[int, int]]:
    """Event rows for the messages just stored, in order, and {existing conversation: its
    first new message} for the notifications. stored: (ref, conversation id, external
    id) per message; a ref is ("new", n) for a conversation created in this batch. The
    first message to an existing conversation carries the `reopened` of its touch."""
    rows: list[dict] = []
    first_reply: dict[int, int] = {}
    reopened_done: set[int] = set()
    for (ref, cid, external_id), message_id in zip(stored, message_ids, strict=True):
        state = touched.get(ref)
        reopened = state["reopened"] if state and cid not in reopened_done else None
        if reopened:
            reopened_done.add(cid)
        if not isinstance(ref, tuple):
            first_reply.setdefault(cid, message_id)
        rows += events.message_in_rows(cid, message_id=message_id, external_id=external_id, at=now,
                                       reopened_from=reopened)
    return rows, first_reply


def update_touched(conn, existing: list[tuple[int, dict]], *, now: datetime) -> None:
    """Existing conversations that got inbound messages: (id, {first, last, reopened}).
    Inbound timestamps widened, updated_at and version bumped (one executemany), and
    the reopened ones back to `new` without boomerang (one UPDATE)."""
    if not existing:
        return
    table = Conversation.__table__
    at_first = bindparam("b_first", type_=UTCDateTime())
    at_last = bindparam("b_last", type_=UTCDateTime())
    conn.execute(
        update(table).where(table.c.id == bindparam("b_id")).values(
            first_inbound_at=case((or_(table.c.first_inbound_at.is_(None),
                                       table.c.first_inbound_at > at_first), at_first),
                                  else_=table.c.first_inbound_at),
            last_inbound_at=case((or_(table.c.last_inbound_at.is_(None),
                                      table.c.last_inbound_at < at_last), at_last),
                                 else_=table.c.last_inbound_at),
            updated_at=bindparam("b_now", type_=UTCDateTime()),
            version=table.c.version + 1),
        [{"b_id": ref, "b_first": s["first"], "b_last": s["last"], "b_now": now} for ref, s in existing])
    reopened = sorted(ref for ref, s in existing if s["reopened"])
    if reopened:
        conn.execute(update(table).where(table.c.id.in_(reopened))
                     .values(status="new", boomerang_at=None, pending_since=None))


def _subject_from(text: str) -> str:
    first = next((line.strip() for line in (text or "").splitlines() if line.strip()), "")
    return first if len(first) <= 80 else first[:79] + "…"


def _contacts(session, items: list[Item], *, now: datetime, create: bool = True) -> dict[tuple[str, str], int]:
    """Contact id per sender key (email, else phone, else channel:handle), creating the
    missing ones in one INSERT (with create=False, only the ones that exist)."""
    wanted: dict[tuple[str, str], Item] = {}
    for item in items:
        wanted.setdefault(item.contact_key, item)
    found: dict[tuple[str, str], int] = {}
    emails = sorted(k[1] for k in wanted if k[0] == "email")
    phones = sorted(k[1] for k in wanted if k[0] == "phone")
    handles = sorted(k[1] for k in wanted if k[0] == "handle")
    if emails:
        for cid, email in session.execute(select(Contact.id, Contact.email).where(Contact.email.in_(emails))):
            found[("email", email)] = cid
    if phones:
        for cid, phone in session.execute(select(Contact.id, Contact.phone).where(
                and_(Contact.phone.in_(phones), Contact.email.is_(None))).order_by(Contact.id.desc())):
            found[("phone", phone)] = cid
        for cid, phone in session.execute(select(Contact.id, Contact.phone).where(Contact.phone.in_(phones))
                                          .order_by(Contact.id.desc())):
            found.setdefault(("phone", phone), cid)
    if handles:
        handle = Contact.attributes["handle"].as_string()
        for cid, value in session.execute(select(Contact.id, handle).where(handle.in_(handles))):
            found[("handle", value)] = cid
    missing = [key for key in wanted if key not in found]
    if missing and create:
        rows = []
        for key in missing:
            item = wanted[key]
            rows.append({"name": item.name or (item.handle or ""), "email": item.email,
                         "phone": item.phone, "account_id": None, "vip": False,
                         "attributes": {"handle": key[1]} if key[0] == "handle" else {}, "created_at": now})
        ids = insert_ids(session.connection(), Contact.__table__, rows)
        for key, cid in zip(missing, ids, strict=True):
            found[key] = cid
    return found

