"""Automations (SPEC §11): see engine.py."""

from deskctl.services.automations.engine import (
    FIRINGS,
    load_directory,
    loop_reason,
    on_arrivals,
    on_events,
    rule_record,
)

__all__ = ["FIRINGS", "load_directory", "loop_reason", "on_arrivals", "on_events", "rule_record"]
