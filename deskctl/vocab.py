"""The desk's vocabulary: every fixed list of names, in one place (SPEC §1, §2, §5-§7, §10-§12).

Models, configuration, commands, services and jobs import these tuples; nothing repeats
them. Standard library only and nothing at import time but the tuples, so the root
command (`deskctl --help`) and the completion callbacks can read them for free.
The order of each tuple is meaningful: it is the order shown in help and completion,
and for PRIORITIES the rank (low < medium < high < urgent).
"""

from __future__ import annotations

# -- conversations (SPEC §1, §7) ------------------------------------------------------
STATUSES = ("new", "open", "pending", "resolved", "closed")
# `close --status`: the status a closing leaves the conversation in.
CLOSE_STATUSES = ("closed", "pending", "open")
PRIORITIES = ("low", "medium", "high", "urgent")
DEFAULT_PRIORITY = "low"
SLA_STATES = ("ok", "warning", "breached", "none")
SLA_TARGETS = ("first_response", "next_response", "resolution")
# The built-in channels: config's `channels` list defaults to these and may add others.
CHANNELS = ("email", "chat", "sms", "social", "web", "phone")

# -- people (SPEC §1, §10) ------------------------------------------------------------
ROLES = ("agent", "supervisor", "admin")
SUPERVISOR_ROLES = ("supervisor", "admin")
# Config's `availability_states` defaults to these; `rona` is always there besides
# (where an agent who let an offer expire lands, SPEC §10).
AVAILABILITY_STATES = ("available", "away", "offline")
BUILTIN_AVAILABILITY = ("rona",)
ROUTING_MODES = ("pull", "offer", "assign")

# -- output (SPEC §2) -----------------------------------------------------------------
FORMATS = ("table", "csv", "tsv", "json", "jsonl", "ids")

# -- reports (SPEC §6) ----------------------------------------------------------------
REPORT_KINDS = ("volume", "sla", "agents", "tags", "csat", "backlog", "conversations")
# `report --by`: the key of the rows.
REPORT_BY = ("day", "week", "month", "agent", "group", "channel", "tag", "location")
REPORT_TIME_KEYS = ("day", "week", "month")

# -- scheduler (SPEC §5, §10, §12) ----------------------------------------------------
JOB_NAMES = ("sla-sweep", "boomerang", "auto-close", "auto-unassign", "notify", "nightly-export", "route",
             "retention", "mail-poll")

# -- the audit trail (SPEC §7, §10, §12) ----------------------------------------------
EVENT_KINDS = (
    "created", "message_in", "message_out", "note_added", "note_edited", "note_deleted",
    "claimed", "stolen", "transferred", "pending", "resolved", "closed", "reopened",
    "qualified", "contact_attached", "watched", "unwatched", "boomerang_returned",
    "sla_warning", "sla_breached", "auto_closed", "auto_unassigned", "released", "merged",
    "transcript_sent",
    # Routing (SPEC §10).
    "routed", "offered", "declined", "offer_expired",
    # Automations and keeping (SPEC §11, §12).
    "automation", "erased",
)

# -- delivery and automations (SPEC §11) ----------------------------------------------
OUTBOX_STATUSES = ("queued", "retrying", "sent", "failed")
# The events an automation rule's `on` may name.
AUTOMATION_TRIGGERS = ("created", "message_in", "reopened", "sla_warning", "sla_breached", "closed")

# -- ingest (SPEC §13) ----------------------------------------------------------------
QUARANTINE_STATUSES = ("held", "retried", "dropped")
