"""The SLA rules as pure functions (SPEC §8): which policy applies, the targets and due
times of one conversation, its state and next check. No database: `deadlines` feeds it
rows from SQL, the demo feeds it a simulated conversation, and both get the same answer.

A conversation's facts are read by attribute: status, created_at, updated_at,
first_inbound_at, first_response_at, last_inbound_at, last_outbound_at, resolved_at,
closed_at, pending_since, next_response_due (as last stored) and cycle_start (the first
inbound message after the latest reply). A pause trail is the status-changing events,
in order, as (kind, at, data).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

TARGETS = ("first_response", "next_response", "resolution")
STOPPED = ("resolved", "closed")


@dataclass
class Target:
    name: str
    due: datetime | None
    warn_at: datetime | None
    running: bool
    late: bool = False  # finished (replied / resolved) after its due time


def match_policy(policies, *, vip: bool, priority: str, channel: str, group: str | None,
                 location: str | None):
    """The first policy whose every `when` condition holds, or None."""
    facts = {"vip": bool(vip), "priority": priority, "channel": channel, "group": group, "location": location}
    for policy in policies:
        if all(facts[cond] in values for cond, values in policy.when.items()):
            return policy
    return None


def pause_state(row, trail, calendar, now: datetime) -> tuple[float, datetime | None]:
    """(seconds of open time paused in finished pauses, start of the running pause)."""
    paused = 0.0
    since: datetime | None = None
    for kind, at, data in trail:
        starts = kind == "pending" or (kind == "closed" and data.get("status") == "pending")
        if starts:
            if since is None:
                since = at
        elif since is not None:
            paused += calendar.measure(since, at)
            since = None
    if row.status == "pending":
        if since is None:  # no trail (data inserted directly): trust the row
            since = row.pending_since or row.updated_at or now
    elif since is not None:  # left pending by a change the trail does not name
        paused += calendar.measure(since, row.updated_at or now)
        since = None
    return paused, since


def deadline(calendar, start: datetime, target: timedelta, warning: float,
             extra: float = 0.0) -> tuple[datetime, datetime]:
    """(due time, warning time) of a target of `target` open time starting at `start`,
    `extra` seconds of pauses added."""
    due = calendar.add(start, target + timedelta(seconds=extra) if extra else target)
    warn_at = calendar.add(start, target.total_seconds() * warning + extra)
    return due, warn_at


def compute(row, policy, calendar, warning: float, trail, now: datetime):
    """Targets and derived columns for one conversation."""
    targets: list[Target] = []
    stopped = row.status in STOPPED
    # When the conversation stopped: a target still running then ended at that moment.
    stop = (row.resolved_at or row.closed_at or row.updated_at) if stopped else None
    values: dict[str, Any] = dict(first_response_due=None, next_response_due=None, resolution_due=None, sla_paused_s=0)

    if policy.first_response and row.first_inbound_at:
        due, warn_at = deadline(calendar, row.first_inbound_at, policy.first_response, warning)
        values["first_response_due"] = due
        if row.first_response_at is not None:
            late = due is not None and row.first_response_at > due and row.first_response_at >= row.first_inbound_at
            targets.append(Target("first_response", due, warn_at, False, late))
        elif stopped:  # never answered: late if it stopped after the due time
            targets.append(Target("first_response", due, warn_at, False,
                                   due is not None and stop is not None and stop > due))
        else:
            targets.append(Target("first_response", due, warn_at, True))

    if policy.next_response:
        waiting = (row.first_response_at is not None and row.last_outbound_at is not None
                   and row.last_inbound_at is not None and row.last_inbound_at > row.last_outbound_at
                   and row.cycle_start is not None)
        if waiting and not stopped:
            due, warn_at = deadline(calendar, row.cycle_start, policy.next_response, warning)
            values["next_response_due"] = due
            targets.append(Target("next_response", due, warn_at, True))
        elif row.next_response_due is not None:
            # The cycle running at the last refresh has ended: by a reply, or unanswered
            # by the stop. Late when that came after its due time.
            end = stop if waiting else row.last_outbound_at
            if end is not None and end > row.next_response_due:
                targets.append(Target("next_response", row.next_response_due, None, False, True))

    if policy.resolution:
        paused, since = (0.0, None)
        if policy.pause_when_pending:
            paused, since = pause_state(row, trail, calendar, now)
        values["sla_paused_s"] = int(paused)
        due, warn_at = deadline(calendar, row.created_at, policy.resolution, warning, paused)
        if stopped:
            values["resolution_due"] = due
            targets.append(Target("resolution", due, warn_at, False,
                                   due is not None and stop is not None and stop > due))
        elif since is not None:  # paused: the clock is stopped, no deadline yet
            targets.append(Target("resolution", None, None, False))
        else:
            values["resolution_due"] = due
            targets.append(Target("resolution", due, warn_at, True))
    return targets, values


def stored_targets(row, policy, calendar, warning: float) -> list[Target] | None:
    """The running targets of a conversation that is neither resolved nor closed, read
    from its stored due times when they are the ones `compute` gives: nothing they
    depend on changed since the last refresh, only time passed (what the sweep finds).
    None when they differ (a configuration change) or need the pause trail (an earlier
    pause of the resolution clock): the caller computes in full. Finished targets are
    left out: the refresh that finished them recorded their marks."""
    resolution_runs = bool(policy.resolution) and not (policy.pause_when_pending and row.status == "pending")
    if resolution_runs and row.sla_paused_s:
        return None  # earlier pauses: their exact sum is known to the pause trail only
    # (name, whether the policy gives it a due time now, its start, length, stored due time, running)
    kinds = (
        ("first_response", bool(policy.first_response) and row.first_inbound_at is not None, row.first_inbound_at,
         policy.first_response, row.first_response_due, row.first_response_at is None),
        ("next_response", bool(policy.next_response) and row.cycle_start is not None, row.cycle_start,
         policy.next_response, row.next_response_due, True),
        ("resolution", resolution_runs, row.created_at, policy.resolution, row.resolution_due, True),
    )
    targets: list[Target] = []
    for name, due_now, start, length, stored, running in kinds:
        if not due_now:
            if stored is not None:
                return None
            continue
        due, warn_at = deadline(calendar, start, length, warning)
        if stored != due:
            return None
        if running:
            targets.append(Target(name, due, warn_at, True))
    return targets


def level(target: Target, now: datetime) -> str | None:
    """The level a target is at now: breached, warning or None."""
    if target.late:
        return "breached"
    if not target.running or target.due is None:
        return None
    if now >= target.due:
        return "breached"
    if target.warn_at is not None and now >= target.warn_at:
        return "warning"
    return None


def assess(targets: Sequence[Target], have: set[tuple[str, str]], now: datetime, *,
           sweeping: bool) -> tuple[str, datetime | None, list[tuple[Target, str, bool]]]:
    """(state, next check, levels newly reached) for computed targets, given the marks the
    conversation already has (`have`, updated in place). A level is reached here when a
    finished target was late, or, when `sweeping`, a running one passed its warning share
    or due time; each reached level says whether it is announced (jumping straight to
    breached records the warning mark but announces only the breach)."""
    state = "breached" if any(level == "breached" for _, level in have) else "ok"
    next_check = None
    reached: list[tuple[Target, str, bool]] = []
    for target in targets:
        current = level(target, now)
        if current == "breached":
            state = "breached"
        elif current == "warning" and state == "ok":
            state = "warning"
        if current is not None and (sweeping or not target.running):
            for lv in ("warning", "breached") if current == "breached" else ("warning",):
                if (target.name, lv) not in have:
                    have.add((target.name, lv))
                    reached.append((target, lv, lv == current))
        if target.running:
            for lv, moment in (("warning", target.warn_at), ("breached", target.due)):
                if moment is None or (target.name, lv) in have:
                    continue
                if moment > now or not sweeping:  # not swept yet: due for the next sweep
                    if next_check is None or moment < next_check:
                        next_check = moment
    return state, next_check, reached
