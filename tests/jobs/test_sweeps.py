"""Sweeps: boomerang (exactly once), auto-close, auto-unassign (RONA), and the SLA sweep
job at DESKCTL_NOW-style frozen times."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta

import pytest
from freezegun import freeze_time

from deskctl.config import load_settings
from deskctl.jobs import auto_close, auto_unassign, boomerang, sla_sweep
from tests.factories import T0, make_conversation


@pytest.fixture
def cfg(seeded):
    return load_settings(None, seeded.url)


def with_job(settings, name, **changes):
    jobs = dict(settings.jobs)
    jobs[name] = dataclasses.replace(jobs[name], **changes)
    return dataclasses.replace(settings, jobs=jobs)


def run(desk, job, now, settings):
    with desk.session() as s:
        return job.run(s, now=now, settings=settings)


def events(desk, kind):
    rows = desk.rows("SELECT conversation_id, actor, data FROM events WHERE kind = :k ORDER BY id", k=kind)
    for r in rows:
        if isinstance(r["data"], str):
            r["data"] = json.loads(r["data"])
    return rows


def status(desk, cid):
    return desk.rows("SELECT status, assignee_id, boomerang_at FROM conversations WHERE id = :i", i=cid)[0]


# -- boomerang ------------------------------------------------------------------------------

def test_boomerang_returns_due_conversations_exactly_once(seeded, cfg):
    due_at = T0 + timedelta(hours=2)
    pending = make_conversation(seeded, status="pending", assignee="alice", watchers=["bob", "alice"],
                                boomerang_at=due_at, pending_since=T0)
    resolved = make_conversation(seeded, status="resolved", contact_email="r@example.org", watchers=["carol"],
                                 boomerang_at=due_at, resolved_at=T0)
    later = make_conversation(seeded, status="pending", contact_email="l@example.org",
                              boomerang_at=due_at + timedelta(minutes=1))

    assert run(seeded, boomerang, due_at - timedelta(seconds=1), cfg)["returned"] == 0
    counts = run(seeded, boomerang, due_at, cfg)
    assert counts["returned"] == 2
    assert status(seeded, pending)["status"] == "new" and status(seeded, pending)["boomerang_at"] is None
    assert status(seeded, pending)["assignee_id"] is not None  # the assignee keeps it
    assert status(seeded, resolved)["status"] == "new"
    assert status(seeded, later)["status"] == "pending"
    evs = events(seeded, "boomerang_returned")
    assert [(e["conversation_id"], e["actor"], e["data"]["previous_status"]) for e in evs] == [
        (pending, "system", "pending"), (resolved, "system", "resolved")]
    # assignee + watchers, each once
    recipients = sorted(r["recipient"] for r in seeded.rows("SELECT recipient FROM outbox"))
    assert recipients == ["alice@desk.example", "bob@desk.example", "carol@desk.example"]

    for minutes in (0, 0, 1, 5):
        run(seeded, boomerang, due_at + timedelta(minutes=minutes), cfg)
    assert len(events(seeded, "boomerang_returned")) == 3  # + `later`, once
    assert seeded.scalar("SELECT count(*) FROM outbox") == 3
    assert status(seeded, later)["status"] == "new"


def test_boomerang_rerun_after_a_rollback_is_still_once(seeded, cfg):
    cid = make_conversation(seeded, status="pending", boomerang_at=T0)
    with pytest.raises(RuntimeError), seeded.session() as s:
        boomerang.run(s, now=T0 + timedelta(minutes=1), settings=cfg)
        raise RuntimeError("crash before commit")
    assert status(seeded, cid)["status"] == "pending"
    run(seeded, boomerang, T0 + timedelta(minutes=2), cfg)
    run(seeded, boomerang, T0 + timedelta(minutes=3), cfg)
    assert len(events(seeded, "boomerang_returned")) == 1


def test_stale_boomerang_on_an_open_conversation_is_cleared_silently(seeded, cfg):
    cid = make_conversation(seeded, status="open", assignee="alice", boomerang_at=T0)
    counts = run(seeded, boomerang, T0 + timedelta(minutes=1), cfg)
    assert counts == {"returned": 0, "cleared": 1, "notifications": 0}
    assert status(seeded, cid)["status"] == "open" and status(seeded, cid)["boomerang_at"] is None
    assert events(seeded, "boomerang_returned") == []


def test_boomerang_visible_in_list_after_the_job(seeded, cfg):
    cid = make_conversation(seeded, status="pending", boomerang_at=T0)
    run(seeded, boomerang, T0 + timedelta(minutes=1), cfg)
    seeded.now = (T0 + timedelta(minutes=1)).isoformat()
    assert [r["id"] for r in seeded.json("list", "--status", "new")] == [cid]


# -- auto-close ---------------------------------------------------------------------------------

def test_auto_close_after_four_days_untouched(seeded, cfg):
    old = make_conversation(seeded, status="resolved", resolved_at=T0)
    touched = make_conversation(seeded, status="resolved", contact_email="t@example.org", resolved_at=T0)
    with seeded.session() as s:
        from deskctl.models import Conversation

        s.get(Conversation, touched).updated_at = T0 + timedelta(days=1)
    boomeranged = make_conversation(seeded, status="resolved", contact_email="b@example.org", resolved_at=T0,
                                    boomerang_at=T0 + timedelta(days=10))
    still_open = make_conversation(seeded, status="open", contact_email="o@example.org")

    assert run(seeded, auto_close, T0 + timedelta(days=4) - timedelta(seconds=1), cfg) == {"closed": 0}
    assert run(seeded, auto_close, T0 + timedelta(days=4), cfg) == {"closed": 1}
    assert status(seeded, old)["status"] == "closed"
    assert [status(seeded, i)["status"] for i in (touched, boomeranged, still_open)] == [
        "resolved", "resolved", "open"]
    assert [(e["conversation_id"], e["data"]) for e in events(seeded, "auto_closed")] == [
        (old, {"after_s": 4 * 86400})]
    assert run(seeded, auto_close, T0 + timedelta(days=5), cfg) == {"closed": 1}  # `touched`
    assert run(seeded, auto_close, T0 + timedelta(days=6), cfg) == {"closed": 0}
    assert len(events(seeded, "auto_closed")) == 2


def test_auto_close_after_is_configurable(seeded, cfg):
    make_conversation(seeded, status="resolved", resolved_at=T0)
    settings = with_job(cfg, "auto-close", after=timedelta(hours=1))
    assert run(seeded, auto_close, T0 + timedelta(hours=1), settings) == {"closed": 1}


# -- auto-unassign (RONA) -------------------------------------------------------------------------

def test_auto_unassign_is_off_unless_after_is_set(seeded, cfg):
    make_conversation(seeded, status="open", assignee="alice")
    assert cfg.jobs["auto-unassign"].enabled is False
    assert run(seeded, auto_unassign, T0 + timedelta(days=3), cfg) == {"unassigned": 0, "notifications": 0}


def test_auto_unassign_returns_unanswered_claims(seeded, cfg):
    settings = with_job(cfg, "auto-unassign", after=timedelta(minutes=30), enabled=True)
    silent = make_conversation(seeded, status="open", assignee="alice")
    replied = make_conversation(seeded, status="open", assignee="alice", contact_email="r@example.org",
                                last_outbound_at=T0 + timedelta(minutes=10))
    # replied, but the contact wrote again at +20m: the clock runs from that message
    again = make_conversation(seeded, status="open", assignee="bob", contact_email="a@example.org",
                              last_outbound_at=T0 + timedelta(minutes=10))
    with seeded.session() as s:
        from deskctl.models import Conversation

        s.get(Conversation, again).last_inbound_at = T0 + timedelta(minutes=20)

    assert run(seeded, auto_unassign, T0 + timedelta(minutes=29), settings)["unassigned"] == 0
    assert run(seeded, auto_unassign, T0 + timedelta(minutes=30), settings)["unassigned"] == 1
    assert status(seeded, silent) == {"status": "new", "assignee_id": None, "boomerang_at": None}
    assert status(seeded, replied)["status"] == "open"
    assert run(seeded, auto_unassign, T0 + timedelta(minutes=50), settings)["unassigned"] == 1
    assert status(seeded, again)["status"] == "new"
    assert [(e["conversation_id"], e["data"]["from_user"]) for e in events(seeded, "auto_unassigned")] == [
        (silent, "alice"), (again, "bob")]
    assert sorted(r["recipient"] for r in seeded.rows("SELECT recipient FROM outbox")) == [
        "alice@desk.example", "bob@desk.example"]
    assert run(seeded, auto_unassign, T0 + timedelta(hours=5), settings)["unassigned"] == 0


# -- the SLA sweep job under freezegun ---------------------------------------------------------

def test_sla_sweep_job_at_frozen_time(seeded, cfg):
    cid = make_conversation(seeded, assignee="alice")  # default policy: first response 4h, 24x7
    with seeded.session() as s:
        from deskctl.services.sla import deadlines as sla
        sla.refresh(s, [cid], now=T0, settings=cfg)
    with freeze_time(T0 + timedelta(hours=3)):
        assert run(seeded, sla_sweep, T0 + timedelta(hours=3), cfg)["warnings"] == 1
    with freeze_time(T0 + timedelta(hours=4)):
        assert run(seeded, sla_sweep, T0 + timedelta(hours=4), cfg)["breaches"] == 1
        assert run(seeded, sla_sweep, T0 + timedelta(hours=4), cfg)["checked"] == 0
    assert [e["data"]["target"] for e in events(seeded, "sla_breached")] == ["first_response"]
