"""Who may act on which conversation (SPEC §2, rules in config).

- admin: every conversation;
- supervisor: conversations of their location, of their groups, or assigned to them;
- agent: conversations of their groups or assigned to them, and of their location when
  `rules.agents_act_on_location` is on.
Conversations with neither group nor location are open to every agent (a fresh,
unrouted arrival must be claimable by someone).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import and_, false, or_, select

from deskctl.errors import Forbidden
from deskctl.models import Conversation
from deskctl.services.actor import Actor
from deskctl.services.conversations.selection import chunks


def scope_clause(actor: Actor, settings):
    """A WHERE clause true for the conversations `actor` may act on."""
    c = Conversation
    if actor.is_admin:
        return None
    allowed = [c.assignee_id == actor.id, and_(c.group_id.is_(None), c.location_id.is_(None))]
    if actor.group_ids:
        allowed.append(c.group_id.in_(sorted(actor.group_ids)))
    if actor.location_id is not None and (actor.is_supervisor or settings.rules.agents_act_on_location):
        allowed.append(c.location_id == actor.location_id)
    return or_(*allowed) if allowed else false()


def forbidden_ids(session, actor: Actor, ids: Sequence[int], settings) -> list[int]:
    """The ids among `ids` that `actor` may not act on (set-based, chunked)."""
    clause = scope_clause(actor, settings)
    if clause is None or not ids:
        return []
    allowed: set[int] = set()
    for chunk in chunks(list(ids)):
        allowed.update(session.scalars(select(Conversation.id).where(Conversation.id.in_(chunk), clause)))
    return [i for i in ids if i not in allowed]


def forbidden_error(actor: Actor) -> Forbidden:
    return Forbidden(f"{actor.handle} ({actor.role}) may not act on this conversation: "
                     "not in their groups or location")


def require_supervisor(actor: Actor, what: str, *, option: str | None = None) -> None:
    if not actor.is_supervisor:
        raise Forbidden(f"{what} needs the supervisor or admin role ({actor.handle} is {actor.role})",
                        option=option)
