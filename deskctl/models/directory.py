"""Users (agents), groups (queues), locations and group memberships."""

from __future__ import annotations

from sqlalchemy import Boolean, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from deskctl.db.base import Base
from deskctl.db.types import intpk, utc, utc_null


class Location(Base):
    __tablename__ = "locations"

    id: Mapped[intpk]
    name: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[utc]


class Group(Base):
    __tablename__ = "groups"

    id: Mapped[intpk]
    name: Mapped[str] = mapped_column(String(100), unique=True)
    location_id: Mapped[int | None] = mapped_column(ForeignKey("locations.id"))
    created_at: Mapped[utc]


class User(Base):
    __tablename__ = "users"

    id: Mapped[intpk]
    handle: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str | None] = mapped_column(String(320))
    role: Mapped[str] = mapped_column(String(16), default="agent")  # one of deskctl.vocab.ROLES
    availability: Mapped[str] = mapped_column(String(32), default="offline")
    default_availability: Mapped[str] = mapped_column(String(32), default="available")
    location_id: Mapped[int | None] = mapped_column(ForeignKey("locations.id"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[utc]
    # Routing's tie-break (SPEC §10): longest since the last assignment goes first.
    last_routed_at: Mapped[utc_null]


class GroupMember(Base):
    __tablename__ = "group_members"

    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
