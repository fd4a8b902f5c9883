"""Saved replies."""

from __future__ import annotations

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from deskctl.db.base import Base
from deskctl.db.types import intpk, utc


class Template(Base):
    """A saved reply: the team collection (owner null) or one agent's personal set."""

    __tablename__ = "templates"

    id: Mapped[intpk]
    name: Mapped[str] = mapped_column(String(100), index=True)
    body: Mapped[str] = mapped_column(Text)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[utc]
