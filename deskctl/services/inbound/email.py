"""Email in: RFC 5322 messages → conversations (SPEC §4).

`parse(raw)` is pure: it turns bytes into a `ParsedEmail` or raises `Unusable` with
the reason (no sender, broken MIME structure, text that cannot be decoded).
`ingest_message(session, raw, ...)` does one message in the caller's transaction:
quarantine, duplicate, append or create. The command runs one transaction per message,
so one bad or failing message never takes the others of an mbox down with it.

Threading, in this order: In-Reply-To, then References (newest first) against the
stored Message-IDs of every email message (inbound and our own outbound replies); then a
stored message naming this one or one of its ancestors in its own References; then a
`[#123]` tag in the subject; else a new conversation. Where the conversation found was
merged or closed, `messages.Router` says where the message goes (the survivor, the
follow-up already opened, or a new follow-up linked to it). Docs: docs/threading.md.
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

from sqlalchemy import bindparam, insert, select, update

from deskctl.models import Attachment, Contact, Conversation, Event, Group, Message
from deskctl.services.conversations import events
from deskctl.services.inbound import quarantine as quarantine_service
from deskctl.services.inbound.htmltext import html_to_text
from deskctl.services.inbound.intake import Spilled, email_over_limits, spill
from deskctl.services.inbound.jsonl import insert_ids, message_in_events, update_touched
from deskctl.services.inbound.messages import (
    Router,
    StoredMessage,
    ancestors,
    body_sha256,
    redelivery_problem,
    sharing,
    store_references,
)
from deskctl.services.outbound import notifications
from deskctl.services.sla import deadlines as sla

CHANNEL = "email"
SOURCE = "email"
REOPENED_BY_REPLY = ("pending", "resolved")
_MSGID = re.compile(r"<([^<>\s]+)>")
_TAG = re.compile(r"\[#(\d{1,9})\]")
_TAG_SPACED = re.compile(r"\s*\[#\d{1,9}\]\s*")
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
    # TEMPORARY (automations, until the pipeline lands): the RFC 3834 headers, lower-case keys.
    headers: dict[str, str] = field(default_factory=dict)

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
        headers={k: _unfold(raw_headers[k]) for k in ("auto-submitted", "precedence", "list-id")
                 if k in raw_headers},
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
_CONV = Conversation.__table__
_MSG = Message.__table__
_CONTACT = Contact.__table__
# Statements built once: per-batch cost is then binding and executing, not building.
_SELECT_KNOWN = select(_MSG.c.external_id, _MSG.c.conversation_id, _MSG.c.direction, _MSG.c.author_contact_id,
                       _MSG.c.body_sha256).where(
    _MSG.c.channel == CHANNEL, _MSG.c.external_id.in_(bindparam("ids", expanding=True)))
_SELECT_CONTACTS = select(_CONTACT.c.email, _CONTACT.c.id).where(
    _CONTACT.c.email.in_(bindparam("emails", expanding=True)))
_SELECT_NAMED_CONTACTS = _SELECT_CONTACTS.add_columns(_CONTACT.c.name)
_NAME_CONTACT = update(_CONTACT).where(_CONTACT.c.id == bindparam("b_id")).values(name=bindparam("b_name"))
_INSERT_EVENTS = insert(Event.__table__)
_INSERT_ATTACHMENTS = insert(Attachment.__table__)
_SELECT_LOCATIONS = select(Group.id, Group.location_id).where(Group.id.in_(bindparam("ids", expanding=True)))


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
    threads onto a conversation created earlier in it), but the database work is
    set-based: one query each for known Message-IDs, conversations and contacts, one
    executemany INSERT each for conversations, messages, attachments and events, one
    UPDATE for the conversations that got replies, one SLA refresh."""
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
        rejected = _store(session, parsed, results, now=now, settings=settings, group_id=group_id,
                          store_attachment=store_attachment, refresh=refresh)
        for index, message_id, reason in rejected:
            raw, origin = messages[index]
            qid = quarantine_service.hold(session, source=SOURCE, reason=reason, raw=raw, now=now,
                                          filename=origin) if hold else None
            results[index] = {"message_id": message_id, "id": None, "action": "quarantined",
                              "quarantine_id": qid, "reason": reason}
    return results


