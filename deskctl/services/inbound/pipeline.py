"""The inbound pipeline: what every message a contact sends does to the desk (SPEC §4, §7, §9, §13).

`ingest email`, `ingest jsonl` and `new` (an agent's entry of what the contact said)
only parse their input into `Incoming` items; `store` does the rest for a whole batch,
in the caller's transaction, as if each item came alone and in order (a reply later in
the batch threads onto a conversation created earlier in it):

1. duplicates: an external id already stored (or earlier in the batch) is a re-delivery
   only from the same sender with the same content; another message reusing it is
   rejected, for the caller to quarantine (SPEC §13);
2. threading: mail by Message-ID (the parent or a nearer ancestor stored, else a stored
   message sharing an ancestor, else a `[#123]` subject tag); chat-like channels by
   (channel, thread). `messages.Router` sends a message for a merged conversation to
   the survivor and one for a closed conversation to a new follow-up linked to it;
3. contacts found or created, new conversations, messages, Message-ID references,
   attachments and events written set-based (one executemany each);
4. conversations that got a message: inbound timestamps, and back to `new` when the
   contact answers a pending or resolved one (`reopened`); their followers notified;
5. SLA refreshed, then the automation rules see what arrived (`automations.on_arrivals`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from sqlalchemy import and_, bindparam, case, insert, literal_column, or_, select, update

from deskctl.db.bulk import insert_ids, next_ids
from deskctl.db.types import UTCDateTime
from deskctl.models import Attachment, Contact, Conversation, Event, Group, Message
from deskctl.services import automations
from deskctl.services.conversations import events
from deskctl.services.inbound.messages import (
    Ref,
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
from deskctl.vocab import DEFAULT_PRIORITY

# A contact's message brings a conversation in these states back to `new`.
REOPENED_BY_REPLY = ("pending", "resolved")
# How an item threads: by Message-ID (mail), by (channel, thread) (chat, SMS, social,
# web), or never (an agent's entry starts its own conversation).
MAIL, CHAT, AGENT = "mail", "chat", "agent"
TAG = re.compile(r"\[#(\d{1,9})\]")
_TAG_SPACED = re.compile(r"\s*\[#\d{1,9}\]\s*")
SUBJECT_CHARS = 80

DUPLICATE = "duplicate"


@dataclass
class Incoming:
    """One inbound message, as parsed: everything `store` needs and nothing about the
    format it came in."""

    kind: str  # MAIL, CHAT or AGENT
    channel: str
    external_id: str | None  # Message-ID, or the channel's message id; None: never a duplicate
    text: str
    at: datetime  # received (created_at); never after `now`
    subject: str | None = None  # None: the conversation's subject comes from the text
    html: str | None = None
    name: str = ""
    email: str | None = None
    phone: str | None = None
    handle: str | None = None
    contact_id: int | None = None  # the contact, already known (`new`)
    conversation_id: int | None = None  # the conversation it answers, already known (threads there)
    attachments: list[tuple[str, str, bytes]] = field(default_factory=list)  # filename, type, bytes
    sent_at: datetime | None = None
    message_type: str | None = None
    url: str | None = None
    in_reply_to: str | None = None  # mail
    references: list[str] = field(default_factory=list)  # mail
    cc: list[str] = field(default_factory=list)  # mail
    thread: str | None = None  # chat
    group_id: int | None = None  # for a new conversation; None: the closed one's, or none
    priority: str | None = None  # for a new conversation; None: low
    headers: Mapping[str, str] = field(default_factory=dict)  # mail: auto-submitted, precedence, list-id
    digest: str | None = None  # body_sha256, computed when None

    @property
    def contact_key(self) -> tuple[str, object]:
        """Who sent it: the contact id, else email, else phone, else channel:handle."""
        if self.contact_id is not None:
            return ("id", self.contact_id)
        if self.email:
            return ("email", self.email)
        if self.phone:
            return ("phone", self.phone)
        return ("handle", f"{self.channel}:{self.handle}")

    @cached_property
    def candidates(self) -> list[str]:
        """Mail: the Message-IDs that may name the parent, most specific first."""
        return ancestors(self.in_reply_to, self.references, self.external_id)


@dataclass(frozen=True)
class Outcome:
    """What `store` did with one item: `created`, `appended`, `duplicate` (conversation
    id set) or `rejected` (reason set: the caller quarantines it)."""

    action: str
    conversation_id: int | None = None
    reason: str | None = None


@dataclass(frozen=True)
class Arrival:
    conversation_id: int
    message_id: int
    kinds: tuple[str, ...]          # the event kinds this message caused, subset of ("created", "message_in", "reopened")
    channel: str
    subject: str | None
    text: str
    sender: str | None              # sender email address (lower-case) or None
    headers: Mapping[str, str]      # lower-case keys "auto-submitted", "precedence", "list-id" when present (email only)


_CONV = Conversation.__table__
_MSG = Message.__table__
_CONTACT = Contact.__table__
# Statements built once: per-batch cost is then binding and executing, not building.
_SELECT_STORED = select(_MSG.c.channel, _MSG.c.external_id, _MSG.c.conversation_id, _MSG.c.direction,
                        _MSG.c.author_contact_id, _MSG.c.body_sha256).where(
    _MSG.c.channel.in_(bindparam("channels", expanding=True)),  # the (channel, external_id) index
    _MSG.c.external_id.in_(bindparam("ids", expanding=True)))
_SELECT_THREADS = select(_CONV.c.id, _CONV.c.channel, _CONV.c.thread_key).where(
    _CONV.c.channel.in_(bindparam("channels", expanding=True)),
    _CONV.c.thread_key.in_(bindparam("threads", expanding=True))).order_by(_CONV.c.id)
_SELECT_LOCATIONS = select(Group.id, Group.location_id).where(Group.id.in_(bindparam("ids", expanding=True)))
_NAME_CONTACT = update(_CONTACT).where(_CONTACT.c.id == bindparam("b_id")).values(name=bindparam("b_name"))
_INSERT_EVENTS = insert(Event.__table__)
_INSERT_ATTACHMENTS = insert(Attachment.__table__)
# Columns a message without mail headers has the same value in: rendered once in the
# INSERT instead of bound (and JSON-encoded) per row.
_PLAIN_CONSTANTS: dict[str, Any] = {"direction": "inbound", "in_reply_to": None, "references": None, "author_user_id": None,
                    "sent_at": None, "cc": literal_column("'[]'"), "bcc": literal_column("'[]'")}
_INSERT_PLAIN = insert(_MSG).values(**_PLAIN_CONSTANTS)
_INSERT_MAIL = insert(_MSG).values(direction="inbound", author_user_id=None, bcc=literal_column("'[]'"))


def store(session, items: Sequence[Incoming], *, now: datetime, settings, source: str,
          actor: str = events.SYSTEM, store_attachment=None, refresh: bool = True) -> list[Outcome]:
    """Store the items (see the module docstring) and say what became of each, in order.
    `source` goes in the `created` events; `actor` is who the events name. Never commits."""
    if not items:
        return []
    conn = session.connection()
    digests = [item.digest or body_sha256(item.text, item.html, (data for _, _, data in item.attachments))
               for item in items]
    # What the database knows: the external ids (and, for mail, the ancestors' Message-IDs),
    # the messages naming the same ancestors, the chat threads, the tagged conversations.
    mail = [item for item in items if item.kind == MAIL]
    ancestry = {c for item in mail for c in item.candidates}
    stored = _stored(conn, items, ancestry)
    verdicts = _verdicts(conn, items, digests, stored, now=now)
    fresh = [item for item, verdict in zip(items, verdicts, strict=True) if verdict is None]
    shared_ids = sharing(conn, ancestry | {item.external_id for item in mail if item.external_id}) if mail else {}
    tags = {int(t) for item in mail for t in TAG.findall(item.subject or "")}
    thread_ids = _threads(conn, [item for item in fresh if item.kind == CHAT])
    # (A stored message always has its conversation: only one earlier in the batch has None.)
    router = Router(conn, {*(m.conversation_id for m in stored.values() if m.conversation_id is not None),
                           *shared_ids.values(), *tags, *thread_ids.values(),
                           *(item.conversation_id for item in fresh if item.conversation_id)})
    contacts = _contacts(conn, fresh, now=now)

    # Plan: where each message goes; a new conversation's ref is ("new", n) until inserted,
    # and the batch's own messages and threads lead to refs too.
    known: dict[tuple[str, str | None], Ref] = {
        key: m.conversation_id for key, m in stored.items() if m.conversation_id is not None}
    shared: dict[str, Ref] = dict(shared_ids)
    threads: dict[tuple[str, str | None], Ref] = dict(thread_ids.items())
    new_convs: list[dict] = []
    touched: dict[int, dict] = {}  # existing id -> {"first": at, "last": at, "reopened": status or None}
    planned: list[tuple[Ref | None, str, str | None]] = []  # (ref, action, reason)
    for item, verdict in zip(items, verdicts, strict=True):
        if verdict == DUPLICATE:
            planned.append((known[(item.channel, item.external_id)], DUPLICATE, None))
            continue
        if verdict is not None:
            planned.append((None, "rejected", verdict))
            continue
        target = _target(item, router, known, shared, threads)
        if target is not None and target[1]["status"] != "closed":
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
        else:
            action = "created"
            linked = target[0] if target is not None else None
            group_id = item.group_id if item.group_id is not None else (
                target[1]["group_id"] if target is not None else None)
            subject = item.subject if item.subject is not None else _subject_from(item.text)
            if item.kind == MAIL and linked is not None:
                # A follow-up's tags name older conversations (the closed one, or a
                # duplicate merged into it); its own tag is added to our replies.
                subject = _TAG_SPACED.sub(" ", subject).strip()
            ref = ("new", len(new_convs))
            new_convs.append({
                "subject": subject[:998], "channel": item.channel, "status": "new",
                "priority": item.priority or DEFAULT_PRIORITY, "assignee_id": None, "group_id": group_id,
                "location_id": None, "contact_id": contacts[item.contact_key], "linked_to_id": linked,
                "thread_key": item.thread, "created_at": item.at, "updated_at": now,
                "first_inbound_at": item.at, "last_inbound_at": item.at, "sla_state": "none",
                "sla_paused_s": 0, "version": 1})
            router.opened(linked, ref, group_id=group_id)
            if item.kind == CHAT:
                threads[(item.channel, item.thread)] = ref
        if item.external_id is not None:
            known[(item.channel, item.external_id)] = ref
        if item.kind == MAIL:
            for ancestor in item.candidates:
                shared.setdefault(ancestor, ref)
        planned.append((ref, action, None))

    # Write: conversations first, then every id is known.
    new_ids = _insert_conversations(conn, new_convs)

    def real(ref: Ref) -> int:
        return new_ids[ref[1]] if isinstance(ref, tuple) else ref

    kept = [(item, digest, real(ref), ref, action)
            for item, digest, (ref, action, _) in zip(items, digests, planned, strict=True)
            if action in ("created", "appended") and ref is not None]  # these always have a ref
    message_ids = _insert_messages(conn, [(item, digest, cid) for item, digest, cid, _, _ in kept], contacts)
    store_references(conn, [(message_id, item.candidates)
                            for (item, *_), message_id in zip(kept, message_ids, strict=True) if item.kind == MAIL])
    _insert_attachments(conn, [(item, message_id) for (item, *_), message_id in zip(kept, message_ids, strict=True)],
                        settings=settings, store_attachment=store_attachment)

    event_rows = [events.created_row(cid, channel=conv["channel"], source=source, at=now,
                                     linked_to=conv["linked_to_id"])
                  for conv, cid in zip(new_convs, new_ids, strict=True)]
    arrivals: list[Arrival] = []
    first_reply: dict[int, int] = {}  # existing conversation -> its first new message
    reopened_done: set[int] = set()
    for (item, _, cid, ref, action), message_id in zip(kept, message_ids, strict=True):
        touch = touched.get(ref) if isinstance(ref, int) else None
        reopened = touch["reopened"] if touch and cid not in reopened_done else None
        if reopened:
            reopened_done.add(cid)
        if not isinstance(ref, tuple):
            first_reply.setdefault(cid, message_id)
        event_rows += events.message_in_rows(cid, message_id=message_id, external_id=item.external_id, at=now,
                                             reopened_from=reopened)
        kinds = (("created",) if action == "created" else ()) + ("message_in",) + (("reopened",) if reopened else ())
        arrivals.append(Arrival(conversation_id=cid, message_id=message_id, kinds=kinds, channel=item.channel,
                                subject=item.subject, text=item.text, sender=item.email, headers=item.headers))
    if actor != events.SYSTEM:
        for row in event_rows:
            row["actor"] = actor
    if event_rows:
        conn.execute(_INSERT_EVENTS, event_rows)

    existing = list(touched.items())
    _update_touched(conn, existing, now=now)
    notifications.notify_contact_messages(session, first_reply, now=now)
    if refresh:
        ids = sorted({*new_ids, *touched})
        if ids:
            sla.refresh(session, ids, now=now, settings=settings)
    automations.on_arrivals(session, arrivals, now=now, settings=settings)
    return [Outcome(action, real(ref) if ref is not None else None, reason) for ref, action, reason in planned]


# -- what the database knows ------------------------------------------------------------------
def _stored(conn, items: Sequence[Incoming], ancestry: set[str]) -> dict[tuple[str, str], StoredMessage]:
    """(channel, external id) → the message stored under it, for the items' ids and, for
    mail, their ancestors' Message-IDs."""
    channels = {item.channel for item in items if item.external_id is not None}
    ids = {item.external_id for item in items if item.external_id is not None} | ancestry
    if not ids:
        return {}
    return {(channel, external_id): StoredMessage(cid, direction == "outbound", contact_id, sha256)
            for channel, external_id, cid, direction, contact_id, sha256 in conn.execute(
                _SELECT_STORED, {"channels": sorted(channels), "ids": sorted(ids)})}


