"""Email in: RFC 5322 messages → conversations (SPEC §4).

`parse(raw)` is pure: it turns bytes into a `ParsedEmail` or raises `Unusable` with
the reason (no sender, broken MIME structure, text that cannot be decoded).
`ingest_message(session, raw, ...)` does one message in the caller's transaction:
quarantine, duplicate, append or create. The command runs one transaction per message,
so one bad or failing message never takes the others of an mbox down with it.

This module parses; `pipeline.store` stores (duplicates, threading, contacts, events,
SLA, automations), the same for every channel. Threading, in this order: In-Reply-To,
then References (newest first) against the stored Message-IDs of every email message
(inbound and our own outbound replies); then a stored message naming this one or one of
its ancestors in its own References; then a `[#123]` tag in the subject; else a new
conversation. Docs: docs/threading.md, docs/channels.md.
"""

from __future__ import annotations

import hashlib
import mimetypes
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import errors as email_errors
from email import policy
from email.parser import BytesParser
from email.utils import parsedate_to_datetime
from typing import cast

from deskctl.services.inbound import pipeline
from deskctl.services.inbound import quarantine as quarantine_service
from deskctl.services.inbound.htmltext import html_to_text
from deskctl.services.inbound.intake import Spilled, email_over_limits, spill
from deskctl.services.inbound.messages import ancestors

CHANNEL = "email"
SOURCE = "email"
# Headers kept (unfolded, lower-case names) for the automation rules: auto-replies and
# mailing lists are not answered automatically.
KEPT_HEADERS = ("auto-submitted", "precedence", "list-id")
_MSGID = re.compile(r"<([^<>\s]+)>")
_ADDRESS = re.compile(r"^[^@\s<>,;\"]+@[^@\s<>,;\"]+$")
_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f/\\]+")
# Defects that mean the MIME tree we got is not the one that was sent.
_BROKEN = (email_errors.StartBoundaryNotFoundDefect, email_errors.NoBoundaryInMultipartDefect,
           email_errors.MultipartInvariantViolationDefect)
# Headers a relay adds or rewrites: not part of a synthetic Message-ID.
_TRACE_HEADERS = {"received", "return-path", "delivered-to", "x-original-to", "envelope-to"}
_ASCII_LABELS = {"us-ascii", "ascii", "utf-8", "utf8", "unknown-8bit", "x-unknown", "unknown"}
_SURROGATE = re.compile("[\ud800-\udfff]")
# contacts.email is VARCHAR(320) (RFC 3696's upper bound for an address).
MAX_ADDRESS = 320


class _CachingPolicy(policy.EmailPolicy):
    """`policy.default`, except that a parsed header object is reused for the same name
    and value. The MIME walk asks for Content-Type many times per part, and the
    header registry parses it afresh on every call; header objects are immutable, so
    sharing them changes nothing but the time spent."""

    _cache: dict = {}

    def header_fetch_parse(self, name, value):
        if hasattr(value, "name"):
            return value
        key = (name, value)
        header = self._cache.get(key)
        if header is None:
            header = super().header_fetch_parse(name, value)
            if len(self._cache) >= 4096:
                self._cache.clear()
            self._cache[key] = header
        return header


POLICY = _CachingPolicy()  # == policy.default in every setting
_PARSER = BytesParser(policy=POLICY)


class Unusable(Exception):
    """The message cannot become a conversation message; the text is the reason."""


@dataclass
class ParsedEmail:
    message_id: str
    synthetic_id: bool
    sender: str
    sender_name: str
    subject: str
    text: str
    html: str | None
    date: datetime | None
    in_reply_to: str | None = None
    references: list[str] = field(default_factory=list)
    cc: list[str] = field(default_factory=list)
    attachments: list[tuple[str, str, bytes]] = field(default_factory=list)  # filename, type, bytes
    headers: dict[str, str] = field(default_factory=dict)  # KEPT_HEADERS present: name -> value

    def thread_candidates(self) -> list[str]:
        """Message-IDs that may name the parent, most specific first."""
        return ancestors(self.in_reply_to, self.references, self.message_id)


