"""Writing the audit trail. One event per state change (SPEC §1).

`data` keys by kind (reports and `show --audit` read them; keep to these names):
  created            {channel, source}                 source: email|jsonl|agent|demo|merge
  message_in/_out    {message_id}
  claimed            {}
  stolen             {from_user}
  transferred        {from_user, to_user, from_group, to_group, reason, note_id}   (handles/names or null)
  released           {from_user}
  pending            {until, note}
  resolved           {until}
  closed             {status, tags, reason, csat}      status: what --status left it in
  reopened           {previous_status, cause}          cause: manual|contact_reply
  qualified          {tags_added, tags_removed, reason, priority, note}
  note_added/_edited/_deleted  {note_id, text, previous_text}
  watched/unwatched  {user}
  contact_attached   {contact_id, previous_contact_id}
  merged             {into}  (on the duplicate)  /  {from}  (on the survivor)
  boomerang_returned {previous_status, boomerang_at}
  sla_warning/sla_breached  {target, due}
  auto_closed        {after_s};  auto_unassigned {from_user, after_s}
  transcript_sent    {to}
  routed             {user}                            assign mode: given to that agent (actor system)
  offered            {user, expires_at}                offer mode (actor system)
  declined           {user}                            the offered agent refused (actor: them)
  offer_expired      {user, expired_at}                withdrawn unanswered; the agent went to rona
  automation         {rule, on, changes}               one per rule firing (actor system); changes: tag,
                                                       priority, group, assign, watch, note, reply or
                                                       reply_skipped (why RFC 3834 forbade it)
  message_out        {message_id, automatic: true}     an automatic reply (actor system)
A pending conversation's reminder is the `note` of its latest `pending` event
(`reminders`): `show` prints it, the boomerang's notification repeats it.

Every event row also carries `actor` (a user handle or "system") and `at`.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, select

from deskctl.db.idlist import id_in
from deskctl.db.planner import not_indexed
from deskctl.models import Event

SYSTEM = "system"


def record(session, *, conversation_id: int | None, actor: str, kind: str, at: datetime,
           data: dict | None = None) -> Event:
    event = Event(conversation_id=conversation_id, actor=actor, kind=kind, at=at, data=data or {})
    session.add(event)
    session.flush()
    return event


def record_many(session, rows: list[dict]) -> None:
    """Bulk insert: rows of {conversation_id, actor, kind, at, data} (one executemany)."""
    if rows:
        session.execute(insert(Event), rows)


def reminders_select(ids):
    """The `pending` events of these conversations, oldest first. Through the
    (conversation_id, id) index: on the (kind, at) one SQLite walked every `pending` event
    of the desk for each chunk (246,000 of them at 1M)."""
    return (select(Event.conversation_id, Event.data)
            .where(not_indexed(Event.kind) == "pending", id_in(Event.conversation_id, ids)).order_by(Event.id))


def reminders(session, conversation_ids) -> dict[int, str]:
    """Conversation id → the `note` of its latest `pending` event, where it has one."""
    out: dict[int, str] = {}
    ids = list(conversation_ids)
    for start in range(0, len(ids), 2000):
        rows = session.execute(reminders_select(ids[start:start + 2000])).all()
        for cid, data in rows:  # the latest wins
            note = (data or {}).get("note")
            if note:
                out[cid] = note
            else:
                out.pop(cid, None)
    return out


def created_row(conversation_id: int, *, channel: str, source: str, at: datetime,
                linked_to: int | None = None) -> dict:
    """A `created` event row for record_many (ingest, bulk creation)."""
    data: dict[str, str | int] = {"channel": channel, "source": source}
    if linked_to is not None:
        data["linked_to"] = linked_to
    return {"conversation_id": conversation_id, "actor": SYSTEM, "kind": "created", "at": at, "data": data}


def message_in_rows(conversation_id: int, *, message_id: int, external_id: str | None, at: datetime,
                    reopened_from: str | None = None) -> list[dict]:
    """Event rows for one inbound message: `message_in`, and `reopened` when the contact's
    reply brought the conversation back from `reopened_from` (pending or resolved)."""
    rows = [{"conversation_id": conversation_id, "actor": SYSTEM, "kind": "message_in", "at": at,
             "data": {"message_id": message_id, "external_id": external_id}}]
    if reopened_from:
        rows.append({"conversation_id": conversation_id, "actor": SYSTEM, "kind": "reopened", "at": at,
                     "data": {"previous_status": reopened_from, "cause": "contact_reply"}})
    return rows