def _verdicts(conn, items, digests, stored, *, now) -> list[str | None]:
    """Per item: None (store it), DUPLICATE, or why it is rejected. A stored external id
    is a re-delivery only from the same sender with the same content (SPEC §13)."""
    reused = [item for item in items if (item.channel, item.external_id) in stored]
    senders = _contacts(conn, reused, now=now, create=False) if reused else {}
    verdicts: list[str | None] = []
    first_in_batch: dict[tuple[str, str], StoredMessage] = {}
    for item, digest in zip(items, digests, strict=True):
        key = (item.channel, item.external_id)
        if key in stored:
            problem = redelivery_problem(stored[key], sender=senders.get(item.contact_key), sha256=digest)
        elif key in first_in_batch:
            problem = redelivery_problem(first_in_batch[key], sender=item.contact_key, sha256=digest)
        else:
            if item.external_id is not None:
                first_in_batch[key] = StoredMessage(None, False, item.contact_key, digest)
            verdicts.append(None)
            continue
        if problem is None:
            verdict = DUPLICATE
        elif item.kind == MAIL:
            verdict = f"Message-ID <{item.external_id}> is already stored and this is a different message: {problem}"
        else:
            verdict = (f"{item.channel} message id {item.external_id!r} is already stored and this is a different "
                       f"message: {problem}")
        verdicts.append(verdict)
    return verdicts


