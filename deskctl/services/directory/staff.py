"""The directory: users, groups (queues), memberships, locations, availability."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func, select

from deskctl.errors import Conflict, Forbidden, NotFound, UsageError
from deskctl.models import Group, GroupMember, Location, User
from deskctl.services.actor import Actor
from deskctl.services.addresses import check_address
from deskctl.services.conversations.selection import group_id_by_name, location_id_by_name

_HANDLE_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789._-")


def require_admin(actor: Actor, what: str) -> None:
    if not actor.is_admin:
        raise Forbidden(f"{what} needs the admin role ({actor.handle} is {actor.role})")


def admin_exists(session) -> bool:
    return bool(session.scalar(select(func.count()).select_from(User).where(User.role == "admin")))


def check_handle(handle: str) -> str:
    if not handle or len(handle) > 64 or set(handle.lower()) - _HANDLE_CHARS or handle != handle.lower():
        raise UsageError(f"invalid handle {handle!r}: lower-case letters, digits, '.', '_' and '-' only")
    return handle


def check_availability(state: str, states: Sequence[str]) -> str:
    if state not in states:
        raise UsageError(f"invalid availability {state!r} (choose from {', '.join(states)})")
    return state


def user_record(session, user: User) -> dict:
    groups = session.scalars(
        select(Group.name).join(GroupMember, GroupMember.group_id == Group.id)
        .where(GroupMember.user_id == user.id).order_by(Group.name)
    ).all()
    location = session.scalar(select(Location.name).where(Location.id == user.location_id)) \
        if user.location_id else None
    return {
        "id": user.id, "handle": user.handle, "name": user.name, "email": user.email, "role": user.role,
        "availability": user.availability, "default_availability": user.default_availability,
        "location": location, "groups": list(groups), "active": user.active, "created_at": user.created_at,
    }


def get_user(session, handle: str) -> User:
    user = session.scalar(select(User).where(User.handle == handle))
    if user is None:
        raise NotFound(f"user not found: {handle}")
    return user


def add_user(session, actor: Actor | None, *, handle: str, name: str | None, email: str | None, role: str,
             location: str | None, groups: Sequence[str], now: datetime) -> User:
    """Add a user. While no admin exists, anyone may add the first admin (bootstrap)."""
    check_handle(handle)
    if email is not None:
        email = check_address(email, "the user", option="email") if email.strip() else None
    if admin_exists(session):
        if actor is None:
            raise Forbidden("adding users needs an admin: act as one", option="as")
        require_admin(actor, "adding users")
    elif role != "admin":
        raise Forbidden("no admin exists yet: the first user must have the admin role", option="role")
    if session.scalar(select(User.id).where(User.handle == handle)) is not None:
        raise Conflict(f"user already exists: {handle}")
    user = User(
        handle=handle, name=name or handle, email=email, role=role, availability="offline",
        default_availability="available",
        location_id=location_id_by_name(session, location) if location else None, active=True, created_at=now,
    )
    session.add(user)
    session.flush()
    for group in dict.fromkeys(groups):
        session.add(GroupMember(group_id=group_id_by_name(session, group), user_id=user.id))
    session.flush()
    return user


def set_user(session, actor: Actor, handle: str, *, name=None, email=None, role=None, location=None,
             active=None, states: Sequence[str] = (), default_availability=None) -> User:
    require_admin(actor, "changing users")
    user = get_user(session, handle)
    if name is not None:
        user.name = name
    if email is not None:  # an empty --email clears it
        user.email = check_address(email, "the user", option="email") if email.strip() else None
    if role is not None:
        if user.role == "admin" and role != "admin" and _admin_count(session) == 1:
            raise Conflict("cannot demote the last admin")
        user.role = role
    if location is not None:
        user.location_id = location_id_by_name(session, location) if location else None
    if active is not None:
        if not active and user.role == "admin" and _admin_count(session) == 1:
            raise Conflict("cannot deactivate the last admin")
        user.active = active
    if default_availability is not None:
        user.default_availability = check_availability(default_availability, states)
    session.flush()
    return user


def _admin_count(session) -> int:
    return session.scalar(
        select(func.count()).select_from(User).where(User.role == "admin", User.active.is_(True))
    )


def list_users(session, *, group: str | None = None, role: str | None = None) -> list[User]:
    stmt = select(User).order_by(User.handle)
    if group:
        stmt = stmt.join(GroupMember, GroupMember.user_id == User.id).where(
            GroupMember.group_id == group_id_by_name(session, group))
    if role:
        stmt = stmt.where(User.role == role)
    return list(session.scalars(stmt))


def add_location(session, actor: Actor, name: str, now: datetime) -> Location:
    require_admin(actor, "adding locations")
    _check_name(name, "location")
    if session.scalar(select(Location.id).where(Location.name == name)) is not None:
        raise Conflict(f"location already exists: {name}")
    location = Location(name=name, created_at=now)
    session.add(location)
    session.flush()
    return location


def list_locations(session, *, name: str | None = None) -> list[dict]:
    """Locations with their group and user counts (only `name`'s when given)."""
    stmt = (
        select(Location.id, Location.name,
               select(func.count()).select_from(Group).where(Group.location_id == Location.id)
               .scalar_subquery().label("groups"),
               select(func.count()).select_from(User).where(User.location_id == Location.id)
               .scalar_subquery().label("users"))
        .order_by(Location.name)
    )
    if name is not None:
        stmt = stmt.where(Location.name == name)
    return [dict(row._mapping) for row in session.execute(stmt)]


def add_group(session, actor: Actor, name: str, location: str | None, now: datetime) -> Group:
    require_admin(actor, "adding groups")
    _check_name(name, "group")
    if session.scalar(select(Group.id).where(Group.name == name)) is not None:
        raise Conflict(f"group already exists: {name}")
    group = Group(name=name, location_id=location_id_by_name(session, location) if location else None,
                  created_at=now)
    session.add(group)
    session.flush()
    return group


def list_groups(session, *, name: str | None = None) -> list[dict]:
    """Groups with their location and member count (only `name`'s when given)."""
    members = (select(func.count()).select_from(GroupMember)
               .where(GroupMember.group_id == Group.id).scalar_subquery())
    stmt = (
        select(Group.id, Group.name, Location.name.label("location"), members.label("members"))
        .outerjoin(Location, Location.id == Group.location_id)
        .order_by(Group.name)
    )
    if name is not None:
        stmt = stmt.where(Group.name == name)
    return [dict(row._mapping) for row in session.execute(stmt)]


def add_member(session, actor: Actor, group: str, handle: str) -> None:
    require_admin(actor, "changing group membership")
    group_id = group_id_by_name(session, group)
    user = get_user(session, handle)
    exists = session.get(GroupMember, (group_id, user.id))
    if exists is not None:
        raise Conflict(f"{handle} is already a member of {group}")
    session.add(GroupMember(group_id=group_id, user_id=user.id))
    session.flush()


def remove_member(session, actor: Actor, group: str, handle: str) -> None:
    require_admin(actor, "changing group membership")
    group_id = group_id_by_name(session, group)
    user = get_user(session, handle)
    result = session.execute(delete(GroupMember).where(GroupMember.group_id == group_id,
                                                       GroupMember.user_id == user.id))
    if result.rowcount == 0:
        raise NotFound(f"{handle} is not a member of {group}")


def _user_for_availability(session, actor: Actor, handle: str | None, what: str) -> User:
    """The actor, or another user when the actor is a supervisor or an admin."""
    target = get_user(session, handle or actor.handle)
    if target.id != actor.id and not actor.is_supervisor:
        raise Forbidden(f"{what} another user's availability needs the supervisor role "
                        f"({actor.handle} is {actor.role})")
    return target


def availability_of(session, actor: Actor, handle: str | None) -> User:
    """Read one's own availability; supervisors and admins may read another user's."""
    return _user_for_availability(session, actor, handle, "seeing")


def set_availability(session, actor: Actor, handle: str | None, state: str | None, *,
                     default: str | None, states: Sequence[str]) -> User:
    """Set one's own availability; supervisors and admins may set another user's."""
    target = _user_for_availability(session, actor, handle, "setting")
    if state is not None:
        target.availability = check_availability(state, states)
    if default is not None:
        target.default_availability = check_availability(default, states)
    session.flush()
    return target


def login(session, actor: Actor) -> User:
    """Start of a shift: availability becomes the user's default availability."""
    user = get_user(session, actor.handle)
    user.availability = user.default_availability
    session.flush()
    return user


def _check_name(name: str, what: str) -> None:
    if not name or len(name) > 100 or name.strip() != name or ":" in name:
        raise UsageError(f"invalid {what} name {name!r}: 1-100 characters, no ':' or surrounding spaces")
