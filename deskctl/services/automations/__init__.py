"""Automations (SPEC §11): see engine.py."""

from deskctl.services.automations.engine import (
    FIRINGS,
    Arrival,
    load_directory,
    loop_reason,
    on_arrivals,
    on_events,
    rule_record,
)

__all__ = ["FIRINGS", "Arrival", "load_directory", "loop_reason", "on_arrivals", "on_events", "rule_record"]