def _threads(conn, chat: list[Incoming]) -> dict[tuple[str, str], int]:
    """(channel, thread) → its newest conversation."""
    keys = {(item.channel, item.thread) for item in chat if item.thread is not None}  # chat: never None
    threads: dict[tuple[str, str], int] = {}
    if keys:
        for cid, channel, thread_key in conn.execute(_SELECT_THREADS, {
                "channels": sorted({k[0] for k in keys}), "threads": sorted({k[1] for k in keys})}):
            if (channel, thread_key) in keys:
                threads[(channel, thread_key)] = cid
    return threads


def _target(item: Incoming, router: Router, known: Mapping[tuple[str, str | None], Ref], shared: Mapping[str, Ref],
            threads: Mapping[tuple[str, str | None], Ref]) -> tuple[Ref, dict] | None:
    """Where the item threads: (ref, state) from the router, or None for nowhere."""
    if item.conversation_id is not None:
        return router.target(item.conversation_id)
    if item.kind == MAIL:
        candidates = item.candidates
        # The parent (or a nearer ancestor) stored; else a stored message naming this one
        # as its ancestor (it came first) or sharing an ancestor with it; else the tag.
        ref = next((known[(item.channel, c)] for c in candidates if (item.channel, c) in known), None)
        if ref is None:
            ref = next((shared[c] for c in [item.external_id, *candidates] if c is not None and c in shared), None)
        target = router.target(ref) if ref is not None else None
        if target is None:
            target = next(filter(None, (router.target(int(t)) for t in TAG.findall(item.subject or ""))), None)
        return target
    if item.kind == CHAT:
        thread = threads.get((item.channel, item.thread))
        return router.target(thread) if thread is not None else None
    return None


