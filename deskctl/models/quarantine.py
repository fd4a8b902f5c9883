"""The quarantine: input that could not be stored, kept whole."""

from __future__ import annotations

from sqlalchemy import Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from deskctl.db.base import Base
from deskctl.db.types import intpk, utc


class Quarantine(Base):
    """Input that could not be parsed: kept whole, with the reason, never dropped silently."""

    __tablename__ = "quarantine"

    id: Mapped[intpk]
    source: Mapped[str] = mapped_column(String(32))  # email | jsonl
    reason: Mapped[str] = mapped_column(Text)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    filename: Mapped[str | None] = mapped_column(String(1000))
    line_no: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="held", index=True)  # held|retried|dropped
    created_at: Mapped[utc]
