"""Automation rules run on what the inbound pipeline stored (filled by the automations work)."""


def on_arrivals(session, arrivals, *, now, settings) -> None:
    """Hook: automation rules (filled by the automations work)."""
