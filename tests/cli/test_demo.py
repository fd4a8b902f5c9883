"""`deskctl demo`: a realistic desk, deterministic for a seed, consistent with the data
conventions the other commands read (events, SLA columns, statuses), and safe to run."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from deskctl.models import Contact, Conversation, Event, GroupMember, Message, Note, User

NOW = "2026-11-23T12:00:00+00:00"
N = 400


@pytest.fixture
def demo(desk):
    desk.now = NOW
    result = desk.run("demo", "--conversations", N, "--seed", "7", fmt="json")
    assert result.exit_code == 0, result
    desk.counts = {row["table"]: row["rows"] for row in result.json()}
    return desk


def test_counts_printed_match_the_database(demo):
    counts = demo.counts
    assert counts["conversations"] == N
    for table in ("conversations", "messages", "notes", "events", "contacts", "users"):
        assert demo.scalar(f"SELECT count(*) FROM {table}") == counts[table], table
    assert demo.scalar("SELECT count(*) FROM conversation_tags") == counts["tags"]
    assert counts["users"] >= 24 and counts["messages"] > N and counts["events"] > 3 * N


def test_directory_has_the_fixed_users_locations_groups_and_vips(demo):
    with demo.session() as s:
        users = {u.handle: u for u in s.scalars(select(User))}
        assert users["admin"].role == "admin"
        assert users["alice"].role == "agent"
        agents = [u for u in users.values() if u.role == "agent"]
        supervisors = [u for u in users.values() if u.role == "supervisor"]
        assert len(agents) >= 20 and len(supervisors) >= 2
        assert s.scalar(select(Contact.id).where(Contact.vip.is_(True)).limit(1)) is not None
        alice_groups = set(s.scalars(select(GroupMember.group_id).where(GroupMember.user_id == users["alice"].id)))
    groups = {row["name"]: row for row in demo.json("group", "list", as_="admin")}
    assert {"billing", "support", "sales", "tech"} <= set(groups)
    assert len({row["name"] for row in demo.json("location", "list", as_="admin")}) >= 3
    billing_id = demo.scalar("SELECT id FROM groups WHERE name = 'billing'")
    assert billing_id in alice_groups


def test_alice_has_several_conversations_that_are_not_closed(demo):
    rows = demo.json("list", "--assignee", "alice", "--status", "new,open,pending,resolved", as_="admin")
    assert len(rows) >= 3
    assert all(r["assignee"] == "alice" for r in rows)
    assert any(r["group"] == "billing" for r in rows)


def test_conversations_span_30_days_all_channels_and_statuses(demo):
    now = datetime.fromisoformat(NOW)
    with demo.session() as s:
        convs = list(s.scalars(select(Conversation)))
    assert len(convs) == N
    assert all(now - timedelta(days=30) <= c.created_at <= now for c in convs)
    assert max(c.created_at for c in convs) - min(c.created_at for c in convs) > timedelta(days=25)
    assert {c.channel for c in convs} == {"email", "chat", "sms", "social", "web", "phone"}
    statuses = Counter(c.status for c in convs)
    assert set(statuses) == {"new", "open", "pending", "resolved", "closed"}, statuses
    assert statuses["closed"] > N // 2  # most of a month's work is done
    assert {c.priority for c in convs} == {"low", "medium", "high", "urgent"}
    for c in convs:
        assert c.first_inbound_at == c.created_at and c.last_inbound_at >= c.created_at
        assert c.updated_at >= c.created_at
        if c.status == "closed":
            assert c.closed_at and c.resolved_at == c.closed_at and c.reason
            assert c.first_response_at and c.first_response_at > c.first_inbound_at
        if c.status == "open":
            assert c.assignee_id is not None and c.claimed_at is not None
        if c.boomerang_at is not None:
            assert c.status in ("pending", "resolved") and c.boomerang_at > now
        if c.csat is not None:
            assert 1 <= c.csat <= 5 and c.status == "closed"
        assert c.sla_policy == "default" and c.first_response_due == c.created_at + timedelta(hours=4)
        assert c.sla_state in ("ok", "warning", "breached")
        if c.sla_next_check_at is not None:
            assert c.sla_next_check_at > now and c.status not in ("resolved", "closed")
    assert any(c.csat is not None for c in convs)
    assert any(c.status == "pending" and c.boomerang_at is not None for c in convs) or N < 200


def test_events_follow_the_data_conventions(demo):
    with demo.session() as s:
        events = list(s.scalars(select(Event)))
        convs = {c.id: c for c in s.scalars(select(Conversation))}
        messages = {m.id: m for m in s.scalars(select(Message))}
        notes = {n.id: n for n in s.scalars(select(Note))}
    kinds = Counter(e.kind for e in events)
    for kind in ("created", "message_in", "message_out", "claimed", "transferred", "pending", "resolved",
                 "closed", "note_added", "boomerang_returned", "reopened"):
        assert kinds[kind] > 0, kind
    assert kinds["created"] == N
    assert kinds["closed"] == sum(1 for c in convs.values() if c.status == "closed")
    for e in events:
        assert e.conversation_id in convs and e.at <= datetime.fromisoformat(NOW)
        if e.kind == "created":
            assert e.data == {"channel": convs[e.conversation_id].channel, "source": "demo"}
        elif e.kind in ("message_in", "message_out"):
            message = messages[e.data["message_id"]]
            assert message.conversation_id == e.conversation_id and message.created_at == e.at
            assert message.direction == ("inbound" if e.kind == "message_in" else "outbound")
        elif e.kind == "transferred":
            assert set(e.data) == {"from_user", "to_user", "from_group", "to_group", "reason", "note_id"}
            assert e.data["from_group"] != e.data["to_group"] and e.actor == e.data["from_user"]
            assert notes[e.data["note_id"]].event_id == e.id
        elif e.kind == "pending":
            assert set(e.data) == {"until", "note"}
        elif e.kind == "closed":
            assert set(e.data) == {"status", "tags", "reason", "csat"}
            conv = convs[e.conversation_id]
            assert e.data["status"] == "closed" and e.data["reason"] == conv.reason
            assert e.data["csat"] == conv.csat and e.data["tags"]
        elif e.kind == "boomerang_returned":
            assert e.actor == "system" and e.data["previous_status"] == "pending"
        elif e.kind in ("sla_warning", "sla_breached"):
            assert set(e.data) == {"target", "due"}
    closed_tags = {e.conversation_id: sorted(e.data["tags"]) for e in events if e.kind == "closed"}
    rows = demo.rows("SELECT conversation_id, tag FROM conversation_tags")
    by_conv: dict = {}
    for row in rows:
        by_conv.setdefault(row["conversation_id"], []).append(row["tag"])
    assert {k: sorted(v) for k, v in by_conv.items()} == closed_tags


def test_the_demo_desk_passes_the_integrity_checks(demo):
    result = demo.run("db", "check", as_="admin", fmt="json")
    assert result.exit_code == 0, result
    assert all(row["problems"] == 0 for row in result.json())


def _snapshot(url):
    """Every demo table read back through the models' types (engine-independent)."""
    from sqlalchemy.orm import Session

    from deskctl.db.engine import make_engine
    from deskctl.models import ConversationTag, NoteVersion, SlaMark, Watcher

    engine = make_engine(url)
    out = {}
    with Session(engine) as s:
        for model in (User, Contact, Conversation, Message, Note, NoteVersion, Event, ConversationTag, Watcher,
                      SlaMark):
            table = model.__table__
            rows = s.execute(select(table).order_by(*table.primary_key.columns)).all()
            out[table.name] = [tuple(r) for r in rows]
    engine.dispose()
    return out