# -- parsing ---------------------------------------------------------------------------
def parse(raw: bytes) -> ParsedEmail:
    if not raw or not raw.strip():
        raise Unusable("empty message")
    try:
        msg = _PARSER.parsebytes(raw)
        return _parse_message(msg, raw)
    except Unusable:
        raise
    except Exception as exc:  # noqa: BLE001 - any parser failure is a property of the input
        detail = str(exc).splitlines()[0] if str(exc) else ""
        raise Unusable(f"unparseable message: {type(exc).__name__}: {detail}".rstrip(": ")) from exc


def _parse_message(msg, raw: bytes) -> ParsedEmail:
    if not any(msg.keys()):
        raise Unusable("no headers: not an RFC 5322 message")
    sender, sender_name = _sender(msg)
    for part in msg.walk():
        broken = [d for d in part.defects if isinstance(d, _BROKEN)]
        if broken:
            boundary = part.get_boundary()
            what = f"boundary {boundary!r} never appears in the body" if boundary else type(broken[0]).__name__
            raise Unusable(f"broken MIME structure in {part.get_content_type()}: {what}")
    # Message-IDs and the Date need no header registry: read their raw values.
    raw_headers: dict[str, str] = {}
    for name, value in msg.raw_items():
        raw_headers.setdefault(name.lower(), value)
    message_id = _first_id(_unfold(raw_headers.get("message-id")))
    synthetic = message_id is None
    if synthetic:
        message_id = synthetic_message_id(raw)
    body_plain = msg.get_body(preferencelist=("plain",))
    body_html = msg.get_body(preferencelist=("html",))
    text = _decode_text(body_plain) if body_plain is not None else None
    html = _decode_text(body_html) if body_html is not None else None
    extra_text: list[str] = []
    attachments: list[tuple[str, str, bytes]] = []
    for part in _leaves(msg):
        if part is body_plain or part is body_html:
            continue
        ctype = part.get_content_type()
        disposition = part.get_content_disposition()
        filename = part.get_filename()
        if part.get_content_maintype() == "text" and disposition != "attachment" and not filename \
                and ctype in ("text/plain", "text/html"):
            fragment = _decode_text(part)
            extra_text.append(html_to_text(fragment) if ctype == "text/html" else fragment)
            continue
        attachments.append(_attachment(part, len(attachments) + 1))
    if text is None:
        text = html_to_text(html) if html is not None else ""
    if extra_text:
        text = "\n".join([text.rstrip("\n"), *extra_text]) if text else "\n".join(extra_text)
    date = None
    if raw_headers.get("date"):
        try:
            date = parsedate_to_datetime(_unfold(raw_headers["date"]))
        except (TypeError, ValueError, IndexError, OverflowError):
            date = None
        if date is not None and date.tzinfo is None:
            date = date.replace(tzinfo=UTC)
    references = []
    for ref in _MSGID.findall(_unfold(raw_headers.get("references"))):
        if ref not in references:
            references.append(ref)
    cc: list[str] = []
    for header in msg.get_all("Cc") or []:
        for address in getattr(header, "addresses", ()):
            addr = _clean(address.addr_spec).lower()
            if _ADDRESS.match(addr) and addr not in cc:
                cc.append(addr)
    return ParsedEmail(
        message_id=_safe(message_id), synthetic_id=synthetic, sender=_safe(sender), sender_name=_safe(sender_name),
        subject=_safe(_clean(_header(msg, "Subject")).strip()[:998]), text=_safe(text), html=_safe(html),
        date=date, in_reply_to=_safe(_first_id(_unfold(raw_headers.get("in-reply-to")))),
        references=[_safe(r) for r in references], cc=[_safe(c) for c in cc],
        attachments=[(_safe(name), _safe(ctype), data) for name, ctype, data in attachments],
        headers={name: _safe(_unfold(raw_headers[name]).strip()) for name in KEPT_HEADERS if name in raw_headers},
    )


def _safe(value):
    """Text the database can store, identically on SQLite and PostgreSQL: NUL removed
    (PostgreSQL text cannot hold it) and a lone surrogate (from a decoder that lets one
    through) replaced by U+FFFD. None stays None."""
    if not value:
        return value
    if "\x00" in value:
        value = value.replace("\x00", "")
    if not value.isascii() and _SURROGATE.search(value):
        value = _SURROGATE.sub("\ufffd", value)
    return value


