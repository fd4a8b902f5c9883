"""Contacts: the customers."""

from __future__ import annotations

from sqlalchemy import Boolean, String
from sqlalchemy.orm import Mapped, mapped_column

from deskctl.db.base import Base
from deskctl.db.types import JsonType, intpk, utc


class Contact(Base):
    __tablename__ = "contacts"

    id: Mapped[intpk]
    name: Mapped[str] = mapped_column(String(200), default="")
    # Stored lower-cased: email addresses are matched case-insensitively.
    email: Mapped[str | None] = mapped_column(String(320), unique=True)
    phone: Mapped[str | None] = mapped_column(String(64), index=True)
    account_id: Mapped[str | None] = mapped_column(String(100), index=True)
    vip: Mapped[bool] = mapped_column(Boolean, default=False)
    attributes: Mapped[dict] = mapped_column(JsonType, default=dict)
    created_at: Mapped[utc]
