"""Outbound email composition (replies, transcripts). Placeholder until the channels
work lands; the signature is the contract callers use."""

from __future__ import annotations

from datetime import datetime

from deskctl.errors import UsageError


def queue_transcript(session, conversation_id: int, to_address: str, *, actor: str, now: datetime,
                     settings) -> None:
    """Queue the conversation's history (inbound and outbound messages, never internal
    notes) plus its closing note as one email to `to_address`, and record
    `transcript_sent`."""
    raise UsageError("transcripts are not available yet")
