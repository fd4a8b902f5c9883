"""Messages and threading rules (SPEC §1, §4, §9, §13).

`add_outbound`: an agent replied; it sets first response, stamps the timestamps the SLA
engine and reports read, and records an event. Inbound messages (the contact wrote) all
go through `pipeline.store`, which applies the rules below:
- `Router`: where a new inbound message for a conversation goes. A merged duplicate
  sends it on to the conversation it was merged into; a closed conversation to the
  follow-up a first reply already opened; else a closed one gets a new follow-up.
- `ancestors` and `store_references`: the Message-IDs an email descends from, kept in
  `message_references` so that replies to a parent the desk never saw thread together.
- `body_sha256` and `redelivery_problem`: an external id already stored is a re-delivery
  only when the sender and the content match; anything else is a different message.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, func, insert, select

from deskctl.models import Conversation, Event, Message, MessageReference
from deskctl.models.message import MAX_REFERENCE
from deskctl.services.conversations import events
from deskctl.services.sla import deadlines as sla

# The parent and its most recent ancestors are enough to thread; a References header of
# hundreds of ids must not become hundreds of query parameters or stored rows.
MAX_ANCESTORS = 40
# A chain of merges and follow-ups longer than this is followed no further (a guard
# against a cycle made by hand in the database, not a limit met in practice).
MAX_HOPS = 20
_MSGID = re.compile(r"<([^<>\s]+)>")
# Where a message of a batch goes: a stored conversation's id, or ("new", n) for the n-th
# conversation the batch creates.
Ref = int | tuple[str, int]


def add_outbound(session, conversation: Conversation, *, now: datetime, settings, author_user_id: int,
                 actor: str, text: str, html: str | None = None, external_id: str | None = None,
                 subject: str | None = None, in_reply_to: str | None = None, references: str | None = None,
                 cc=None, bcc=None) -> Message:
    message = Message(
        conversation_id=conversation.id, direction="outbound", author_user_id=author_user_id,
        channel=conversation.channel, subject=subject, text=text, html=html, external_id=external_id,
        in_reply_to=in_reply_to, references=references, cc=list(cc or []), bcc=list(bcc or []), created_at=now,
    )
    session.add(message)
    if conversation.first_response_at is None:
        conversation.first_response_at = now
    conversation.last_outbound_at = now
    conversation.updated_at = now
    session.flush()
    if in_reply_to or references:
        # Our replies are part of the thread: a contact's answer naming only what our
        # reply named still finds this conversation.
        store_references(session.connection(),
                         [(message.id, ancestors(in_reply_to, reference_ids(references), external_id))])
    events.record(session, conversation_id=conversation.id, actor=actor, kind="message_out", at=now,
                  data={"message_id": message.id})
    sla.refresh(session, [conversation.id], now=now, settings=settings)
    return message


# -- where a message goes: merges and follow-ups ----------------------------------------------
_CONV = Conversation.__table__
_EVENT = Event.__table__


@dataclass
class Destination:
    id: int
    status: str
    group_id: int | None


def destinations(conn, conversation_ids: Iterable[int]) -> dict[int, Destination]:
    """For each existing conversation id: the conversation a new inbound message for it
    belongs to. A closed conversation that was merged (and not reopened since) leads to
    the one it was merged into; another closed one to its newest follow-up (a
    conversation linked to it that is not a duplicate merged into it); followed until an
    open one, or a closed one with neither. Unknown ids are left out."""
    wanted = set(conversation_ids)
    info = _states(conn, wanted)
    step: dict[int, int] = {}
    frontier = {cid for cid, d in info.items() if d.status == "closed"}
    expanded: set[int] = set()
    for _ in range(MAX_HOPS):
        if not frontier:
            break
        expanded |= frontier
        found = _merged_into(conn, frontier)
        found.update(_followups(conn, frontier - found.keys()))
        info.update(_states(conn, set(found.values()) - info.keys()))
        found = {src: dst for src, dst in found.items() if dst in info}
        step.update(found)
        frontier = {dst for dst in found.values() if info[dst].status == "closed"} - expanded
    out = {}
    for cid in wanted & info.keys():
        current, seen = cid, {cid}
        while current in step and step[current] not in seen:
            current = step[current]
            seen.add(current)
        out[cid] = info[current]
    return out


def _states(conn, ids: set[int]) -> dict[int, Destination]:
    if not ids:
        return {}
    return {cid: Destination(cid, status, group_id) for cid, status, group_id in conn.execute(
        select(_CONV.c.id, _CONV.c.status, _CONV.c.group_id).where(_CONV.c.id.in_(sorted(ids))))}


def _merge_events(conn, ids: set[int]) -> list[tuple[int, str, dict]]:
    """(conversation, kind, data) of the merged and reopened events of these
    conversations, oldest first (the (conversation_id, id) index)."""
    if not ids:
        return []
    return [(cid, kind, data or {}) for cid, kind, data in conn.execute(
        select(_EVENT.c.conversation_id, _EVENT.c.kind, _EVENT.c.data)
        .where(_EVENT.c.conversation_id.in_(sorted(ids)), _EVENT.c.kind.in_(("merged", "reopened")))
        .order_by(_EVENT.c.conversation_id, _EVENT.c.id))]


def _merged_into(conn, ids: set[int]) -> dict[int, int]:
    """The survivor of each of these conversations that is a merged duplicate now:
    its last merge (`merged` with `into`) not undone by a later `reopen`."""
    into: dict[int, int] = {}
    for cid, kind, data in _merge_events(conn, ids):
        if kind == "reopened":
            into.pop(cid, None)
        elif data.get("into") is not None:
            into[cid] = int(data["into"])
    return into


def _followups(conn, closed: set[int]) -> dict[int, int]:
    """The newest follow-up of each of these closed conversations, where one exists."""
    if not closed:
        return {}
    candidates = conn.execute(select(_CONV.c.id, _CONV.c.linked_to_id)
                              .where(_CONV.c.linked_to_id.in_(sorted(closed))).order_by(_CONV.c.id)).all()
    # A duplicate merged into X is linked to X too, but it is not X's follow-up.
    merged = {(cid, int(data["into"])) for cid, kind, data in _merge_events(conn, {c for c, _ in candidates})
              if kind == "merged" and data.get("into") is not None}
    return {linked: cid for cid, linked in candidates if (cid, linked) not in merged}


class Router:
    """The one threading rule both ingests apply to a batch (SPEC §4, §7, §9).

    `target(ref)` says where a message that threads onto `ref` (an existing conversation
    id, or ("new", n) for one created earlier in the batch) goes: (ref, state) with the
    state's `status` and `group_id`, or None for an unknown id. A `closed` state means
    "open a follow-up linked to this ref" and the caller then reports it with `opened`,
    so that later messages of the batch join that follow-up as they would in a later
    batch. States are shared: a caller that reopens a conversation updates its status."""

    def __init__(self, conn, conversation_ids: Iterable[int]):
        self._destination: dict[int, int] = {}
        self.states: dict[Ref, dict] = {}
        for cid, d in destinations(conn, conversation_ids).items():
            self._destination[cid] = d.id
            self.states.setdefault(d.id, {"status": d.status, "group_id": d.group_id})
        self._followup: dict[Ref, Ref] = {}

    def target(self, ref: Ref) -> tuple[Ref, dict] | None:
        if not isinstance(ref, tuple):
            destination = self._destination.get(ref)
            if destination is None:
                return None
            ref = destination
        ref = self._followup.get(ref, ref)
        return ref, self.states[ref]

    def opened(self, closed_ref: Ref | None, new_ref: Ref, *, group_id: int | None) -> None:
        self.states[new_ref] = {"status": "new", "group_id": group_id}
        if closed_ref is not None:
            self._followup[closed_ref] = new_ref


# -- email ancestry -------------------------------------------------------------------------------
def ancestors(in_reply_to: str | None, references: Sequence[str], own_id: str | None = None) -> list[str]:
    """The Message-IDs an email names as its ancestors, most specific first: In-Reply-To,
    then References newest first; at most MAX_ANCESTORS, the last place kept for the
    thread's root (the first of References), which every reply of the thread shares."""
    out: dict[str, None] = {}
    if in_reply_to:
        out[in_reply_to] = None
    for ref in reversed(references):
        out.setdefault(ref, None)
    if own_id is not None:
        out.pop(own_id, None)
    ids = list(out)
    if len(ids) > MAX_ANCESTORS:
        root = [references[0]] if references and references[0] != own_id else []
        ids = list(dict.fromkeys(ids[:MAX_ANCESTORS - 1] + root))
    return ids