def _subject_from(text: str) -> str:
    first = next((line.strip() for line in (text or "").splitlines() if line.strip()), "")
    return first if len(first) <= SUBJECT_CHARS else first[:SUBJECT_CHARS - 1] + "…"


# -- contacts ---------------------------------------------------------------------------------
def _contacts(conn, items: list[Incoming], *, now: datetime, create: bool = True) -> dict[tuple, int]:
    """Contact id per sender key (contact id, email, else phone, else channel:handle),
    creating the missing ones in one INSERT (with create=False, only the ones that
    exist). A known contact without a name gets the name a mail's From gives it."""
    wanted: dict[tuple, Incoming] = {}
    names: dict[tuple, str] = {}
    for item in items:
        wanted.setdefault(item.contact_key, item)
        if not names.get(item.contact_key):
            names[item.contact_key] = item.name or item.handle or ""
    found: dict[tuple, int] = {key: key[1] for key in wanted if key[0] == "id"}
    emails = sorted(k[1] for k in wanted if k[0] == "email")
    phones = sorted(k[1] for k in wanted if k[0] == "phone")
    handles = sorted(k[1] for k in wanted if k[0] == "handle")
    if emails:
        unnamed = []
        for cid, email, name in conn.execute(select(_CONTACT.c.id, _CONTACT.c.email, _CONTACT.c.name)
                                             .where(_CONTACT.c.email.in_(emails))):
            found[("email", email)] = cid
            key = ("email", email)
            if create and not name and names.get(key) and wanted[key].kind == MAIL:
                unnamed.append({"b_id": cid, "b_name": names[key]})
        if unnamed:
            conn.execute(_NAME_CONTACT, unnamed)
    if phones:
        for cid, phone in conn.execute(select(_CONTACT.c.id, _CONTACT.c.phone).where(
                and_(_CONTACT.c.phone.in_(phones), _CONTACT.c.email.is_(None))).order_by(_CONTACT.c.id.desc())):
            found[("phone", phone)] = cid
        for cid, phone in conn.execute(select(_CONTACT.c.id, _CONTACT.c.phone).where(_CONTACT.c.phone.in_(phones))
                                       .order_by(_CONTACT.c.id.desc())):
            found.setdefault(("phone", phone), cid)
    if handles:
        handle = Contact.attributes["handle"].as_string()
        for cid, value in conn.execute(select(Contact.id, handle).where(handle.in_(handles))):
            found[("handle", value)] = cid
    missing = [key for key in wanted if key not in found]
    if missing and create:
        rows = [{"name": names[key], "email": wanted[key].email, "phone": wanted[key].phone, "account_id": None,
                 "vip": False, "attributes": {"handle": key[1]} if key[0] == "handle" else {}, "created_at": now}
                for key in missing]
        for key, cid in zip(missing, insert_ids(conn, _CONTACT, rows), strict=True):
            found[key] = cid
    return found