def test_same_seed_same_desk_on_every_engine_and_another_seed_differs(demo, tmp_path):
    other = tmp_path / "other.db"
    env = {"DESKCTL_DATABASE_URL": f"sqlite:///{other}", "DESKCTL_NOW": NOW}
    assert demo.run("demo", "--conversations", N, "--seed", "7", env=env).exit_code == 0
    mine, theirs = _snapshot(demo.url), _snapshot(f"sqlite:///{other}")
    for table in mine:
        assert mine[table] == theirs[table], table

    third = tmp_path / "third.db"
    env = {"DESKCTL_DATABASE_URL": f"sqlite:///{third}", "DESKCTL_NOW": NOW}
    assert demo.run("demo", "--conversations", N, "--seed", "8", env=env).exit_code == 0
    assert _snapshot(f"sqlite:///{third}")["conversations"] != mine["conversations"]


def test_refuses_a_database_that_has_conversations(demo):
    before = demo.dump()
    result = demo.run("demo", "--conversations", "10")
    assert result.exit_code == 4
    assert "already has 400 conversations" in result.stderr and "--force" in result.stderr
    assert demo.dump() == before


def test_force_adds_conversations_and_needs_an_admin(demo):
    before = demo.dump()
    result = demo.run("demo", "--conversations", "10", "--force", as_="alice")
    assert result.exit_code == 5
    assert demo.dump() == before

    rows = demo.json("demo", "--conversations", "50", "--seed", "9", "--force", as_="admin")
    counts = {row["table"]: row["rows"] for row in rows}
    assert counts["conversations"] == 50 and counts["users"] == 0 and counts["groups"] == 0
    assert demo.scalar("SELECT count(*) FROM conversations") == N + 50
    assert demo.scalar("SELECT count(*) FROM users") == demo.counts["users"]
    # ids keep growing after explicit-id bulk inserts (PostgreSQL sequences were moved on)
    with demo.session() as s:
        event = Event(conversation_id=None, actor="admin", kind="qualified", at=datetime.now(UTC), data={})
        s.add(event)
        s.flush()
        assert event.id > demo.scalar("SELECT max(id) FROM events WHERE kind = 'created'")


