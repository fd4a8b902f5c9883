"""The SLA engine: policy matching, deadlines in 24x7 and business hours, warnings and
breaches at the right minute (once), met targets, pauses while pending, `list --sla`."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from freezegun import freeze_time
from sqlalchemy import select

from deskctl.config import load_settings
from deskctl.models import Conversation, Outbox, SlaMark, User
from deskctl.services.conversations import events
from deskctl.services.inbound import messages, pipeline
from deskctl.services.sla import deadlines as sla
from tests.factories import T0, make_conversation

PARIS = ZoneInfo("Europe/Paris")

CONFIG = """
timezone: Europe/Paris
clock: {override: true}
business_hours:
  paris:
    timezone: Europe/Paris
    week: {mon: ["09:00-12:30", "13:30-18:00"], tue: ["09:00-18:00"], wed: ["09:00-18:00"],
           thu: ["09:00-18:00"], fri: ["09:00-18:00"], sat: [], sun: []}
    holidays: {country: FR}
    closed: ["2026-12-24"]
sla:
  warning: 0.75
  policies:
    - name: vip
      when: {vip: true}
      first_response: 30m
      next_response: 1h
      resolution: 8h
      hours: 24x7
      pause_when_pending: true
    - name: urgent-sales
      when: {priority: [urgent], group: [sales]}
      first_response: 15m
      hours: 24x7
    - name: chat
      when: {channel: [chat]}
      first_response: 5m
      next_response: 5m
      hours: 24x7
    - name: default
      first_response: 2h
      next_response: 8h
      resolution: 3d
      hours: paris