def _store(session, parsed, results, *, now, settings, group_id, store_attachment,
           refresh) -> list[tuple[int, str, str]]:
    """Store the parsed messages (index, ParsedEmail) and fill their results; returns
    (index, Message-ID, reason) for each one to quarantine instead: a different message
    reusing a stored Message-ID (SPEC §13). Everything is received now: `created_at` and
    every clock use the desk's time; the Date header is only kept as `sent_at`."""
    conn = session.connection()
    # What the database knows: Message-IDs (ours and theirs), the messages naming the
    # same ancestors, conversations, and the senders of the Message-IDs already used.
    wanted = {p.message_id for _, p in parsed} | {c for _, p in parsed for c in p.thread_candidates()}
    stored = {external_id: StoredMessage(cid, direction == "outbound", contact_id, sha256)
              for external_id, cid, direction, contact_id, sha256 in conn.execute(_SELECT_KNOWN,
                                                                                 {"ids": sorted(wanted)})}
    shared = sharing(conn, wanted)
    tags = {int(t) for _, p in parsed for t in _TAG.findall(p.subject)}
    router = Router(conn, {*(m.conversation_id for m in stored.values()), *shared.values(), *tags})

    # Duplicates first: a stored Message-ID is a re-delivery only from the same sender
    # with the same content; otherwise the message is quarantined, never dropped.
    digests = {index: body_sha256(p.text, p.html, (data for _, _, data in p.attachments)) for index, p in parsed}
    reused = [p.sender for _, p in parsed if p.message_id in stored]
    senders = dict(conn.execute(_SELECT_CONTACTS, {"emails": sorted(set(reused))}).all()) if reused else {}
    verdicts: dict[int, str | None] = {}  # index -> None (store it), "duplicate", or the reason to quarantine
    first_in_batch: dict[str, StoredMessage] = {}
    for index, p in parsed:
        if p.message_id in stored:
            problem = redelivery_problem(stored[p.message_id], sender=senders.get(p.sender), sha256=digests[index])
        elif p.message_id in first_in_batch:
            problem = redelivery_problem(first_in_batch[p.message_id], sender=p.sender, sha256=digests[index])
        else:
            first_in_batch[p.message_id] = StoredMessage(None, False, p.sender, digests[index])
            verdicts[index] = None
            continue
        verdicts[index] = "duplicate" if problem is None else (
            f"Message-ID <{p.message_id}> is already stored and this is a different message: {problem}")
    contacts = _contacts(conn, [p for index, p in parsed if verdicts[index] is None], now=now)

    new_convs: list[dict] = []  # a new conversation's ref is ("new", index) until inserted
    touched: dict[object, dict] = {}
    known: dict[str, object] = {external_id: m.conversation_id for external_id, m in stored.items()}
    planned: list[tuple[int, ParsedEmail, object, str]] = []
    rejected: list[tuple[int, str, str]] = []
    for index, p in parsed:
        verdict = verdicts[index]
        if verdict == "duplicate":
            planned.append((index, p, known[p.message_id], "duplicate"))
            continue
        if verdict is not None:
            rejected.append((index, p.message_id, verdict))
            continue
        candidates = p.thread_candidates()
        # The parent (or a nearer ancestor) stored; else a stored message naming this one
        # as its ancestor (it came first) or sharing an ancestor with it; else the tag.
        ref = next((known[c] for c in candidates if c in known), None)
        if ref is None:
            ref = next((shared[c] for c in [p.message_id, *candidates] if c in shared), None)
        target = router.target(ref) if ref is not None else None
        if target is None:
            target = next(filter(None, (router.target(int(t)) for t in _TAG.findall(p.subject))), None)
        if target is not None and target[1]["status"] != "closed":
            ref, state = target
            action = "appended"
            if isinstance(ref, tuple):
                conv = new_convs[ref[1]]
                conv["last_inbound_at"] = now
            else:
                mark = touched.setdefault(ref, {"first": now, "last": now, "reopened": None})
                if state["status"] in REOPENED_BY_REPLY:
                    mark["reopened"] = state["status"]
                    state["status"] = "new"
        else:
            action = "created"
            linked = target[0] if target is not None else None
            gid = group_id if group_id is not None else (target[1]["group_id"] if target is not None else None)
            subject = p.subject
            if linked is not None:
                # A follow-up's tags name older conversations (the closed one, or a
                # duplicate merged into it); its own tag is added to our replies.
                subject = _TAG_SPACED.sub(" ", subject).strip()
            ref = ("new", len(new_convs))
            new_convs.append({
                "subject": subject[:998], "channel": CHANNEL, "status": "new", "priority": "low",
                "assignee_id": None, "group_id": gid, "location_id": None, "contact_id": contacts[p.sender],
                "linked_to_id": linked, "thread_key": None, "created_at": now, "updated_at": now,
                "first_inbound_at": now, "last_inbound_at": now, "sla_state": "none", "sla_paused_s": 0,
                "version": 1})
            router.opened(linked, ref, group_id=gid)
        known[p.message_id] = ref
        for ancestor in candidates:
            shared.setdefault(ancestor, ref)
        planned.append((index, p, ref, action))

    new_ids: list[int] = []
    if new_convs:
        groups = sorted({c["group_id"] for c in new_convs if c["group_id"] is not None})
        if groups:
            locations = dict(conn.execute(_SELECT_LOCATIONS, {"ids": groups}).all())
            for conv in new_convs:
                conv["location_id"] = locations.get(conv["group_id"])
        new_ids = insert_ids(conn, _CONV, new_convs)

    def real(ref):
        return new_ids[ref[1]] if isinstance(ref, tuple) else ref

    to_store = [(index, p, ref) for index, p, ref, action in planned if action != "duplicate"]
    message_ids = insert_ids(conn, _MSG, [{
        "conversation_id": real(ref), "direction": "inbound", "author_user_id": None,
        "author_contact_id": contacts[p.sender], "author_name": p.sender_name or None, "channel": CHANNEL,
        "message_type": "email", "subject": p.subject, "text": p.text, "html": p.html,
        "external_id": p.message_id, "in_reply_to": p.in_reply_to,
        "references": " ".join(f"<{r}>" for r in p.references) or None, "cc": p.cc, "bcc": [],
        "created_at": now, "sent_at": _sent_at(p.date), "body_sha256": digests[index]}
        for index, p, ref in to_store])
    store_references(conn, [(message_id, p.thread_candidates())
                            for (_, p, _), message_id in zip(to_store, message_ids, strict=True)])
    attachment_rows = []
    for (_, p, _), message_id in zip(to_store, message_ids, strict=True):
        for name, ctype, data in p.attachments:
            if store_attachment is None:
                from deskctl.services.outbound.replies import store_attachment
            attachment_rows.append({"message_id": message_id, "filename": name, "content_type": ctype,
                                    "size": len(data), "sha256": store_attachment(settings, data)})
    if attachment_rows:
        conn.execute(_INSERT_ATTACHMENTS, attachment_rows)

    event_rows = [events.created_row(cid, channel=CHANNEL, source=SOURCE, at=now,
                                     linked_to=new_convs[number]["linked_to_id"])
                  for number, cid in enumerate(new_ids)]
    for index, p, ref, action in planned:
        results[index] = {"message_id": p.message_id, "id": real(ref), "action": action, "quarantine_id": None,
                          "reason": None}
    message_events, first_reply = message_in_events(
        [(ref, real(ref), p.message_id) for _, p, ref in to_store], message_ids, touched, now=now)
    event_rows += message_events
    if event_rows:
        conn.execute(_INSERT_EVENTS, event_rows)
    update_touched(conn, list(touched.items()), now=now)
    notifications.notify_contact_messages(session, first_reply, now=now)
    if refresh:
        ids = sorted({*new_ids, *touched})
        if ids:
            sla.refresh(session, ids, now=now, settings=settings)
    # TEMPORARY (automations): the pipeline's single call site replaces this.
    from deskctl.services import automations

    automations.on_arrivals(session, [
        automations.Arrival(real(ref), mid, ("created",) if isinstance(ref, tuple) else
                            ("message_in", "reopened") if touched.get(ref, {}).get("reopened") else ("message_in",),
                            CHANNEL, p.subject, p.text, p.sender, p.headers)
        for (_, p, ref), mid in zip(to_store, message_ids, strict=True)], now=now, settings=settings)
    return rejected