def reference_ids(value: str | None) -> list[str]:
    """The ids of a stored References (or In-Reply-To) value: `<a> <b>`, or bare ids."""
    if not value:
        return []
    return _MSGID.findall(value) or [v.strip("<>") for v in value.split() if v.strip("<>")]


def store_references(conn, rows: Iterable[tuple[int, Sequence[str]]]) -> None:
    """(message id, its ancestors) into message_references, one executemany. Ids too
    long to index are left out: they thread only as a direct parent."""
    params = [{"message_id": mid, "ref": ref} for mid, refs in rows for ref in dict.fromkeys(refs)
              if len(ref) <= MAX_REFERENCE]
    if params:
        conn.execute(insert(MessageReference.__table__), params)


_REF = MessageReference.__table__
_MSG = Message.__table__
# Built once: the newest message naming each ref (the (ref, message_id) index), then its conversation.
_NEWEST_NAMING = (select(_REF.c.ref, func.max(_REF.c.message_id).label("message_id"))
                  .where(_REF.c.ref.in_(bindparam("refs", expanding=True))).group_by(_REF.c.ref).subquery())
_SELECT_SHARING = select(_NEWEST_NAMING.c.ref, _MSG.c.conversation_id).join(
    _MSG, _MSG.c.id == _NEWEST_NAMING.c.message_id)