"""


@pytest.fixture
def cfg(seeded, tmp_path):
    path = tmp_path / "deskctl.yaml"
    path.write_text(textwrap.dedent(CONFIG))
    seeded.config_path = str(path)
    return load_settings(str(path), seeded.url)


def refresh(desk, ids, now, settings, sweeping=False):
    with desk.session() as s:
        return sla.refresh(s, ids, now=now, settings=settings, sweeping=sweeping)


def sweep(desk, now, settings):
    with desk.session() as s:
        return sla.sweep(s, now=now, settings=settings)


def conv(desk, cid) -> Conversation:
    with desk.session() as s:
        return s.get(Conversation, cid)


def sla_events(desk, cid=None):
    sql = "SELECT conversation_id, kind, data FROM events WHERE kind IN ('sla_warning', 'sla_breached')"
    rows = desk.rows(sql + " ORDER BY id")
    out = []
    for r in rows:
        data = r["data"]
        if isinstance(data, str):
            import json

            data = json.loads(data)
        if cid is None or r["conversation_id"] == cid:
            out.append((r["conversation_id"], r["kind"], data["target"]))
    return out


def make_vip(desk, **kw) -> int:
    return make_conversation(desk, contact_email="ceo@bigcorp.example", **kw)


def set_vip(desk, email="ceo@bigcorp.example"):
    from deskctl.models import Contact

    with desk.session() as s:
        s.scalar(select(Contact).where(Contact.email == email)).vip = True


# -- policy matching ------------------------------------------------------------------------

def test_first_matching_policy_wins(seeded, cfg):
    a = make_vip(seeded, group="billing")
    set_vip(seeded)
    b = make_conversation(seeded, group="sales", priority="urgent", contact_email="x@example.org")
    c = make_conversation(seeded, group="sales", priority="high", channel="chat", contact_email="y@example.org")
    d = make_conversation(seeded, group="billing", priority="urgent", contact_email="z@example.org")
    e = make_vip(seeded, group="sales", priority="urgent", channel="chat")
    refresh(seeded, [a, b, c, d, e], T0, cfg)
    assert [conv(seeded, i).sla_policy for i in (a, b, c, d, e)] == ["vip", "urgent-sales", "chat", "default", "vip"]
    assert conv(seeded, b).resolution_due is None  # that policy has no resolution target
    assert conv(seeded, b).first_response_due == T0 + timedelta(minutes=15)


def test_no_matching_policy_means_state_none(seeded, tmp_path):
    path = tmp_path / "only-vip.yaml"
    path.write_text("sla:\n  policies:\n    - {name: vip, when: {vip: true}, first_response: 1h}\n")
    settings = load_settings(str(path), seeded.url)
    cid = make_conversation(seeded)
    refresh(seeded, [cid], T0, settings)
    c = conv(seeded, cid)
    assert (c.sla_policy, c.sla_state, c.first_response_due, c.sla_next_check_at) == (None, "none", None, None)


# -- 24x7: warning and breach at the right minute ---------------------------------------------

def test_24x7_warning_and_breach_at_the_right_minute_once(seeded, cfg):
    cid = make_vip(seeded, assignee="alice", group="billing")
    set_vip(seeded)
    refresh(seeded, [cid], T0, cfg)
    c = conv(seeded, cid)
    assert c.sla_policy == "vip" and c.sla_state == "ok"
    assert c.first_response_due == T0 + timedelta(minutes=30)
    assert c.resolution_due == T0 + timedelta(hours=8)
    # warning at 75% of 30 minutes
    assert c.sla_next_check_at == T0 + timedelta(minutes=22, seconds=30)

    assert sweep(seeded, T0 + timedelta(minutes=22), cfg)["checked"] == 0
    assert sla_events(seeded) == []
    counts = sweep(seeded, T0 + timedelta(minutes=22, seconds=30), cfg)
    assert counts["warnings"] == 1 and counts["breaches"] == 0
    assert sla_events(seeded) == [(cid, "sla_warning", "first_response")]
    assert conv(seeded, cid).sla_state == "warning"
    assert conv(seeded, cid).sla_next_check_at == T0 + timedelta(minutes=30)

    assert sweep(seeded, T0 + timedelta(minutes=29, seconds=59), cfg)["checked"] == 0
    counts = sweep(seeded, T0 + timedelta(minutes=30), cfg)
    assert counts["breaches"] == 1
    assert sla_events(seeded) == [(cid, "sla_warning", "first_response"), (cid, "sla_breached", "first_response")]
    c = conv(seeded, cid)
    assert c.sla_state == "breached"
    # next: the resolution warning at 6h
    assert c.sla_next_check_at == T0 + timedelta(hours=6)

    # Reruns and later refreshes never record the same level twice.
    for minutes in (30, 31, 45):
        sweep(seeded, T0 + timedelta(minutes=minutes), cfg)
    refresh(seeded, [cid], T0 + timedelta(minutes=50), cfg)
    assert len(sla_events(seeded)) == 2

    # The assignee is notified, once per level.
    rows = seeded.rows("SELECT dedupe_key, recipient FROM outbox ORDER BY id")
    assert [r["recipient"] for r in rows] == ["alice@desk.example", "alice@desk.example"]
    assert rows[1]["dedupe_key"] == f"sla_breached:{cid}:first_response:user:" + str(
        seeded.scalar("SELECT id FROM users WHERE handle='alice'"))

    seeded.now = (T0 + timedelta(minutes=50)).isoformat()  # the SLA is read at this time
    record = seeded.json("show", str(cid))
    record = record[0] if isinstance(record, list) else record
    assert record["sla"]["policy"] == "vip"
    assert record["sla"]["state"] == "breached"
    assert record["sla"]["breached"] == ["first_response"]
    assert record["sla"]["first_response_due"].startswith("2026-11-20T09:30:00")


def test_unassigned_breach_notifies_group_supervisors(seeded, cfg):
    cid = make_vip(seeded, group="billing")
    set_vip(seeded)
    refresh(seeded, [cid], T0, cfg)
    sweep(seeded, T0 + timedelta(minutes=31), cfg)
    with seeded.session() as s:
        recipients = sorted(s.scalars(select(Outbox.recipient)))
        carol = s.scalar(select(User).where(User.handle == "carol"))
    # carol supervises billing; jumping straight to breached records only the breach
    assert recipients == ["carol@desk.example"]
    assert sla_events(seeded) == [(cid, "sla_breached", "first_response")]
    assert carol.role == "supervisor"
    assert {(m["target"], m["level"]) for m in seeded.rows("SELECT target, level FROM sla_marks")} == {
        ("first_response", "warning"), ("first_response", "breached")}


# -- business hours: across a weekend and a holiday --------------------------------------------

def paris(*args):
    return datetime(*args, tzinfo=PARIS).astimezone(UTC)


def test_business_calendar_across_weekend_and_holiday(seeded, cfg):
    created = paris(2026, 12, 23, 17, 0)  # Wednesday 17:00; Thu 24 closed, Fri 25 Christmas, weekend
    cid = make_conversation(seeded, assignee="alice", created_at=created)
    refresh(seeded, [cid], created, cfg)
    c = conv(seeded, cid)
    assert c.sla_policy == "default"
    # 2h of open time: 1h on Wednesday, then Monday 09:00-10:00
    assert c.first_response_due == paris(2026, 12, 28, 10, 0)
    # warning at 1h30 of open time: Monday 09:30
    assert c.sla_next_check_at == paris(2026, 12, 28, 9, 30)

    for moment in (paris(2026, 12, 24, 12, 0), paris(2026, 12, 25, 17, 0), paris(2026, 12, 27, 23, 59),
                   paris(2026, 12, 28, 9, 29)):
        assert sweep(seeded, moment, cfg)["checked"] == 0
    assert sweep(seeded, paris(2026, 12, 28, 9, 30), cfg)["warnings"] == 1
    assert sweep(seeded, paris(2026, 12, 28, 9, 59), cfg)["checked"] == 0
    assert sweep(seeded, paris(2026, 12, 28, 10, 0), cfg)["breaches"] == 1
    assert sla_events(seeded, cid) == [(cid, "sla_warning", "first_response"),
                                       (cid, "sla_breached", "first_response")]


def test_list_filters_by_sla_state(seeded, cfg):
    late = make_vip(seeded, group="billing", subject="late")
    set_vip(seeded)
    warn = make_conversation(seeded, channel="chat", contact_email="w@example.org", subject="warn",
                             created_at=T0 + timedelta(minutes=56))
    fine = make_conversation(seeded, contact_email="f@example.org", subject="fine", created_at=T0 + timedelta(hours=1))
    refresh(seeded, [late, warn, fine], T0 + timedelta(hours=1), cfg)
    seeded.now = (T0 + timedelta(hours=1)).isoformat()
    ids = lambda state: [r["id"] for r in seeded.json("list", "--sla", state)]  # noqa: E731
    assert ids("breached") == [late]
    assert ids("ok") == [fine]
    assert ids("warning") == [warn]
    assert ids("ok,warning") == [warn, fine]
    assert seeded.run("list", "--sla", "late").exit_code == 2


# -- met targets, late replies, next response ----------------------------------------------------

def reply(desk, cid, now, settings, handle="alice"):
    with desk.session() as s:
        c = s.get(Conversation, cid)
        uid = s.scalar(select(User.id).where(User.handle == handle))
        messages.add_outbound(s, c, now=now, settings=settings, author_user_id=uid, actor=handle, text="Hi")


def inbound(desk, cid, now, settings):
    with desk.session() as s:
        c = s.get(Conversation, cid)
        pipeline.store(s, [pipeline.Incoming(kind=pipeline.AGENT, channel=c.channel, external_id=None, text="More",
                                             at=now, conversation_id=cid, contact_id=c.contact_id)],
                       now=now, settings=settings, source="test")


def test_met_targets_never_breach(seeded, cfg):
    cid = make_conversation(seeded, channel="chat", assignee="alice", contact_email="c@example.org")
    refresh(seeded, [cid], T0, cfg)
    reply(seeded, cid, T0 + timedelta(minutes=4), cfg)
    c = conv(seeded, cid)
    assert c.sla_state == "ok" and c.sla_next_check_at is None and c.next_response_due is None
    for minutes in (5, 6, 60, 60 * 24):
        sweep(seeded, T0 + timedelta(minutes=minutes), cfg)
    assert sla_events(seeded) == []
    assert conv(seeded, cid).sla_state == "ok"


def test_next_response_runs_from_first_unanswered_message(seeded, cfg):
    cid = make_conversation(seeded, channel="chat", assignee="alice", contact_email="c@example.org")
    refresh(seeded, [cid], T0, cfg)
    reply(seeded, cid, T0 + timedelta(minutes=1), cfg)
    inbound(seeded, cid, T0 + timedelta(minutes=10), cfg)
    inbound(seeded, cid, T0 + timedelta(minutes=12), cfg)  # a second message does not restart the clock
    c = conv(seeded, cid)
    assert c.next_response_due == T0 + timedelta(minutes=15)
    assert sweep(seeded, T0 + timedelta(minutes=15), cfg)["breaches"] == 1
    assert sla_events(seeded) == [(cid, "sla_breached", "next_response")]
    reply(seeded, cid, T0 + timedelta(minutes=16), cfg)
    c = conv(seeded, cid)
    assert c.next_response_due is None and c.sla_state == "breached" and c.sla_next_check_at is None


def test_late_reply_is_recorded_as_a_breach_once(seeded, cfg):
    cid = make_conversation(seeded, channel="chat", assignee="alice", contact_email="c@example.org")
    refresh(seeded, [cid], T0, cfg)
    # no sweep ran (daemon down); the reply comes after the due time
    reply(seeded, cid, T0 + timedelta(minutes=7), cfg)
    assert sla_events(seeded) == [(cid, "sla_breached", "first_response")]
    assert conv(seeded, cid).sla_state == "breached"
    sweep(seeded, T0 + timedelta(minutes=8), cfg)
    refresh(seeded, [cid], T0 + timedelta(minutes=9), cfg)
    assert len(sla_events(seeded)) == 1


def test_resolved_and_closed_conversations_stop_the_clocks(seeded, cfg):
    cid = make_conversation(seeded, assignee="alice", status="resolved", resolved_at=T0 + timedelta(minutes=5))
    refresh(seeded, [cid], T0 + timedelta(minutes=5), cfg)
    c = conv(seeded, cid)
    assert c.sla_next_check_at is None and c.sla_state == "ok"
    sweep(seeded, T0 + timedelta(days=10), cfg)
    assert sla_events(seeded) == []


# -- pause while pending ----------------------------------------------------------------------

def test_resolution_pauses_while_pending(seeded, cfg):
    cid = make_vip(seeded, assignee="alice")
    set_vip(seeded)
    refresh(seeded, [cid], T0, cfg)
    reply(seeded, cid, T0 + timedelta(minutes=10), cfg)
    assert conv(seeded, cid).resolution_due == T0 + timedelta(hours=8)
    # pending at +1h ...
    with seeded.session() as s:
        c = s.get(Conversation, cid)
        c.status, c.pending_since = "pending", T0 + timedelta(hours=1)
        events.record(s, conversation_id=cid, actor="alice", kind="pending", at=T0 + timedelta(hours=1),
                      data={"until": None, "note": None})
        sla.refresh(s, [cid], now=T0 + timedelta(hours=1), settings=cfg)
    c = conv(seeded, cid)
    assert c.resolution_due is None and c.sla_next_check_at is None
    assert sweep(seeded, T0 + timedelta(hours=9), cfg)["checked"] == 0
    # ... until the contact replies at +4h: 3h paused
    inbound(seeded, cid, T0 + timedelta(hours=4), cfg)
    c = conv(seeded, cid)
    assert c.status == "new"
    assert c.sla_paused_s == 3 * 3600
    assert c.resolution_due == T0 + timedelta(hours=11)
    assert c.next_response_due == T0 + timedelta(hours=5)


def test_pending_without_trail_uses_pending_since(seeded, cfg):
    cid = make_vip(seeded, status="pending", pending_since=T0 + timedelta(hours=1))
    set_vip(seeded)
    refresh(seeded, [cid], T0 + timedelta(hours=2), cfg)
    assert conv(seeded, cid).resolution_due is None


# -- set-based ---------------------------------------------------------------------------------

def test_refresh_many_conversations_in_bulk(seeded, cfg):
    from deskctl.models import Message

    with seeded.session() as s:
        group_id = s.scalar(select(Conversation.group_id).limit(1))
        rows = [Conversation(subject=f"c{i}", channel="email", status="new", priority="low", group_id=group_id,
                             created_at=T0, updated_at=T0, first_inbound_at=T0, last_inbound_at=T0)
                for i in range(4500)]
        s.add_all(rows)
        s.flush()
        ids = [r.id for r in rows]
        s.add_all(Message(conversation_id=i, direction="inbound", channel="email", text="x", created_at=T0,
                          cc=[], bcc=[]) for i in ids[:10])
    counts = refresh(seeded, ids, T0, cfg)
    assert counts["refreshed"] == 4500
    with freeze_time(T0 + timedelta(days=30)):  # the sweep does not read the wall clock
        counts = sweep(seeded, T0 + timedelta(days=30), cfg)
    assert counts["checked"] == 4500 and counts["breaches"] == 9000  # first response + resolution
    assert seeded.scalar("SELECT count(*) FROM conversations WHERE sla_state = 'breached'") == 4500
    assert seeded.scalar("SELECT count(*) FROM events WHERE kind = 'sla_breached'") == 9000
    assert seeded.scalar("SELECT count(*) FROM sla_marks") == 18000
    # the same again changes nothing
    counts = refresh(seeded, ids, T0 + timedelta(days=31), cfg, sweeping=True)
    assert counts["breaches"] == 0
    assert sweep(seeded, T0 + timedelta(days=31), cfg)["checked"] == 0
    with seeded.session() as s:
        assert s.scalar(select(SlaMark).limit(1)) is not None


def test_describe_for_tables():
    now = T0
    assert sla.describe({"state": "ok", "first_response_due": T0 + timedelta(hours=2, minutes=10)}, now) \
        == "2h10m left"
    assert sla.describe({"state": "breached", "late_s": 35 * 60}, now) == "late 35m"
    assert sla.describe({"state": "ok", "outcome": "met", "first_response_due": T0 - timedelta(hours=1)}, now) == "met"
    assert sla.describe({"state": "breached", "outcome": "late", "late_s": 7200}, now) == "late 2h"
    assert sla.describe({"state": "breached", "outcome": "late", "late_s": None}, now) == "late"
    assert sla.describe({"state": "none"}, now) == ""
    assert [sla.compact_duration(s) for s in (0, 45, 3600, 3 * 86400 + 4 * 3600 + 60)] == ["0s", "45s", "1h", "3d4h"]


def test_pause_trail_query_walks_the_conversation_index_without_statistics(desk):
    """Without ANALYZE statistics SQLite preferred the (kind, at) index for the pause
    trail and walked every closed event of the desk (0.45 s for 2,000 ids at 100k);
    `not_indexed` keeps it on (conversation_id, id) whatever the statistics."""
    if desk.engine_name != "sqlite":
        pytest.skip("the plan choice is SQLite's; PostgreSQL plans from its statistics")
    stmt = sla._pause_events_select([1, 2, 3]).compile(
        dialect=desk.engine.dialect, compile_kwargs={"render_postcompile": True})
    with desk.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'").scalar() == 0
        plan = " ".join(row[-1] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + stmt.string,
                                                               tuple(stmt.params[k] for k in stmt.positiontup)))
    assert "ix_events_conversation_id_id" in plan
    assert "ix_events_kind_at" not in plan


def test_bulk_resolve_and_close_freeze_the_sla_as_a_full_refresh_would(seeded, cfg):
    """`sla.stop` (the set-based path for running conversations that stop) must leave
    exactly what `sla.refresh` computes: on time, late, answered, unanswered, VIP."""
    on_time = make_conversation(seeded, assignee="alice", status="open", created_at=T0)
    late = make_conversation(seeded, assignee="alice", status="open", created_at=T0 - timedelta(days=30),
                             contact_email="late@example.org")
    answered = make_conversation(seeded, assignee="alice", status="open", created_at=T0,
                                 contact_email="answered@example.org")
    vip = make_vip(seeded, assignee="alice", status="new", created_at=T0 - timedelta(hours=9))
    set_vip(seeded)
    ids = [on_time, late, answered, vip]
    refresh(seeded, ids, T0 + timedelta(minutes=5), cfg)
    env = {"DESKCTL_CONFIG": seeded.config_path}
    seeded.now = (T0 + timedelta(minutes=10)).isoformat()
    seeded.ok("reply", answered, "On it", as_="alice", env=env)
    seeded.now = (T0 + timedelta(hours=1)).isoformat()
    seeded.ok("resolve", on_time, late, as_="alice", env=env)
    seeded.ok("close", answered, vip, "--tag", "done", as_="alice", env=env)
    columns = "sla_policy, sla_state, first_response_due, next_response_due, resolution_due, sla_next_check_at"
    frozen = seeded.rows(f"SELECT id, {columns} FROM conversations ORDER BY id")
    marks = seeded.rows("SELECT conversation_id, target, level FROM sla_marks ORDER BY 1, 2, 3")
    assert {(m["conversation_id"], m["target"], m["level"]) for m in marks} >= {
        (late, "resolution", "breached"), (vip, "resolution", "breached")}
    assert [r["sla_state"] for r in frozen] == ["ok", "breached", "ok", "breached"]
    assert all(r["sla_next_check_at"] is None and r["next_response_due"] is None for r in frozen)
    refresh(seeded, ids, T0 + timedelta(hours=1), cfg)
    assert seeded.rows(f"SELECT id, {columns} FROM conversations ORDER BY id") == frozen
    assert seeded.rows("SELECT conversation_id, target, level FROM sla_marks ORDER BY 1, 2, 3") == marks
    # late and vip: resolution past due, and a first response never given past its due time
    assert sorted(sla_events(seeded)) == [(late, "sla_breached", "first_response"), (late, "sla_breached", "resolution"),
                                          (vip, "sla_breached", "first_response"), (vip, "sla_breached", "resolution")]