def test_empty_and_bad_sizes(desk):
    desk.now = NOW
    assert desk.run("demo", "--conversations", "-1").exit_code == 2
    rows = desk.json("demo", "--conversations", "0")
    counts = {row["table"]: row["rows"] for row in rows}
    assert counts["conversations"] == 0 and counts["users"] >= 24
    assert desk.scalar("SELECT count(*) FROM conversations") == 0


def test_small_desk_still_gives_alice_open_work(desk):
    desk.now = NOW
    desk.ok("demo", "--conversations", "8", "--seed", "1")
    rows = desk.rows("SELECT c.status FROM conversations c JOIN users u ON u.id = c.assignee_id "
                     "WHERE u.handle = 'alice' AND c.status <> 'closed'")
    assert len(rows) >= 3


BUSINESS_HOURS_CONFIG = """\
business_hours:
  paris:
    timezone: Europe/Paris
    week: {mon: ["09:00-12:30", "13:30-18:00"], tue: ["09:00-18:00"], wed: ["09:00-18:00"],
           thu: ["09:00-18:00"], fri: ["09:00-17:00"], sat: [], sun: []}
    holidays: {country: FR}
sla:
  policies:
    - {name: vip, when: {vip: true}, first_response: 30m, next_response: 1h, resolution: 8h, hours: 24x7}
    - {name: urgent, when: {priority: urgent}, first_response: 1h, resolution: 1d, hours: paris,
       pause_when_pending: false}
    - {name: default, first_response: 4h, next_response: 8h, resolution: 3d, hours: paris}
"""


@pytest.mark.parametrize("config", [None, BUSINESS_HOURS_CONFIG], ids=["24x7", "business-hours"])
def test_sla_columns_and_marks_are_what_the_sla_engine_computes(desk, tmp_path, config):
    """Recomputing every conversation with services/sla.refresh changes nothing."""
    from sqlalchemy.orm import Session

    from deskctl.config import load_settings
    from deskctl.models import SlaMark
    from deskctl.services.sla import deadlines as sla
    env = {}
    config_file = None
    if config:
        config_file = tmp_path / "deskctl.yaml"
        config_file.write_text(config + "\nclock: {override: true}\n")  # a replay desk: DESKCTL_NOW
        env["DESKCTL_CONFIG"] = str(config_file)
    desk.now = NOW
    desk.ok("demo", "--conversations", "300", "--seed", "3", env=env)
    columns = [Conversation.id, Conversation.sla_policy, Conversation.sla_state, Conversation.first_response_due,
               Conversation.next_response_due, Conversation.resolution_due, Conversation.sla_next_check_at,
               Conversation.sla_paused_s]
    settings = load_settings(str(config_file) if config_file else None, desk.url)
    with Session(desk.engine) as s:
        before = s.execute(select(*columns).order_by(Conversation.id)).all()
        marks = set(s.execute(select(SlaMark.conversation_id, SlaMark.target, SlaMark.level)).all())
        assert {row.sla_state for row in before} >= {"ok", "breached"}
        if config:
            assert {row.sla_policy for row in before} == {"vip", "urgent", "default"}
        counts = sla.refresh(s, [row.id for row in before], now=datetime.fromisoformat(NOW), settings=settings)
        s.flush()
        after = s.execute(select(*columns).order_by(Conversation.id)).all()
        assert counts["breaches"] == counts["warnings"] == 0
        assert [tuple(r) for r in after] == [tuple(r) for r in before]
        assert set(s.execute(select(SlaMark.conversation_id, SlaMark.target, SlaMark.level)).all()) == marks
        s.rollback()
