"""Email in: RFC 5322 messages → conversations (SPEC §4).

`parse(raw)` is pure: it turns bytes into a `ParsedEmail` or raises `Unusable` with
the reason (no sender, broken MIME structure, text that cannot be decoded).
`ingest_message(session, raw, ...)` does one message in the caller's transaction:
quarantine, duplicate, append or create. The command runs one transaction per message,
so one bad or failing message never takes the others of an mbox down with it.

Threading, in this order: In-Reply-To, then References (newest first) against the
stored Message-IDs of every email message (inbound and our own outbound replies); then
a `[#123]` tag in the subject; else a new conversation. A reply to a `closed`
conversation opens a new one linked to it.
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

from sqlalchemy import bindparam, insert, select, update

from deskctl.models import Attachment, Contact, Conversation, Event, Group, Message
from deskctl.services import events, sla
from deskctl.services import quarantine as quarantine_service
from deskctl.services.htmltext import html_to_text

CHANNEL = "email"
SOURCE = "email"
REOPENED_BY_REPLY = ("pending", "resolved")
_MSGID = re.compile(r"<([^<>\s]+)>")
_TAG = re.compile(r"\[#(\d{1,9})\]")
_ADDRESS = re.compile(r"^[^@\s<>,;\"]+@[^@\s<>,;\"]+$")
_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f/\\]+")
# Defects that mean the MIME tree we got is not the one that was sent.
_BROKEN = (email_errors.StartBoundaryNotFoundDefect, email_errors.NoBoundaryInMultipartDefect,
           email_errors.MultipartInvariantViolationDefect)
# Headers a relay adds or rewrites: not part of a synthetic Message-ID.
_TRACE_HEADERS = {"received", "return-path", "delivered-to", "x-original-to", "envelope-to"}
_ASCII_LABELS = {"us-ascii", "ascii", "utf-8", "utf8", "unknown-8bit", "x-unknown", "unknown"}


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

    def thread_candidates(self) -> list[str]:
        """Message-IDs that may name the parent, most specific first."""
        out: dict[str, None] = {}
        if self.in_reply_to:
            out[self.in_reply_to] = None
        for ref in reversed(self.references):
            out.setdefault(ref, None)
        out.pop(self.message_id, None)
        return list(out)


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
    message_id = _first_id(_header(msg, "Message-ID"))
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
    date_header = msg.get("Date")
    if date_header is not None:
        date = getattr(date_header, "datetime", None)
        if date is not None and date.tzinfo is None:
            date = date.replace(tzinfo=UTC)
    references = []
    for ref in _MSGID.findall(_header(msg, "References")):
        if ref not in references:
            references.append(ref)
    cc: list[str] = []
    for header in msg.get_all("Cc") or []:
        for address in getattr(header, "addresses", ()):
            addr = _clean(address.addr_spec).lower()
            if _ADDRESS.match(addr) and addr not in cc:
                cc.append(addr)
    return ParsedEmail(
        message_id=message_id, synthetic_id=synthetic, sender=sender, sender_name=sender_name,
        subject=_clean(_header(msg, "Subject")).strip()[:998], text=text, html=html, date=date,
        in_reply_to=_first_id(_header(msg, "In-Reply-To")), references=references, cc=cc,
        attachments=attachments,
    )


def _header(msg, name: str) -> str:
    value = msg.get(name)
    return _clean(str(value)) if value is not None else ""


def _clean(value: str) -> str:
    """Header text with raw 8-bit bytes (undeclared charset) decoded as UTF-8 or CP1252."""
    if not value:
        return ""
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
    return filename[-500:], ctype, data


# -- storing -------------------------------------------------------------------------
def ingest_message(session, raw: bytes, *, now: datetime, settings, group_id: int | None = None,
                   filename: str | None = None, store_attachment=None, hold: bool = True,
                   refresh: bool = True) -> dict:
    """One message: `created`, `appended`, `duplicate` or `quarantined` (the raw bytes
    and the reason go to the quarantine table; with hold=False, a retry of a held entry,
    nothing is stored). Never commits."""
    try:
        parsed = parse(raw)
    except Unusable as exc:
        qid = None
        if hold:
            qid = quarantine_service.hold(session, source=SOURCE, reason=str(exc), raw=raw, now=now,
                                          filename=filename)
        return {"message_id": _peek_message_id(raw), "id": None, "action": "quarantined", "quarantine_id": qid,
                "reason": str(exc)}
    return store(session, parsed, now=now, settings=settings, group_id=group_id, store_attachment=store_attachment,
                 refresh=refresh)


def _peek_message_id(raw: bytes) -> str | None:
    match = re.search(rb"(?im)^message-id:[ \t]*<([^<>\s]+)>", raw[:65536])
    return match.group(1).decode("utf-8", "replace") if match else None


_CONV = Conversation.__table__
_MSG = Message.__table__
_CONTACT = Contact.__table__
# Statements built once: per-message cost is then binding and executing, not building.
_SELECT_DUPLICATE = select(_MSG.c.conversation_id).where(
    _MSG.c.channel == CHANNEL, _MSG.c.external_id == bindparam("external_id"))
_SELECT_PARENTS = select(_MSG.c.external_id, _MSG.c.conversation_id).where(
    _MSG.c.channel == CHANNEL, _MSG.c.external_id.in_(bindparam("ids", expanding=True)))
_SELECT_CONVERSATION = select(_CONV.c.id, _CONV.c.status, _CONV.c.group_id, _CONV.c.first_inbound_at,
                              _CONV.c.last_inbound_at).where(_CONV.c.id == bindparam("id"))
_SELECT_CONTACT = select(_CONTACT.c.id, _CONTACT.c.name).where(_CONTACT.c.email == bindparam("email"))
_INSERT_CONTACT = insert(_CONTACT).returning(_CONTACT.c.id)
_INSERT_CONVERSATION = insert(_CONV).returning(_CONV.c.id)
_INSERT_MESSAGE = insert(_MSG).returning(_MSG.c.id)
_INSERT_EVENTS = insert(Event.__table__)
_INSERT_ATTACHMENTS = insert(Attachment.__table__)
_SELECT_LOCATION = select(Group.location_id).where(Group.id == bindparam("id"))


def find_parent(session, parsed: ParsedEmail):
    """The conversation row (id, status, group_id) this message continues, or None."""
    conn = session.connection()
    candidates = parsed.thread_candidates()
    if candidates:
        found = dict(conn.execute(_SELECT_PARENTS, {"ids": candidates}).all())
        for candidate in candidates:
            if candidate in found:
                return _conversation_row(conn, found[candidate])
    for tag in _TAG.findall(parsed.subject):
        row = _conversation_row(conn, int(tag))
        if row is not None:
            return row
    return None


def _conversation_row(conn, conversation_id: int):
    return conn.execute(_SELECT_CONVERSATION, {"id": conversation_id}).first()


def match_contact(session, address: str, name: str, *, now: datetime) -> int:
    """The id of the contact with this address, created if new (a missing name is filled in)."""
    conn = session.connection()
    row = conn.execute(_SELECT_CONTACT, {"email": address}).first()
    if row is None:
        return conn.execute(_INSERT_CONTACT, {
            "name": name, "email": address, "phone": None, "account_id": None, "vip": False, "attributes": {},
            "created_at": now}).scalar_one()
    if name and not row.name:
        conn.execute(update(_CONTACT).where(_CONTACT.c.id == row.id).values(name=name))
    return row.id


def store(session, parsed: ParsedEmail, *, now: datetime, settings, group_id: int | None = None,
          store_attachment=None, refresh: bool = True) -> dict:
    """Thread and store a parsed message in the caller's transaction (Core statements:
    a handful per message). refresh=False leaves `sla.refresh` of the returned `id`
    to the caller (once per batch)."""
    conn = session.connection()
    result = {"message_id": parsed.message_id, "id": None, "action": "", "quarantine_id": None, "reason": None}
    existing = conn.execute(_SELECT_DUPLICATE, {"external_id": parsed.message_id}).scalar()
    if existing is not None:
        return {**result, "id": existing, "action": "duplicate"}
    at = min(parsed.date, now) if parsed.date is not None else now
    contact_id = match_contact(session, parsed.sender, parsed.sender_name, now=now)
    parent = find_parent(session, parsed)
    event_rows = []
    if parent is not None and parent.status != "closed":
        conversation_id, action = parent.id, "appended"
        values = {"updated_at": now, "version": _CONV.c.version + 1}
        if parent.first_inbound_at is None or at < parent.first_inbound_at:
            values["first_inbound_at"] = at
        if parent.last_inbound_at is None or at > parent.last_inbound_at:
            values["last_inbound_at"] = at
        reopen = parent.status in REOPENED_BY_REPLY
        if reopen:
            values.update(status="new", boomerang_at=None, pending_since=None)
        conn.execute(update(_CONV).where(_CONV.c.id == conversation_id).values(**values))
    else:
        reopen = False
        linked = parent.id if parent is not None else None
        gid = group_id if group_id is not None else (parent.group_id if parent is not None else None)
        subject = parsed.subject
        if linked is not None:
            subject = re.sub(rf"\s*\[#{linked}\]\s*", " ", subject).strip()
        conversation_id, created = new_conversation(
            session, channel=CHANNEL, subject=subject, contact_id=contact_id, group_id=gid, at=at, now=now,
            linked_to=linked, source=SOURCE)
        event_rows.append(created)
        action = "created"
    message_id = conn.execute(_INSERT_MESSAGE, {
        "conversation_id": conversation_id, "direction": "inbound", "author_user_id": None,
        "author_contact_id": contact_id, "author_name": parsed.sender_name or None, "channel": CHANNEL,
        "message_type": "email", "subject": parsed.subject, "text": parsed.text, "html": parsed.html,
        "external_id": parsed.message_id, "in_reply_to": parsed.in_reply_to,
        "references": " ".join(f"<{r}>" for r in parsed.references) or None, "cc": parsed.cc, "bcc": [],
        "created_at": at}).scalar_one()
    if parsed.attachments:
        if store_attachment is None:
            from deskctl.services.outbound import store_attachment
        conn.execute(_INSERT_ATTACHMENTS, [
            {"message_id": message_id, "filename": name, "content_type": ctype, "size": len(data),
             "sha256": store_attachment(settings, data)}
            for name, ctype, data in parsed.attachments])
    event_rows.append({"conversation_id": conversation_id, "actor": events.SYSTEM, "kind": "message_in", "at": now,
                       "data": {"message_id": message_id, "external_id": parsed.message_id}})
    if reopen:
        event_rows.append({"conversation_id": conversation_id, "actor": events.SYSTEM, "kind": "reopened",
                           "at": now, "data": {"previous_status": parent.status, "cause": "contact_reply"}})
    conn.execute(_INSERT_EVENTS, event_rows)
    if refresh:
        sla.refresh(session, [conversation_id], now=now, settings=settings)
    return {**result, "id": conversation_id, "action": action}


def new_conversation(session, *, channel: str, subject: str, contact_id: int | None, group_id: int | None,
                     at: datetime, now: datetime, linked_to: int | None, source: str,
                     priority: str = "low", thread_key: str | None = None) -> tuple[int, dict]:
    """Insert a `new` conversation; returns its id and its `created` event row (for the
    caller's one events INSERT)."""
    conn = session.connection()
    location_id = conn.execute(_SELECT_LOCATION, {"id": group_id}).scalar() if group_id else None
    conversation_id = conn.execute(_INSERT_CONVERSATION, {
        "subject": (subject or "")[:998], "channel": channel, "status": "new", "priority": priority,
        "assignee_id": None, "group_id": group_id, "location_id": location_id, "contact_id": contact_id,
        "linked_to_id": linked_to, "thread_key": thread_key, "created_at": at, "updated_at": now,
        "first_inbound_at": at, "last_inbound_at": at, "sla_state": "none", "sla_paused_s": 0,
        "version": 1}).scalar_one()
    data = {"channel": channel, "source": source}
    if linked_to is not None:
        data["linked_to"] = linked_to
    return conversation_id, {"conversation_id": conversation_id, "actor": events.SYSTEM, "kind": "created",
                             "at": now, "data": data}
