"""SLA deadlines and states. (Placeholder until the SLA engine lands: every caller
already calls `refresh` when the facts of a conversation change.)"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime


def refresh(session, conversation_ids: Sequence[int], *, now: datetime, settings) -> None:
    """Recompute policy, due times, state and sla_next_check_at for these conversations.

    Called after any change to what SLA depends on: messages in/out, status, priority,
    group, contact VIP. Must be set-based for large id lists."""
    return None
