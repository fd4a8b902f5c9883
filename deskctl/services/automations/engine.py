"""Automations (SPEC §11): rules with `on`, `if`, `then` and `stop`, run in order inside
the transaction that stores the event they react to.

Entry points:
- `on_arrivals(session, arrivals, now=, settings=)`: the inbound pipeline, at the end of
  storing a batch (email, JSON lines, `new`); kinds `created`, `message_in`, `reopened`;
- `on_events(session, kind, conversation_ids, now=, settings=)`: `sla_warning` and
  `sla_breached` (the SLA sweep's announce step), `closed` (the `close` verb, auto-close).

Set-based over a batch: the conversations are read with one query; each rule, in order,
selects the conversations whose trigger and conditions hold (in Python, on the state as
the earlier rules left it) and applies each action with one statement (per chunk) for
all of them; one `automation` event per firing (rule and changes) goes in with one
executemany at the end, and the SLA of the changed conversations is refreshed once.

Groups, users and templates live in the database: the rules' names are checked against
it when the rules are first used in a transaction (and by `automation list`); an unknown
name is a configuration error (78) naming the rule.

Automatic replies follow RFC 3834: never to a message with `Auto-Submitted` other than
`no`, `Precedence: bulk|junk|list`, a `List-Id`, or from the desk's own addresses
(smtp.from and the users' emails); at most one per contact per
`automation_reply_interval`, counted from the stored automatic replies (outbound
messages with message_type `automatic`; see `_recently_answered`). The mail carries
`Auto-Submitted: auto-replied`. An automatic reply is not a response for the SLA: the
first/next response clocks keep running until an agent answers.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parseaddr
from typing import Any

from sqlalchemy import func, insert, select, update

from deskctl.db.bulk import chunks, insert_ids
from deskctl.errors import ConfigError
from deskctl.models import Contact, Conversation, Group, Message, Note, NoteVersion, Template, User
from deskctl.services.conversations import events

C = Conversation
ARRIVAL_KINDS = ("created", "message_in", "reopened")
EVENT_KINDS = ("sla_warning", "sla_breached", "closed")
AUTOMATIC = "automatic"  # messages.message_type of an automatic reply
# Session.info key: a list there collects every firing ({rule, id, on, changes}): what
# `automation test` prints.
FIRINGS = "deskctl.automations.firings"
_DIRECTORY = "deskctl.automations.directory"
_NO_LOOP_PRECEDENCE = ("bulk", "junk", "list")


@dataclass(slots=True)
class _Case:
    """One conversation under evaluation: what triggered it and its current state."""

    id: int
    kinds: set[str]
    channel: str
    subject: str
    status: str
    priority: str
    assignee_id: int | None
    group_id: int | None
    contact_id: int | None
    vip: bool
    contact_email: str | None
    contact_name: str | None
    text: str | None = None
    sender: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    message_id: int | None = None
    stopped: bool = False


@dataclass
class _Directory:
    groups: dict[str, tuple[int, int | None]]       # name -> (id, location id)
    users: dict[str, tuple[int, str, str | None]]  # handle -> (id, name, email)
    templates: dict[str, str]                      # team template name -> body
    group_names: dict[int, str]


def load_directory(session, settings) -> _Directory:
    """The names the rules use, resolved against the database; every unknown group,
    user or team template is a configuration error (78) naming its rule."""
    cached = session.info.get(_DIRECTORY)
    if cached is not None and cached[0] is settings:
        return cached[1]
    groups = {name: (gid, loc) for gid, name, loc in session.execute(select(Group.id, Group.name, Group.location_id))}
    wanted_users = {h for rule in settings.automations for h in (*rule.actions.get("watch", ()),
                                                                  rule.actions.get("assign"))
                    if h is not None}
    users = {handle: (uid, name, email) for uid, handle, name, email in session.execute(
        select(User.id, User.handle, User.name, User.email)
        .where(User.handle.in_(sorted(wanted_users)), User.active.is_(True)))} if wanted_users else {}
    wanted_templates = {rule.actions["reply"] for rule in settings.automations if "reply" in rule.actions}
    templates = dict(session.execute(select(Template.name, Template.body).where(
        Template.name.in_(sorted(wanted_templates)), Template.owner_id.is_(None))).all()) if wanted_templates else {}
    problems: list[ConfigError] = []

    def problem(rule, key: str, text: str) -> None:
        problems.append(ConfigError(settings.source, f"{rule.key}.{key}", f"rule {rule.name!r}: {text}"))

    for rule in settings.automations:
        for name in rule.conditions.get("group", ()):
            if name not in groups:
                problem(rule, "if.group", f"unknown group {name!r}")
        if "group" in rule.actions and rule.actions["group"] not in groups:
            problem(rule, "then.group", f"unknown group {rule.actions['group']!r}")
        if rule.actions.get("assign") is not None and rule.actions["assign"] not in users:
            problem(rule, "then.assign", f"unknown or deactivated user {rule.actions['assign']!r}")
        for handle in rule.actions.get("watch", ()):
            if handle not in users:
                problem(rule, "then.watch", f"unknown or deactivated user {handle!r}")
        if "reply" in rule.actions and rule.actions["reply"] not in templates:
            problem(rule, "then.reply", f"unknown team template {rule.actions['reply']!r} "
                                        "(deskctl template add NAME BODY)")
    if problems:
        raise problems[0] if len(problems) == 1 else ConfigError.several(problems)
    directory = _Directory(groups, users, templates, {gid: name for name, (gid, _) in groups.items()})
    session.info[_DIRECTORY] = (settings, directory)
    return directory


def rule_record(rule) -> dict:
    """A rule as `automation list` prints it: conditions and actions as written."""
    conditions = {}
    for cond, value in rule.conditions.items():
        if cond in ("subject", "text"):
            value = value.pattern
        elif cond == "hours":
            value = {value[0]: value[1]}
        elif isinstance(value, tuple):
            value = list(value)
        conditions[cond] = value
    actions = {k: list(v) if isinstance(v, tuple) else v for k, v in rule.actions.items()}
    return {"position": rule.index + 1, "name": rule.name, "on": list(rule.on), "if": conditions,
            "then": actions, "stop": rule.stop}


# -- entry points ------------------------------------------------------------------------

def on_arrivals(session, arrivals: Sequence, *, now: datetime, settings) -> list[dict]:
    """Run the rules for messages just stored: `arrivals` are the inbound pipeline's
    `Arrival`s (conversation_id, message_id, kinds, channel, subject, text, sender,
    headers). Returns the firings."""
    if not settings.automations or not arrivals:
        return []
    wanted = {kind for rule in settings.automations for kind in rule.on}
    relevant = [a for a in arrivals if wanted.intersection(a.kinds)]
    if not relevant:
        return []
    by_conversation: dict[int, Any] = {}
    kinds: dict[int, set[str]] = {}
    for arrival in relevant:  # several messages to one conversation: it is evaluated once, on the last
        by_conversation[arrival.conversation_id] = arrival
        kinds.setdefault(arrival.conversation_id, set()).update(arrival.kinds)
    cases = _load_cases(session, list(by_conversation))
    for case in cases:
        arrival = by_conversation[case.id]
        case.kinds = kinds[case.id]
        case.text = arrival.text
        case.sender = (arrival.sender or "").lower() or None
        case.headers = {k.lower(): v for k, v in (arrival.headers or {}).items()}
        case.message_id = arrival.message_id
    return _run(session, cases, now=now, settings=settings)


def on_events(session, kind: str, conversation_ids: Iterable[int], *, now: datetime, settings) -> list[dict]:
    """Run the rules for `sla_warning`, `sla_breached` or `closed` on these conversations."""
    if not settings.automations or kind not in EVENT_KINDS:
        return []
    if not any(kind in rule.on for rule in settings.automations):
        return []
    ids = list(dict.fromkeys(conversation_ids))
    if not ids:
        return []
    cases = _load_cases(session, ids)
    needs_text = any("text" in rule.conditions for rule in settings.automations if kind in rule.on)
    texts = _last_inbound_texts(session, ids) if needs_text else {}
    for case in cases:
        case.kinds = {kind}
        case.text = texts.get(case.id)
        case.sender = case.contact_email
    return _run(session, cases, now=now, settings=settings)


# -- evaluation --------------------------------------------------------------------------

def _load_cases(session, ids: list[int]) -> list[_Case]:
    out = []
    stmt = (select(C.id, C.channel, C.subject, C.status, C.priority, C.assignee_id, C.group_id, C.contact_id,
                   Contact.vip, Contact.email, Contact.name)
            .outerjoin(Contact, Contact.id == C.contact_id))
    conn = session.connection()
    for chunk in chunks(ids):
        for row in conn.execute(stmt.where(C.id.in_(chunk))):
            out.append(_Case(id=row[0], kinds=set(), channel=row[1], subject=row[2] or "", status=row[3],
                             priority=row[4], assignee_id=row[5], group_id=row[6], contact_id=row[7],
                             vip=bool(row[8]), contact_email=row[9], contact_name=row[10]))
    out.sort(key=lambda c: c.id)
    return out


def _last_inbound_texts(session, ids: list[int]) -> dict[int, str]:
    out: dict[int, str] = {}
    for chunk in chunks(ids):
        last = (select(func.max(Message.id)).where(Message.conversation_id.in_(chunk),
                                                   Message.direction == "inbound")
                .group_by(Message.conversation_id))
        out.update(session.execute(select(Message.conversation_id, Message.text).where(Message.id.in_(last))).all())
    return out


# Cheap tests first: each narrows the list the next one scans.
_ORDER = {"channel": 0, "vip": 1, "group": 2, "from": 3, "subject": 4, "text": 5}


def _matching(rule, cases: list[_Case], directory: _Directory, now: datetime, settings) -> list[_Case]:
    """The cases the rule fires on: triggered by one of its events, not stopped, every
    condition holding. One pass over the list per condition (no per-case call chain:
    this runs for every rule over every conversation of a batch)."""
    if "hours" in rule.conditions:  # the same for the whole batch
        from deskctl.services.sla.business_hours import calendar_for

        mode, calendar = rule.conditions["hours"]
        if calendar_for(settings, calendar).is_open(now) != (mode == "inside"):
            return []
    on = set(rule.on)
    matched = [c for c in cases if not c.stopped and not on.isdisjoint(c.kinds)]
    for cond in sorted((c for c in rule.conditions if c != "hours"), key=_ORDER.__getitem__):
        if not matched:
            break
        value = rule.conditions[cond]
        if cond == "channel":
            matched = [c for c in matched if c.channel in value]
        elif cond == "vip":
            matched = [c for c in matched if c.vip == value]
        elif cond == "group":
            ids = {directory.groups[name][0] for name in value}
            matched = [c for c in matched if c.group_id in ids]
        elif cond == "from":
            matched = [c for c in matched if c.sender is not None and fnmatch.fnmatchcase(c.sender, value)]
        elif cond == "subject":
            search = value.search
            matched = [c for c in matched if search(c.subject) is not None]
        else:  # text
            search = value.search
            matched = [c for c in matched if search(c.text or "") is not None]
    return matched


# Conversation columns each action writes (what the SLA may depend on).
_COLUMNS = {"priority": ("priority",), "group": ("group_id", "location_id", "status", "assignee_id"),
            "assign": ("assignee_id", "status")}


def _run(session, cases: list[_Case], *, now: datetime, settings) -> list[dict]:
    from deskctl.services.conversations.lifecycle import _insert_events

    directory = load_directory(session, settings)
    firings: list[dict] = []
    initial = {case.id: case.status for case in cases}
    changed: set[int] = set()
    columns: set[str] = set()
    for rule in settings.automations:
        matched = _matching(rule, cases, directory, now, settings)
        if not matched:
            continue
        on = set(rule.on)
        triggers: dict[frozenset, list[str]] = {}
        changes: dict[int, dict] = {case.id: {} for case in matched}
        _apply(session, rule, matched, changes, directory, now=now, settings=settings)
        for action, written in _COLUMNS.items():
            if action in rule.actions:
                done = [cid for cid, change in changes.items() if action in change]
                if done:
                    changed.update(done)
                    columns.update(written)
        for case in matched:
            if rule.stop:
                case.stopped = True
            kinds = frozenset(case.kinds)
            if kinds not in triggers:
                triggers[kinds] = sorted(on.intersection(kinds))
            firings.append({"rule": rule.name, "id": case.id, "on": triggers[kinds], "changes": changes[case.id]})
    if not firings:
        return firings
    _insert_events(session, events.SYSTEM, now, [
        (f["id"], "automation", {"rule": f["rule"], "on": f["on"], "changes": f["changes"]}) for f in firings])
    if changed:
        from deskctl.services.sla import deadlines as sla

        by_id = {case.id: case for case in cases}
        sla.after_change(session, [(cid, initial[cid], by_id[cid].status) for cid in sorted(changed)],
                         frozenset(columns), now=now, settings=settings)
    fired = {f["id"] for f in firings}
    for obj in list(session.identity_map.values()):  # Core wrote under the ORM's feet
        if isinstance(obj, Conversation) and obj.id in fired:
            session.expire(obj)
    collected = session.info.get(FIRINGS)
    if collected is not None:
        collected.extend(firings)
    return firings


# -- actions -----------------------------------------------------------------------------

def _update(session, ids: list[int], values: dict, now: datetime) -> None:
    """One UPDATE per chunk; the version moves like any other change of state."""
    table = C.__table__
    for chunk in chunks(sorted(ids)):
        session.connection().execute(table.update().where(table.c.id.in_(chunk))
                                     .values(**values, updated_at=now, version=table.c.version + 1))


def _apply(session, rule, matched: list[_Case], changes: dict[int, dict], directory: _Directory, *,
           now: datetime, settings) -> None:
    from deskctl.services.conversations.lifecycle import _add_tags, _add_watchers, transfer_values

    actions = rule.actions
    if "priority" in actions:
        priority = actions["priority"]
        todo = [c for c in matched if c.priority != priority]
        _update(session, [c.id for c in todo], {"priority": priority}, now)
        for case in todo:
            case.priority = priority
            changes[case.id]["priority"] = priority
    if "group" in actions:
        name = actions["group"]
        gid, location_id = directory.groups[name]
        todo = [c for c in matched if c.group_id != gid]
        open_ = [c.id for c in todo if c.status != "closed"]
        closed = [c.id for c in todo if c.status == "closed"]  # qualification only: it stays closed
        _update(session, open_, transfer_values(None, gid, location_id), now)
        _update(session, closed, {"group_id": gid, **({"location_id": location_id} if location_id else {})}, now)
        for case in todo:
            case.group_id = gid
            if case.status != "closed":
                case.status, case.assignee_id = "new", None
            changes[case.id]["group"] = name
    if "assign" in actions:
        handle = actions["assign"]
        uid = directory.users[handle][0] if handle is not None else None
        todo = [c for c in matched if c.assignee_id != uid and c.status != "closed"]
        _update(session, [c.id for c in todo], transfer_values(uid), now)
        for case in todo:
            case.status, case.assignee_id = "new", uid
            changes[case.id]["assign"] = handle
        if uid is not None and todo:
            _notify_assignee(session, rule, todo, uid, handle, directory, now=now)
    ids = [c.id for c in matched]
    if "tag" in actions:
        _add_tags(session, ids, actions["tag"])
        for cid in ids:
            changes[cid]["tag"] = list(actions["tag"])
    for handle in actions.get("watch", ()):
        _add_watchers(session, ids, directory.users[handle][0], now)
        for cid in ids:
            changes[cid].setdefault("watch", []).append(handle)
    if "note" in actions:
        _add_notes(session, ids, actions["note"], now=now)
        for cid in ids:
            changes[cid]["note"] = actions["note"]
    if "reply" in actions:
        _reply(session, rule, matched, changes, directory, now=now, settings=settings)


def _notify_assignee(session, rule, cases: list[_Case], uid: int, handle: str, directory: _Directory, *,
                     now: datetime) -> None:
    from deskctl.services.outbound import notifications

    _, _, email = directory.users[handle]
    notifications.insert_outbox(session, [{
        "kind": "notification", "dedupe_key": f"automation:{rule.name}:{case.id}:{now.isoformat()}:user:{uid}",
        "conversation_id": case.id, "user_id": uid, "recipient": email or handle,
        "subject": f"[#{case.id}] assigned to you by automation {rule.name}: {case.subject}"[:998],
        "body": f"Conversation #{case.id} ({case.subject}) was assigned to you by the automation {rule.name}.",
        "status": "queued", "attempts": 0, "next_attempt_at": now, "created_at": now} for case in cases])


def _add_notes(session, ids: list[int], text: str, *, now: datetime) -> None:
    """A note by no one (the automation) on each conversation, with its first version and
    its `note_added` event, as services/conversations/notes.py keeps them."""
    for chunk in chunks(ids):
        rows = [{"conversation_id": cid, "author_id": None, "text": text, "created_at": now, "updated_at": now}
                for cid in chunk]
        note_ids = session.scalars(insert(Note).returning(Note.id, sort_by_parameter_order=True), rows).all()
        session.execute(insert(NoteVersion), [{"note_id": nid, "version": 1, "text": text, "author_id": None,
                                               "at": now} for nid in note_ids])
        events.record_many(session, [{"conversation_id": cid, "actor": events.SYSTEM, "kind": "note_added",
                                      "at": now, "data": {"note_id": nid, "text": text, "previous_text": None}}
                                     for cid, nid in zip(chunk, note_ids, strict=True)])


# -- automatic replies (RFC 3834) -----------------------------------------------------------

def loop_reason(headers: Mapping[str, str], sender: str | None, own: set[str]) -> str | None:
    """Why a message must not get an automatic answer (RFC 3834 §2), or None."""
    submitted = (headers.get("auto-submitted") or "").split(";")[0].strip().lower()
    if submitted and submitted != "no":
        return f"Auto-Submitted: {submitted}"
    precedence = (headers.get("precedence") or "").strip().lower()
    if precedence in _NO_LOOP_PRECEDENCE:
        return f"Precedence: {precedence}"
    if (headers.get("list-id") or "").strip():
        return "List-Id"
    if sender and sender.lower() in own:
        return "from the desk's own address"
    return None


def own_addresses(session, settings) -> set[str]:
    """smtp.from and every user's email, lower case."""
    own = {parseaddr(settings.smtp.sender)[1].lower()}
    own.update(e.lower() for e in session.scalars(select(User.email).where(User.email.is_not(None))))
    return own - {""}