def _unfold(value) -> str:
    return _clean(re.sub(r"\r?\n", "", str(value))) if value is not None else ""


def _header(msg, name: str) -> str:
    value = msg.get(name)
    return _clean(str(value)) if value is not None else ""


def _clean(value: str) -> str:
    """Header text with raw 8-bit bytes (undeclared charset) decoded as UTF-8 or CP1252,
    and without NUL."""
    if not value:
        return ""
    value = value.replace("\x00", "")
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        data = value.encode("utf-8", "surrogateescape")
    for charset in ("utf-8", "cp1252"):
        try:
            return data.decode(charset)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def _first_id(value: str) -> str | None:
    found = _MSGID.findall(value or "")
    if found:
        return found[0][:998]
    bare = (value or "").strip().strip("<>").strip()
    return bare[:998] if bare and " " not in bare else None


def _sender(msg) -> tuple[str, str]:
    for name in ("From", "Sender", "Reply-To"):
        for header in msg.get_all(name) or []:
            for address in getattr(header, "addresses", ()):
                addr = _clean(address.addr_spec).strip().lower()
                if _ADDRESS.match(addr):
                    if len(addr) > MAX_ADDRESS:
                        raise Unusable(f"sender address is longer than {MAX_ADDRESS} characters "
                                       f"({len(addr)}): not a deliverable address")
                    return addr, _clean(address.display_name or "").strip()[:200]
    raise Unusable("no sender address: From (or Sender, Reply-To) is missing or not an address")


def synthetic_message_id(raw: bytes) -> str:
    """A stable id for a message without Message-ID: a hash of its content and of the
    headers the author wrote, so a relay's added trace headers do not change it."""
    head, sep, body = raw.replace(b"\r\n", b"\n").partition(b"\n\n")
    digest = hashlib.sha256()
    current = None
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t"):
            if current:
                digest.update(line)
            continue
        current = line.split(b":", 1)[0].strip().lower().decode("ascii", "replace") not in _TRACE_HEADERS
        if current:
            digest.update(b"\n" + line)
    digest.update(sep + body)
    return f"synthetic.{digest.hexdigest()[:40]}@deskctl.invalid"


def _leaves(part):
    """Leaf parts in order; an attached message (message/rfc822) is one leaf."""
    if part.get_content_type() == "message/rfc822" or not part.is_multipart():
        yield part
        return
    for sub in part.get_payload():
        yield from _leaves(sub)


def _decode_text(part) -> str:
    data = part.get_payload(decode=True) or b""
    label = (part.get_content_charset() or "").strip().lower()
    if label in _ASCII_LABELS or not label:
        tries = ["utf-8", "cp1252"]
    else:
        try:
            import codecs

            codecs.lookup(label)
        except LookupError:
            raise Unusable(f"unknown charset {label!r} in a {part.get_content_type()} part") from None
        tries = [label, "utf-8"]
    for charset in tries:
        try:
            return data.decode(charset).replace("\r\n", "\n")
        except UnicodeDecodeError:
            continue
    raise Unusable(f"the {part.get_content_type()} part is not valid {label or 'UTF-8'} text")


def _attachment(part, number: int) -> tuple[str, str, bytes]:
    ctype = part.get_content_type()
    if ctype == "message/rfc822":
        inner = part.get_payload()
        inner = inner[0] if isinstance(inner, list) and inner else inner
        data = inner.as_bytes(policy=policy.default.clone(linesep="\n")) if hasattr(inner, "as_bytes") else b""
        default = _clean(str(inner.get("Subject", "") or "")).strip() or f"message-{number}"
        filename = part.get_filename() or f"{default}.eml"
    else:
        data = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        if not filename:
            filename = f"attachment-{number}{mimetypes.guess_extension(ctype) or '.bin'}"
    filename = _UNSAFE_NAME.sub("_", _clean(filename)).strip(" .") or f"attachment-{number}"
    return filename[-500:], ctype[:200], data