def sharing(conn, ids: Iterable[str]) -> dict[str, int]:
    """Message-ID → the conversation of the newest stored message that names it as an
    ancestor (a sibling or child of a message naming it too)."""
    wanted = sorted({i for i in ids if len(i) <= MAX_REFERENCE})
    if not wanted:
        return {}
    return dict(conn.execute(_SELECT_SHARING, {"refs": wanted}).all())


# -- duplicates -----------------------------------------------------------------------------------
def body_sha256(text: str | None, html: str | None, attachments: Iterable[bytes] = ()) -> str:
    """SHA-256 of a message's content: its text, its HTML and its attachments' bytes
    (length-prefixed, so no two different contents run together the same way)."""
    digest = hashlib.sha256()
    for part in (text or "", html or ""):
        data = part.encode("utf-8", "surrogatepass")
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    for data in attachments:
        digest.update(hashlib.sha256(data).digest())
    return digest.hexdigest()


@dataclass
class StoredMessage:
    """What a duplicate check needs of the message already stored under an external id."""

    conversation_id: int | None  # None: first seen earlier in the batch, not stored yet
    outbound: bool
    # Who sent it: a contact id for a stored message, the sender's address or key for
    # one earlier in the batch (compared with the same kind of value).
    sender: object
    sha256: str | None


def redelivery_problem(stored: StoredMessage, *, sender: object, sha256: str) -> str | None:
    """None when a message with an external id already stored is a re-delivery of that
    message (same sender, same content; a stored digest of NULL, from before digests were
    kept, is taken as the same), else why it is a different message. An unknown sender
    (None) is never the same one."""
    if stored.outbound:
        return "it is the id of a message the desk sent"
    if stored.sender is None or stored.sender != sender:
        return "the stored message has a different sender"
    if stored.sha256 is not None and stored.sha256 != sha256:
        return "the stored message has a different body"
    return None
