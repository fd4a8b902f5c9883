"""Contacts (the customers) and attaching a conversation to one (SPEC §1, §2).

A contact REF is a contact id (`42` or `#42`) or an email address (matched
case-insensitively: emails are stored lower-cased). Where a REF names a contact that
must exist (`show`, `set`) an unknown one is exit 3; where a conversation needs a
contact (`attach`, `new`) an unknown email creates the contact.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from datetime import datetime

from sqlalchemy import func, or_, select

from deskctl.db.dml import dialect_insert
from deskctl.errors import Conflict, NotFound, UsageError
from deskctl.models import Contact, Conversation
from deskctl.services.actor import Actor
from deskctl.services.conversations import events, permissions
from deskctl.services.conversations.selection import MAX_ID
from deskctl.services.sla import deadlines as sla

_ID = re.compile(r"^#?(\d{1,18})$")
_ATTR_KEY = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
BATCH = 1000


def normalize_email(value: str, what: str = "the contact", *, option: str | None = None) -> str:
    from deskctl.services.addresses import check_address

    return check_address(value, what, option=option).lower()


def parse_attrs(values: Sequence[str]) -> dict[str, str | None]:
    """`--attr key=value` pairs; `key=` (empty value) means remove the attribute."""
    attrs: dict[str, str | None] = {}
    for raw in values or ():
        key, sep, value = raw.partition("=")
        key = key.strip()
        if not sep or not _ATTR_KEY.match(key):
            raise UsageError(f"invalid attribute {raw!r}: expected key=value (key: letters, digits, _ . : -)",
                             option="attrs")
        attrs[key] = value if value != "" else None
    return attrs


def _conversation_count():
    return (
        select(func.count(Conversation.id))
        .where(Conversation.contact_id == Contact.id)
        .correlate(Contact)
        .scalar_subquery()
        .label("conversations")
    )


def contact_record(contact: Contact, conversations: int | None = None) -> dict:
    return {
        "id": contact.id, "name": contact.name, "email": contact.email, "phone": contact.phone,
        "account_id": contact.account_id, "vip": bool(contact.vip),
        "attributes": dict(contact.attributes or {}), "created_at": contact.created_at,
        "conversations": conversations,
    }


def record_for(session, contact: Contact) -> dict:
    count = session.scalar(select(func.count(Conversation.id)).where(Conversation.contact_id == contact.id))
    return contact_record(contact, count or 0)


def find_contact(session, ref: str) -> Contact | None:
    """The contact a REF names, or None; a REF that is neither an id nor an email is exit 2."""
    text = (ref or "").strip()
    match = _ID.match(text)
    if match:
        contact_id = int(match.group(1))
        # Past the id column's range (int4 on PostgreSQL) no contact can exist.
        return session.get(Contact, contact_id) if contact_id <= MAX_ID else None
    if "@" in text:
        return session.scalar(select(Contact).where(Contact.email == normalize_email(text, "the contact reference", option="contact")))
    raise UsageError(f"invalid contact reference {ref!r}: give a contact id or an email address")


def get_contact(session, ref: str) -> Contact:
    contact = find_contact(session, ref)
    if contact is None:
        raise NotFound(f"contact not found: {ref}")
    return contact


def resolve_or_create(session, ref: str, *, now: datetime, name: str | None = None) -> tuple[Contact, bool]:
    """The contact REF names; an unknown email creates it. Returns (contact, created)."""
    contact = find_contact(session, ref)
    if contact is not None:
        return contact, False
    if _ID.match((ref or "").strip()):
        raise NotFound(f"contact not found: {ref}")
    email = normalize_email(ref, "the contact reference", option="contact")
    # ON CONFLICT DO NOTHING: when another command creates the same address at the same
    # moment, use its contact instead of failing on the unique email.
    table = Contact.__table__
    new_id = session.scalar(
        dialect_insert(session)(table).values(name=name or email.partition("@")[0], email=email, vip=False, attributes={},
                             created_at=now)
        .on_conflict_do_nothing(index_elements=[table.c.email]).returning(table.c.id))
    contact = session.get(Contact, new_id) if new_id is not None else \
        session.scalar(select(Contact).where(Contact.email == email))
    return contact, new_id is not None


def _check_email_free(session, email: str, except_id: int | None = None) -> None:
    stmt = select(Contact.id).where(Contact.email == email)
    if except_id is not None:
        stmt = stmt.where(Contact.id != except_id)
    other = session.scalar(stmt)
    if other is not None:
        raise Conflict(f"email {email} already belongs to contact #{other}")


def add_contact(session, actor: Actor, *, name: str | None, email: str | None, phone: str | None,
                account_id: str | None, vip: bool, attrs: Sequence[str], now: datetime) -> dict:
    if not any(v and v.strip() for v in (name, email, phone, account_id)):
        raise UsageError("a contact needs at least a name, an email address, a phone number or an account id",
                         option=("name", "email", "phone", "account_id"))
    attributes = {k: v for k, v in parse_attrs(attrs).items() if v is not None}
    if email:
        email = normalize_email(email, option="email")
        _check_email_free(session, email)
    contact = Contact(name=(name or "").strip() or (email.partition("@")[0] if email else ""), email=email,
                      phone=(phone or "").strip() or None, account_id=(account_id or "").strip() or None,
                      vip=bool(vip), attributes=attributes, created_at=now)
    session.add(contact)
    session.flush()
    return contact_record(contact, 0)


def set_contact(session, actor: Actor, ref: str, *, name: str | None = None, email: str | None = None,
                phone: str | None = None, account_id: str | None = None, vip: bool | None = None,
                attrs: Sequence[str] = (), now: datetime, settings) -> dict:
    """Change a contact. Empty `--phone ""`/`--account-id ""` clear the field; `--attr k=`
    removes attribute k. A VIP change refreshes the SLA of its open conversations."""
    contact = get_contact(session, ref)
    changes = parse_attrs(attrs)
    if all(v is None for v in (name, email, phone, account_id, vip)) and not changes:
        raise UsageError("nothing to change: no name, email address, phone number, account id, VIP flag or "
                         "attribute given", option=("name", "email", "phone", "account_id", "vip", "attrs"))
    if name is not None:
        contact.name = name.strip()
    if email is not None:
        if email.strip() == "":
            contact.email = None
        else:
            normalized = normalize_email(email, option="email")
            _check_email_free(session, normalized, except_id=contact.id)
            contact.email = normalized
    if phone is not None:
        contact.phone = phone.strip() or None
    if account_id is not None:
        contact.account_id = account_id.strip() or None
    vip_changed = vip is not None and bool(contact.vip) != bool(vip)
    if vip is not None:
        contact.vip = bool(vip)
    if changes:
        attributes = dict(contact.attributes or {})
        for key, value in changes.items():
            if value is None:
                attributes.pop(key, None)
            else:
                attributes[key] = value
        contact.attributes = attributes  # a new dict: JSON columns do not track in-place changes
    session.flush()
    if vip_changed:
        open_ids = list(session.scalars(
            select(Conversation.id).where(Conversation.contact_id == contact.id, Conversation.status != "closed")))
        if open_ids:
            sla.refresh(session, open_ids, now=now, settings=settings)
    return record_for(session, contact)


def find_contacts(session, *, query: str | None = None, email: str | None = None, phone: str | None = None,
                  account_id: str | None = None, vip: bool | None = None, attrs: Sequence[str] = (),
                  limit: int | None = None) -> Iterator[dict]:
    """Contacts matching every criterion given (none: all), by id, streamed."""
    stmt = select(Contact, _conversation_count())
    if query:
        pattern = "%" + query.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        stmt = stmt.where(or_(
            func.lower(Contact.name).like(pattern, escape="\\"),
            Contact.email.like(pattern, escape="\\"),
            func.lower(Contact.phone).like(pattern, escape="\\"),
            func.lower(Contact.account_id).like(pattern, escape="\\"),
        ))
    if email:
        stmt = stmt.where(Contact.email == email.strip().lower())
    if phone:
        stmt = stmt.where(Contact.phone == phone.strip())
    if account_id:
        stmt = stmt.where(Contact.account_id == account_id.strip())
    if vip is not None:
        stmt = stmt.where(Contact.vip == bool(vip))
    wanted = parse_attrs(attrs)
    stmt = stmt.order_by(Contact.id)
    if wanted:
        # JSON operators differ between engines: filter attributes in Python, in batches.
        for contact, count in _stream(session, stmt):
            have = contact.attributes or {}
            if all((key not in have) if value is None else (have.get(key) == value)
                   for key, value in wanted.items()):
                yield contact_record(contact, count)
                if limit is not None:
                    limit -= 1
                    if limit <= 0:
                        return
        return
    if limit is not None:
        stmt = stmt.limit(limit)
    for contact, count in _stream(session, stmt):
        yield contact_record(contact, count)


def _stream(session, stmt):
    result = session.execute(stmt.execution_options(yield_per=BATCH))
    for partition in result.partitions(BATCH):
        for contact, count in partition:
            yield contact, count
            session.expunge(contact)


def attach(session, actor: Actor, conversation_id: int, ref: str, *, now: datetime, settings,
           name: str | None = None) -> tuple[dict, bool, bool]:
    """Attach a conversation to the contact REF names (an unknown email creates it).

    Returns (contact record, changed, created). Attaching the contact it already has
    changes nothing and records no event."""
    conversation = session.get(Conversation, conversation_id)
    if conversation is None:
        raise NotFound(f"conversation not found: #{conversation_id}")
    if permissions.forbidden_ids(session, actor, [conversation_id], settings):
        raise permissions.forbidden_error(actor)
    contact, created = resolve_or_create(session, ref, now=now, name=name)
    if conversation.contact_id == contact.id:
        return record_for(session, contact), False, created
    previous = conversation.contact_id
    conversation.contact_id = contact.id
    conversation.updated_at = now
    session.flush()
    events.record(session, conversation_id=conversation_id, actor=actor.handle, kind="contact_attached", at=now,
                  data={"contact_id": contact.id, "previous_contact_id": previous})
    sla.refresh(session, [conversation_id], now=now, settings=settings)  # the VIP flag may differ
    return record_for(session, contact), True, created
