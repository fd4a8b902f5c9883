"""Outbound: replies, transcripts, notifications and the outbox."""