def _sent_at(date: datetime | None) -> datetime | None:
    """The Date header as stored (UTC), or None when it names no storable moment."""
    if date is None:
        return None
    try:
        return date.astimezone(UTC)
    except (OverflowError, ValueError):
        return None


def _contacts(conn, parsed: list[ParsedEmail], *, now: datetime) -> dict[str, int]:
    """Contact id per sender address; new ones created in one INSERT, and a known
    contact without a name gets the display name."""
    names: dict[str, str] = {}
    for p in parsed:
        if not names.get(p.sender):
            names[p.sender] = p.sender_name
    found: dict[str, int] = {}
    unnamed = []
    if not names:
        return found
    for email, cid, name in conn.execute(_SELECT_NAMED_CONTACTS, {"emails": sorted(names)}):
        found[email] = cid
        if not name and names.get(email):
            unnamed.append({"b_id": cid, "b_name": names[email]})
    if unnamed:
        conn.execute(_NAME_CONTACT, unnamed)
    missing = [address for address in names if address not in found]
    if missing:
        rows = [{"name": names[a], "email": a, "phone": None, "account_id": None, "vip": False, "attributes": {},
                 "created_at": now} for a in missing]
        for address, cid in zip(missing, insert_ids(conn, _CONTACT, rows), strict=True):
            found[address] = cid
    return found
