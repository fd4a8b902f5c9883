"""The sweep reads a due conversation's stored due times instead of recomputing them
(`sla.sweep`, `core.stored_targets`): on a desk of mixed policies (24x7, business hours,
pausing), over two days of sweeps, it must leave exactly what a full refresh of
the same conversations leaves: states, next checks, marks, events and notifications;
and after a change of the configuration it must fall back to the full refresh."""

from __future__ import annotations

import itertools
import textwrap
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from deskctl.config import load_settings
from deskctl.models import Conversation, Event, Message, Outbox, SlaMark
from deskctl.services.sla import core
from deskctl.services.sla import deadlines as sla
from deskctl.services.sla.business_hours import calendar_for
from tests.factories import make_conversation

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # a Monday

CONFIG = """
timezone: Europe/Paris
clock: {override: true}
business_hours:
  paris:
    timezone: Europe/Paris
    week: {mon: ["09:00-12:30", "13:30-18:00"], tue: ["09:00-18:00"], wed: ["09:00-18:00"],
           thu: ["09:00-18:00"], fri: ["09:00-18:00"], sat: [], sun: []}
sla:
  warning: 0.75
  policies:
    - name: urgent
      when: {priority: [urgent, high]}
      first_response: 30m
      next_response: 1h
      resolution: 8h
      hours: 24x7
      pause_when_pending: true
    - name: chat
      when: {channel: [chat]}
      first_response: 5m
      next_response: 5m
      hours: 24x7
    - name: default
      first_response: {first_response}
      next_response: 8h
      resolution: 3d
      hours: {hours}
      pause_when_pending: true
"""


def settings_for(tmp_path, desk, *, first_response="4h", hours="24x7"):
    path = tmp_path / f"deskctl-{first_response}-{hours}.yaml"
    path.write_text(textwrap.dedent(CONFIG).replace("{first_response}", first_response).replace("{hours}", hours))
    return load_settings(str(path), desk.url)


def state_of(session) -> dict:
    c = Conversation
    return {
        "conversations": session.execute(
            select(c.id, c.sla_policy, c.sla_state, c.first_response_due, c.next_response_due, c.resolution_due,
                   c.sla_next_check_at, c.sla_paused_s).order_by(c.id)).all(),
        "marks": session.execute(select(SlaMark.conversation_id, SlaMark.target, SlaMark.level)
                                 .order_by(SlaMark.conversation_id, SlaMark.target, SlaMark.level)).all(),
        "events": sorted((cid, kind, repr(sorted(data.items()))) for cid, kind, data in session.execute(
            select(Event.conversation_id, Event.kind, Event.data).where(Event.kind.like("sla_%")))),
        "outbox": sorted(session.scalars(select(Outbox.dedupe_key)).all()),
    }


def served_by_stored(session, now, settings) -> int:
    """How many of the conversations due at `now` the stored due times serve."""
    due = sla.due_ids(session, now)
    rows = session.execute(sla._facts_select(due)).all()
    policies = sla._policies(rows, settings)
    served = 0
    for row in rows:
        policy = policies[row.id]
        if policy is not None and policy.name == row.sla_policy and row.status not in core.STOPPED:
            calendar = calendar_for(settings, policy.hours)
            served += core.stored_targets(row, policy, calendar, settings.sla.warning) is not None
    return served


def swept_both_ways(desk, settings, moments) -> tuple[dict, dict, int]:
    """Sweeps at each moment, once with `sla.sweep` and once with a full refresh of the
    same due conversations (each in a transaction rolled back), and how many due rows the
    stored due times served."""
    results = []
    served = 0
    for full in (False, True):
        with desk.session() as s:
            for now in moments:
                if full:
                    sla.refresh(s, sla.due_ids(s, now), now=now, settings=settings, sweeping=True)
                else:
                    served += served_by_stored(s, now, settings)
                    sla.sweep(s, now=now, settings=settings)
                s.flush()
            results.append(state_of(s))
            s.rollback()
    return results[0], results[1], served


@pytest.fixture
def busy_desk(seeded, tmp_path):
    """Running conversations of every kind the policies tell apart, some answered and
    waiting again (a next-response cycle), refreshed at NOW."""
    ids = []
    combos = itertools.product(("low", "urgent"), ("email", "chat"), ("new", "open", "pending"),
                               (10, 100, 1000, 4000), (False, True))
    for n, (priority, channel, status, age, answered) in enumerate(combos):
        created = NOW - timedelta(minutes=age)
        cid = make_conversation(seeded, priority=priority, channel=channel, status=status, created_at=created,
                                group=("billing", "sales")[n % 2], contact_email=f"c{n % 5}@example.fr",
                                pending_since=NOW if status == "pending" else None)
        if answered:
            with seeded.session() as s:
                conv = s.get(Conversation, cid)
                replied, again = created + timedelta(minutes=age // 4), created + timedelta(minutes=age // 2)
                s.add(Message(conversation_id=cid, direction="outbound", channel=channel, text="Answer",
                              created_at=replied, cc=[], bcc=[]))
                s.add(Message(conversation_id=cid, direction="inbound", channel=channel, text="And?",
                              created_at=again, cc=[], bcc=[]))
                conv.first_response_at = conv.last_outbound_at = replied
                conv.last_inbound_at = again
        ids.append(cid)
    settings = settings_for(tmp_path, seeded)
    with seeded.session() as s:
        sla.refresh(s, ids, now=NOW, settings=settings)
    return seeded


def test_the_sweep_from_stored_due_times_equals_a_full_refresh(busy_desk, tmp_path):
    settings = settings_for(tmp_path, busy_desk)
    moments = [NOW + timedelta(minutes=m) for m in (1, 20, 45, 90, 240, 600, 1500, 2900)]
    stored, full, served = swept_both_ways(busy_desk, settings, moments)
    assert served >= 40  # the stored path was taken, not only the fallback
    assert len(full["marks"]) > 0 and len(full["events"]) > 0
    assert stored == full


def test_the_sweep_falls_back_to_a_full_refresh_after_a_configuration_change(busy_desk, tmp_path):
    for changed in (settings_for(tmp_path, busy_desk, first_response="1h"),
                    settings_for(tmp_path, busy_desk, hours="paris")):
        moments = [NOW + timedelta(minutes=m) for m in (1, 30, 300)]
        stored, full, served = swept_both_ways(busy_desk, changed, moments)
        assert stored == full