# -- storing -------------------------------------------------------------------------
def ingest_message(session, raw: bytes | Spilled, *, now: datetime, settings, group_id: int | None = None,
                   filename: str | None = None, store_attachment=None, hold: bool = True) -> dict:
    """One message: `created`, `appended`, `duplicate` or `quarantined` (the raw bytes
    and the reason go to the quarantine table; with hold=False, a retry of a held entry,
    nothing is stored). Never commits."""
    [result] = ingest_batch(session, [(raw, filename)], now=now, settings=settings, group_id=group_id,
                            store_attachment=store_attachment, hold=hold)
    return result


def _peek_message_id(raw: bytes) -> str | None:
    match = re.search(rb"(?im)^message-id:[ \t]*<([^<>\s]+)>", raw[:65536])
    return match.group(1).decode("utf-8", "replace") if match else None


def ingest_batch(session, messages: list[tuple[bytes | Spilled, str | None]], *, now: datetime, settings,
                 group_id: int | None = None, store_attachment=None, hold: bool = True,
                 refresh: bool = True) -> list[dict]:
    """(raw bytes, origin) pairs → one result each, in order, in the caller's transaction.

    Each message is treated as if it came alone, in order (a reply later in the batch
    threads onto a conversation created earlier in it); the parsed ones are stored by
    one `pipeline.store` call (set-based). Unparseable ones, and a different message
    reusing a stored Message-ID, are quarantined (with hold=False: nothing is stored)."""
    results: list[dict | None] = [None] * len(messages)
    parsed: list[tuple[int, ParsedEmail]] = []
    for index, (raw, origin) in enumerate(messages):
        try:
            if isinstance(raw, Spilled):
                raise Unusable(raw.reason)
            over = email_over_limits(raw, settings.limits)
            if over is not None:
                # Over a cap: kept on disk, never parsed (SPEC §13).
                raw = spill(settings, raw, over) if hold else raw
                raise Unusable(over)
            parsed.append((index, parse(raw)))
        except Unusable as exc:
            qid = quarantine_service.hold(session, source=SOURCE, reason=str(exc), raw=raw, now=now,
                                          filename=origin) if hold else None
            head = raw.head if isinstance(raw, Spilled) else raw
            results[index] = {"message_id": _peek_message_id(head), "id": None, "action": "quarantined",
                              "quarantine_id": qid, "reason": str(exc)}
    if parsed:
        items = [_incoming(p, now=now, group_id=group_id) for _, p in parsed]
        outcomes = pipeline.store(session, items, now=now, settings=settings, source=SOURCE,
                                  store_attachment=store_attachment, refresh=refresh)
        for (index, p), outcome in zip(parsed, outcomes, strict=True):
            if outcome.reason is None:
                results[index] = {"message_id": p.message_id, "id": outcome.conversation_id,
                                  "action": outcome.action, "quarantine_id": None, "reason": None}
                continue
            raw, origin = messages[index]
            qid = quarantine_service.hold(session, source=SOURCE, reason=outcome.reason, raw=raw, now=now,
                                          filename=origin) if hold else None
            results[index] = {"message_id": p.message_id, "id": None, "action": "quarantined",
                              "quarantine_id": qid, "reason": outcome.reason}
    return cast(list[dict], results)  # every index is filled above: parsed or quarantined


def _incoming(p: ParsedEmail, *, now: datetime, group_id: int | None) -> pipeline.Incoming:
    """A parsed email as the pipeline takes it. Everything is received now: `at` is the
    desk's time; the Date header is only kept as `sent_at`."""
    return pipeline.Incoming(
        kind=pipeline.MAIL, channel=CHANNEL, external_id=p.message_id, text=p.text, at=now, subject=p.subject,
        html=p.html, name=p.sender_name, email=p.sender, attachments=p.attachments, sent_at=_sent_at(p.date),
        message_type="email", in_reply_to=p.in_reply_to, references=p.references, cc=p.cc, group_id=group_id,
        headers=p.headers)


def _sent_at(date: datetime | None) -> datetime | None:
    """The Date header as stored (UTC), or None when it names no storable moment."""
    if date is None:
        return None
    try:
        return date.astimezone(UTC)
    except (OverflowError, ValueError):
        return None