def _recently_answered(session, contact_ids: list[int], since: datetime) -> set[int]:
    """Contacts that got an automatic reply after `since` (the reply interval)."""
    out: set[int] = set()
    for chunk in chunks(contact_ids):
        out.update(session.scalars(
            select(C.contact_id).join(Message, Message.conversation_id == C.id)
            .where(C.contact_id.in_(chunk), Message.direction == "outbound", Message.message_type == AUTOMATIC,
                   Message.created_at > since).distinct()))
    return out


def _reply(session, rule, matched: list[_Case], changes: dict[int, dict], directory: _Directory, *,
           now: datetime, settings) -> None:
    from deskctl.services.addresses import is_address
    from deskctl.services.inbound.messages import ancestors, store_references
    from deskctl.services.outbound import notifications, templates
    from deskctl.services.outbound.replies import (
        _references_of,
        build_email,
        contact_address,
        new_message_id,
        tagged_subject,
        to_bytes,
    )

    name = rule.actions["reply"]
    own = own_addresses(session, settings)
    recent = _recently_answered(session, sorted({c.contact_id for c in matched if c.contact_id}),
                                now - settings.automation_reply_interval)
    todo: list[_Case] = []
    for case in matched:
        why = None
        if case.status == "closed":
            why = "closed"
        elif case.contact_id is None:
            why = "no contact"
        elif case.channel == "email" and not (case.contact_email and is_address(case.contact_email)):
            why = "the contact has no valid email address"
        else:
            why = loop_reason(case.headers, case.sender, own)
            if why is None and case.contact_id in recent:
                why = "answered automatically within automation_reply_interval"
        if why is None and case.contact_id is not None:
            recent.add(case.contact_id)  # one per contact, also within this batch
            todo.append(case)
            changes[case.id]["reply"] = name
        else:
            changes[case.id]["reply_skipped"] = why
    if not todo:
        return
    parents = _parents(session, todo)
    body = directory.templates[name]
    agents = {uid: (handle, uname) for handle, (uid, uname, _) in directory.users.items()}
    missing = {c.assignee_id for c in todo if c.assignee_id is not None and c.assignee_id not in agents}
    if missing:
        agents.update({uid: (h, n) for uid, h, n in session.execute(
            select(User.id, User.handle, User.name).where(User.id.in_(missing)))})
    message_rows: list[dict] = []
    outbox_rows: list[dict] = []
    references: list[list[str]] = []
    for case in todo:
        agent_handle, agent_name = agents.get(case.assignee_id, ("", "")) if case.assignee_id else ("", "")
        text = templates.render(body, {
            "contact.name": case.contact_name or case.contact_email or "", "contact.email": case.contact_email or "",
            "agent.name": agent_name or agent_handle, "agent.handle": agent_handle,
            "conversation.id": case.id, "conversation.subject": case.subject})
        subject = tagged_subject(case.id, case.subject, "Re: ")
        external_id = in_reply_to = None
        refs: list[str] = []
        if case.channel == "email":
            external_id = new_message_id(settings)
            parent = parents.get(case.id)
            if parent is not None and parent.external_id:
                in_reply_to = parent.external_id
                refs = _references_of(parent)
            key = f"email:{external_id}"
            contact = Contact(name=case.contact_name, email=case.contact_email)  # transient: for the To header
            raw = to_bytes(build_email(settings, message_id=external_id, to=contact_address(contact),
                                       subject=subject, text=text, now=now, dedupe_key=key,
                                       in_reply_to=in_reply_to, references=refs, automatic="auto-replied"))
            outbox_rows.append({"kind": "email", "dedupe_key": key, "conversation_id": case.id, "user_id": None,
                                "recipient": case.contact_email, "subject": subject, "body": text, "raw": raw,
                                "status": "queued", "attempts": 0, "next_attempt_at": now, "created_at": now})
        references.append(ancestors(in_reply_to, refs, external_id) if refs or in_reply_to else [])
        message_rows.append({
            "conversation_id": case.id, "direction": "outbound", "author_user_id": None, "author_contact_id": None,
            "author_name": events.SYSTEM, "channel": case.channel, "message_type": AUTOMATIC, "url": None,
            "subject": subject, "text": text, "html": None, "external_id": external_id, "in_reply_to": in_reply_to,
            "references": " ".join(f"<{r}>" for r in refs) or None, "cc": [], "bcc": [], "created_at": now,
            "sent_at": None, "body_sha256": None})
    conn = session.connection()
    message_ids = insert_ids(conn, Message.__table__, message_rows)
    store_references(conn, [(mid, refs) for mid, refs in zip(message_ids, references, strict=True) if refs])
    events.record_many(session, [{"conversation_id": case.id, "actor": events.SYSTEM, "kind": "message_out",
                                  "at": now, "data": {"message_id": mid, "automatic": True}}
                                 for case, mid in zip(todo, message_ids, strict=True)])
    notifications.insert_outbox(session, outbox_rows)
    # Activity, not a response: the SLA's response clocks keep running (module docstring).
    table = C.__table__
    for chunk in chunks([c.id for c in todo]):
        conn.execute(update(table).where(table.c.id.in_(chunk)).values(updated_at=now))


def _parents(session, cases: list[_Case]):
    """The message each automatic reply answers: the arrival's message, else the latest
    inbound one of the conversation."""
    by_message = {c.message_id: c.id for c in cases if c.message_id is not None}
    without = [c.id for c in cases if c.message_id is None]
    cols = (Message.id, Message.conversation_id, Message.external_id, Message.references, Message.in_reply_to)
    out = {}
    for chunk in chunks(list(by_message)):
        for row in session.execute(select(*cols).where(Message.id.in_(chunk))):
            out[by_message[row.id]] = row
    for chunk in chunks(without):
        last = (select(func.max(Message.id)).where(Message.conversation_id.in_(chunk),
                                                   Message.direction == "inbound")
                .group_by(Message.conversation_id))
        for row in session.execute(select(*cols).where(Message.id.in_(last))):
            out[row.conversation_id] = row
    return out