# -- writing ----------------------------------------------------------------------------------
def _insert_conversations(conn, new_convs: list[dict]) -> list[int]:
    if not new_convs:
        return []
    groups = sorted({c["group_id"] for c in new_convs if c["group_id"] is not None})
    if groups:
        locations = dict(conn.execute(_SELECT_LOCATIONS, {"ids": groups}).all())
        for conv in new_convs:
            conv["location_id"] = locations.get(conv["group_id"])
    return insert_ids(conn, _CONV, new_convs)


def _insert_messages(conn, rows: list[tuple[Incoming, str, int]], contacts) -> list[int]:
    """The messages (item, digest, conversation id), in order; their new ids. Mail, with
    its headers, in one executemany; the others, with constants inline, in another."""
    ids = next_ids(conn, _MSG, len(rows))
    mail, plain = [], []
    for (item, digest, cid), message_id in zip(rows, ids, strict=True):
        row = {"id": message_id, "conversation_id": cid, "author_contact_id": contacts[item.contact_key],
               "author_name": item.name or item.handle or None, "channel": item.channel,
               "message_type": item.message_type, "subject": item.subject, "text": item.text, "html": item.html,
               "external_id": item.external_id, "created_at": item.at, "body_sha256": digest, "url": item.url}
        if item.kind == MAIL:
            row.update(in_reply_to=item.in_reply_to, cc=item.cc, sent_at=item.sent_at,
                       references=" ".join(f"<{r}>" for r in item.references) or None)
            mail.append(row)
        else:
            plain.append(row)
    if mail:
        conn.execute(_INSERT_MAIL, mail)
    if plain:
        conn.execute(_INSERT_PLAIN, plain)
    return ids


