"""JSON lines in: chat, SMS, social and web messages (SPEC §7).

One object a line:
  {"channel": "chat", "thread": "chat-8812", "id": "m-1", "at": "2026-11-20T10:02:00Z",
   "from": {"name": ..., "email": ..., "phone": ..., "handle": ...}, "text": "...",
   "subject": null, "group": null, "priority": null, "attachments": []}

This module parses; `pipeline.store` stores a batch (set-based), the same for every
channel. Messages with the same (channel, thread) form one conversation (its
`thread_key`); where that conversation was merged or closed, the message goes to the
survivor, to the follow-up already opened, or to a new follow-up linked to it. (channel,
id) is the message's external id: a re-delivered line (same sender, same content) is a
`duplicate`, a different message reusing it is quarantined. A bad line is quarantined
with its line number and the rest of the batch is kept.
"""

from __future__ import annotations

import base64
import binascii
import json
import mimetypes
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, overload

from sqlalchemy import select

from deskctl.models import Group
from deskctl.services.inbound import pipeline
from deskctl.services.inbound import quarantine as quarantine_service
from deskctl.services.inbound.intake import Spilled, spill
from deskctl.vocab import PRIORITIES

SOURCE = "jsonl"
_ADDRESS = re.compile(r"^[^@\s<>,;\"]+@[^@\s<>,;\"]+$")
_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f/\\]+")
_SURROGATE = re.compile("[\ud800-\udfff]")
_FIELDS = {"channel", "thread", "id", "at", "from", "text", "html", "subject", "group", "priority",
           "attachments", "type", "url"}


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


@overload
def _str(obj: dict, key: str, *, required: Literal[True], limit: int = ..., path: str = ...) -> str: ...


@overload
def _str(obj: dict, key: str, *, required: bool = False, limit: int = ..., path: str = ...) -> str | None: ...


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
    bad: list[tuple[int, bytes | Spilled, str]] = []
    items: list[Item] = []
    for number, raw in lines:
        if isinstance(raw, Spilled):  # over a cap already when read: quarantined as it is
            bad.append((number, raw, raw.reason))
            continue
        try:
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
        outcomes = pipeline.store(session, [_incoming(item, groups) for item in good], now=now, settings=settings,
                                  source=SOURCE, store_attachment=store_attachment)
        for item, outcome in zip(good, outcomes, strict=True):
            if outcome.reason is not None:
                bad.append((item.line, item.raw, outcome.reason))
            else:
                results[item.line] = {"line": item.line, "id": outcome.conversation_id, "action": outcome.action,
                                      "external_id": item.external_id, "quarantine_id": None, "reason": None}
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


def _incoming(item: Item, groups) -> pipeline.Incoming:
    """A parsed line as the pipeline takes it."""
    return pipeline.Incoming(
        kind=pipeline.CHAT, channel=item.channel, external_id=item.external_id, text=item.text, at=item.at,
        subject=item.subject, html=item.html, name=item.name, email=item.email, phone=item.phone,
        handle=item.handle, attachments=item.attachments, message_type=item.message_type, url=item.url,
        thread=item.thread, group_id=groups[item.group][0] if item.group else None, priority=item.priority)
