"""Saved replies (SPEC §1 "saved reply"): the team collection and personal sets.

A team template has owner_id null and is visible to everyone; adding or deleting one
needs the supervisor or admin role. A personal template belongs to one user, who alone
sees it; for its owner it shadows a team template of the same name.

Bodies use `{contact.name}`-style fields. The body is checked when the template is
added, so a typo is a usage error then and not a surprise in front of a customer.
"""

from __future__ import annotations

import re
import string
from datetime import datetime

from sqlalchemy import or_, select

from deskctl.errors import Conflict, NotFound, UsageError
from deskctl.models import Contact, Conversation, Template, User
from deskctl.services.actor import Actor
from deskctl.services.conversations.permissions import require_supervisor

FIELDS = ("contact.name", "contact.email", "agent.name", "agent.handle", "conversation.id",
          "conversation.subject")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def check_name(name: str) -> str:
    if not _NAME.match(name or ""):
        raise UsageError(f"invalid template name {name!r}: letters, digits, '.', '_' and '-', "
                         "starting with a letter or digit, at most 100")
    return name


def parse_body(body: str) -> list[tuple[str, str | None]]:
    """The body as (literal text, field name or None) pieces; a usage error names the
    first unknown field or the syntax problem (`{{` and `}}` are literal braces)."""
    pieces: list[tuple[str, str | None]] = []
    try:
        parsed = list(string.Formatter().parse(body))
    except ValueError as exc:
        raise UsageError(f"bad template syntax: {exc} (write {{{{ and }}}} for literal braces)") from None
    for literal, field, spec, conversion in parsed:
        if field is None:
            pieces.append((literal, None))
            continue
        if field not in FIELDS:
            shown = "{" + field + "}" if field else "{}"
            raise UsageError(f"unknown template field {shown} (known: "
                             + ", ".join("{" + f + "}" for f in FIELDS) + ")")
        if spec or conversion:
            raise UsageError(f"template field {{{field}}} takes no format spec or conversion")
        pieces.append((literal, field))
    return pieces


def render(body: str, values: dict[str, object]) -> str:
    out = []
    for literal, field in parse_body(body):
        out.append(literal)
        if field is not None:
            value = values.get(field)
            out.append("" if value is None else str(value))
    return "".join(out)


def field_values(session, conversation: Conversation, agent_id: int) -> dict[str, object]:
    contact = session.get(Contact, conversation.contact_id) if conversation.contact_id else None
    agent = session.get(User, agent_id)
    return {
        "contact.name": (contact.name or contact.email or "") if contact else "",
        "contact.email": (contact.email or "") if contact else "",
        "agent.name": (agent.name or agent.handle) if agent else "",
        "agent.handle": agent.handle if agent else "",
        "conversation.id": conversation.id,
        "conversation.subject": conversation.subject or "",
    }


def template_record(template: Template, owner_handle: str | None) -> dict:
    return {"id": template.id, "name": template.name, "scope": "personal" if template.owner_id else "team",
            "owner": owner_handle, "body": template.body, "created_at": template.created_at}


def _find(session, name: str, owner_id: int | None) -> Template | None:
    owner = Template.owner_id.is_(None) if owner_id is None else Template.owner_id == owner_id
    return session.scalar(select(Template).where(Template.name == name, owner))


def add(session, actor: Actor, *, name: str, body: str, personal: bool, now: datetime) -> dict:
    check_name(name)
    if not body or not body.strip():
        raise UsageError("the template body is empty")
    parse_body(body)
    if not personal:
        require_supervisor(actor, "adding a team template (a personal one needs no role)", option="personal")
    owner_id = actor.id if personal else None
    if _find(session, name, owner_id) is not None:
        where = "your personal templates" if personal else "the team templates"
        raise Conflict(f"template {name!r} already exists in {where} (delete it first)")
    template = Template(name=name, body=body, owner_id=owner_id, created_at=now)
    session.add(template)
    session.flush()
    return template_record(template, actor.handle if personal else None)


def visible(session, actor: Actor, *, personal_only: bool = False) -> list[dict]:
    """Templates the actor can use: team ones and their own, by name (personal first)."""
    scope = Template.owner_id == actor.id if personal_only else or_(
        Template.owner_id.is_(None), Template.owner_id == actor.id)
    rows = session.execute(
        select(Template, User.handle).outerjoin(User, User.id == Template.owner_id).where(scope)
        .order_by(Template.name, Template.owner_id.is_(None), Template.id)
    ).all()
    return [template_record(t, handle) for t, handle in rows]


def get(session, actor: Actor, name: str) -> Template:
    """The template `name` as the actor sees it: their personal one, else the team's."""
    template = _find(session, name, actor.id) or _find(session, name, None)
    if template is None:
        raise NotFound(f"template not found: {name}")
    return template


def show(session, actor: Actor, name: str) -> dict:
    template = get(session, actor, name)
    return template_record(template, actor.handle if template.owner_id else None)


def delete(session, actor: Actor, name: str, *, personal: bool) -> dict:
    template = _find(session, name, actor.id if personal else None)
    if template is None:
        where = "personal " if personal else "team "
        raise NotFound(f"{where}template not found: {name}")
    if not personal:
        require_supervisor(actor, "deleting a team template")
    record = template_record(template, actor.handle if personal else None)
    session.delete(template)
    session.flush()
    return record
