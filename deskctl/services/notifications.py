"""The notification outbox: enqueue here, deliver in the `notify` job.

Every row has a de-duplication key, so enqueueing the same notification twice (a job
rerun after a crash) stores it once: delivery is at-least-once, duplicates are not.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from deskctl.models import Outbox, User


def enqueue(session, *, kind: str, dedupe_key: str, recipient: str, subject: str, body: str = "",
            now: datetime, conversation_id: int | None = None, user_id: int | None = None,
            raw: bytes | None = None) -> bool:
    """Queue one notification or email; returns False when the key was already queued."""
    if session.scalar(select(Outbox.id).where(Outbox.dedupe_key == dedupe_key)) is not None:
        return False
    session.add(Outbox(kind=kind, dedupe_key=dedupe_key, recipient=recipient, subject=subject, body=body,
                       raw=raw, conversation_id=conversation_id, user_id=user_id, status="queued",
                       attempts=0, next_attempt_at=now, created_at=now))
    session.flush()
    return True


def notify_users(session, user_ids, *, conversation_id: int | None, event: str, subject: str, body: str,
                 now: datetime, key: str) -> int:
    """Queue a notification for each user (to their email, else their handle for the log).

    `key` identifies the occurrence (e.g. the event id); with the user id it forms the
    de-duplication key."""
    count = 0
    ids = sorted(set(u for u in user_ids if u is not None))
    if not ids:
        return 0
    for user in session.scalars(select(User).where(User.id.in_(ids))):
        count += enqueue(session, kind="notification", dedupe_key=f"{event}:{key}:user:{user.id}",
                         recipient=user.email or user.handle, subject=subject, body=body, now=now,
                         conversation_id=conversation_id, user_id=user.id)
    return count