def _insert_attachments(conn, rows: list[tuple[Incoming, int]], *, settings, store_attachment) -> None:
    attachment_rows = []
    for item, message_id in rows:
        for name, ctype, data in item.attachments:
            if store_attachment is None:
                from deskctl.services.outbound.replies import store_attachment
            attachment_rows.append({"message_id": message_id, "filename": name, "content_type": ctype,
                                    "size": len(data), "sha256": store_attachment(settings, data)})
    if attachment_rows:
        conn.execute(_INSERT_ATTACHMENTS, attachment_rows)


def _update_touched(conn, existing: list[tuple[int, dict]], *, now: datetime) -> None:
    """Existing conversations that got inbound messages: (id, {first, last, reopened}).
    Inbound timestamps widened, updated_at and version bumped (one executemany), and
    the reopened ones back to `new` without boomerang (one UPDATE)."""
    if not existing:
        return
    at_first = bindparam("b_first", type_=UTCDateTime())
    at_last = bindparam("b_last", type_=UTCDateTime())
    conn.execute(
        update(_CONV).where(_CONV.c.id == bindparam("b_id")).values(
            first_inbound_at=case((or_(_CONV.c.first_inbound_at.is_(None),
                                       _CONV.c.first_inbound_at > at_first), at_first),
                                  else_=_CONV.c.first_inbound_at),
            last_inbound_at=case((or_(_CONV.c.last_inbound_at.is_(None),
                                      _CONV.c.last_inbound_at < at_last), at_last),
                                 else_=_CONV.c.last_inbound_at),
            updated_at=bindparam("b_now", type_=UTCDateTime()),
            version=_CONV.c.version + 1),
        [{"b_id": ref, "b_first": s["first"], "b_last": s["last"], "b_now": now} for ref, s in existing])
    reopened = sorted(ref for ref, s in existing if s["reopened"])
    if reopened:
        conn.execute(update(_CONV).where(_CONV.c.id.in_(reopened))
                     .values(status="new", boomerang_at=None, pending_since=None))
