"""`deskctl report KIND`: every number of every kind on a small desk with known
timestamps, on SQLite and PostgreSQL; CSV/TSV/JSON parsed back; columns in SPEC §6 order."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from deskctl.models import Event, User
from tests.factories import make_conversation

# SPEC §6, in order, after the key column.
SPEC_COLUMNS = {
    "volume": ["created", "resolved", "closed", "reopened", "backlog_end"],
    "sla": ["conversations", "first_response_met", "first_response_breached", "first_response_pct",
            "resolution_met", "resolution_breached", "resolution_pct", "median_first_response_s",
            "p90_first_response_s"],
    "agents": ["claimed", "transferred_in", "transferred_out", "replies", "resolved", "closed", "median_handle_s",
               "offered", "declined", "rona"],
    "tags": ["conversations", "median_handle_s", "mean_handle_s"],
    "csat": ["rated", "mean_csat", "pct_4_or_5"],
    "backlog": ["new", "open", "pending", "resolved", "breached"],
    "conversations": ["subject", "channel", "group", "assignee", "status", "priority", "tags", "reason",
                      "created_at", "first_response_s", "handle_s", "csat", "sla_breached"],
}
PERIOD = ("--since", "2026-11-16", "--until", "2026-11-23")
DAYS = [f"2026-11-{d}" for d in range(16, 23)]


def at(text: str) -> datetime:
    """'11-16 10:00' → 2026-11-16 10:00 UTC."""
    return datetime.strptime(f"2026-{text}", "%Y-%m-%d %H:%M").replace(tzinfo=UTC)


def add_events(desk, cid: int, *events) -> None:
    with desk.session() as s:
        for when, actor, kind, data in events:
            s.add(Event(conversation_id=cid, at=at(when), actor=actor, kind=kind, data=data))


def set_assignee(desk, cid: int, handle: str) -> None:
    from deskctl.models import Conversation

    with desk.session() as s:
        conv = s.get(Conversation, cid)
        conv.assignee_id = s.scalar(select(User.id).where(User.handle == handle))


def build_desk(desk) -> dict[str, int]:
    """Ten conversations; the comments give what each one contributes."""
    ids = {}
    # C1: billing/email/alice, created 16th 10:00, answered in 30 min, closed 12:00 (handle 2h), csat 5.
    ids["c1"] = make_conversation(
        desk, subject="Invoice 1", group="billing", assignee="alice", channel="email", tags=("billing-q",),
        created_at=at("11-16 10:00"), first_response_at=at("11-16 10:30"), resolved_at=at("11-16 12:00"),
        closed_at=at("11-16 12:00"), status="closed", csat=5, reason="invoice")
    add_events(desk, ids["c1"], ("11-16 10:05", "alice", "claimed", {}),
               ("11-16 10:30", "alice", "message_out", {"message_id": 1}),
               ("11-16 12:00", "alice", "closed", {"status": "closed", "tags": ["billing-q"], "reason": "invoice",
                                                   "csat": 5}))
    # C2: support/chat/bob, created 17th 08:00, answered in 10 min, resolved 09:00 (handle 1h), csat 2.
    ids["c2"] = make_conversation(
        desk, subject="Refund", group="support", assignee="bob", channel="chat", tags=("refund", "billing-q"),
        contact_email="max@example.fr", created_at=at("11-17 08:00"), first_response_at=at("11-17 08:10"),
        resolved_at=at("11-17 09:00"), status="resolved", csat=2)
    add_events(desk, ids["c2"], ("11-17 08:01", "bob", "claimed", {}),
               ("11-17 08:10", "bob", "message_out", {"message_id": 2}),
               ("11-17 09:00", "bob", "resolved", {"until": None}))
    # C3: billing/email, claimed by bob, transferred to alice, answered after 4h: first-response breach.
    ids["c3"] = make_conversation(
        desk, subject="Late", group="billing", assignee="alice", channel="email", created_at=at("11-17 09:00"),
        first_response_at=at("11-17 13:00"), status="open")
    add_events(desk, ids["c3"], ("11-17 09:05", "bob", "claimed", {}),
               ("11-17 09:10", "bob", "transferred", {"from_user": "bob", "to_user": "alice",
                                                      "from_group": "billing", "to_group": "billing",
                                                      "reason": None, "note_id": None}),
               ("11-17 12:00", "system", "sla_breached", {"target": "first_response", "due": "x"}),
               ("11-17 13:00", "alice", "message_out", {"message_id": 3}))
    # C4: sales/sms/dave, resolved 18th, reopened by the contact 19th, closed 19th 10:00 (handle 24h), csat 4.
    ids["c4"] = make_conversation(
        desk, subject="Order", group="sales", assignee="dave", channel="sms", tags=("refund",),
        contact_email="zoe@example.fr", created_at=at("11-18 10:00"), first_response_at=at("11-18 10:20"),
        resolved_at=at("11-19 10:00"), closed_at=at("11-19 10:00"), status="closed", csat=4)
    add_events(desk, ids["c4"], ("11-18 10:01", "dave", "claimed", {}),
               ("11-18 10:20", "dave", "message_out", {"message_id": 4}),
               ("11-18 11:00", "dave", "resolved", {"until": None}),
               ("11-19 09:00", "system", "reopened", {"previous_status": "resolved", "cause": "contact_reply"}),
               ("11-19 09:30", "dave", "message_out", {"message_id": 5}),
               ("11-19 10:00", "dave", "closed", {"status": "closed", "tags": ["refund"], "reason": None,
                                                  "csat": 4}))
    # C5: billing/email, unassigned, never answered, breached.
    ids["c5"] = make_conversation(desk, subject="Nobody", group="billing", created_at=at("11-20 09:00"),
                                  status="new", sla_state="breached")
    add_events(desk, ids["c5"], ("11-20 13:00", "system", "sla_breached", {"target": "first_response", "due": "x"}))
    # C6: support, created before the period, pending now.
    ids["c6"] = make_conversation(desk, subject="Old", group="support", assignee="bob",
                                  created_at=at("11-10 09:00"), first_response_at=at("11-10 10:00"),
                                  status="pending")
    # C7: billing/alice, created before the period, resolution breached before it, closed 21st 15:00, csat 1.
    ids["c7"] = make_conversation(
        desk, subject="Slow", group="billing", assignee="alice", tags=("billing-q",), created_at=at("11-12 09:00"),
        first_response_at=at("11-12 09:30"), resolved_at=at("11-21 15:00"), closed_at=at("11-21 15:00"),
        status="closed", csat=1)
    add_events(desk, ids["c7"], ("11-15 09:00", "system", "sla_breached", {"target": "resolution", "due": "x"}),
               ("11-21 15:00", "alice", "closed", {"status": "closed", "tags": [], "reason": None, "csat": 1}))
    # C8: support/web, claimed by bob, stolen by carol, chat session ended with close --status pending.
    ids["c8"] = make_conversation(desk, subject="Web", group="support", assignee="carol", channel="web",
                                  created_at=at("11-21 10:00"), first_response_at=at("11-21 10:15"),
                                  status="pending")
    add_events(desk, ids["c8"], ("11-21 10:05", "bob", "claimed", {}),
               ("11-21 10:15", "bob", "message_out", {"message_id": 6}),
               ("11-21 10:30", "carol", "stolen", {"from_user": "bob"}),
               ("11-21 11:00", "bob", "closed", {"status": "pending", "tags": [], "reason": None, "csat": None}))
    # C9: billing/chat/alice, resolved 22nd 21:00 (handle 1h) after a resolution breach.
    ids["c9"] = make_conversation(desk, subject="Quick", group="billing", assignee="alice", channel="chat",
                                  created_at=at("11-22 20:00"), first_response_at=at("11-22 20:05"),
                                  resolved_at=at("11-22 21:00"), status="resolved")
    add_events(desk, ids["c9"], ("11-22 20:01", "alice", "claimed", {}),
               ("11-22 20:05", "alice", "message_out", {"message_id": 7}),
               ("11-22 20:30", "system", "sla_breached", {"target": "resolution", "due": "x"}),
               ("11-22 21:00", "alice", "resolved", {"until": None}))
    # C10: after the period (sales, new), with a steal after the period too.
    ids["c10"] = make_conversation(desk, subject="Tomorrow", group="sales", created_at=at("11-23 10:00"))
    add_events(desk, ids["c10"], ("11-23 10:30", "carol", "stolen", {"from_user": None}))
    return ids


@pytest.fixture
def report_desk(seeded):
    seeded.ids = build_desk(seeded)
    seeded.now = "2026-11-23T12:00:00+00:00"
    return seeded


def report(desk, kind, *args):
    return desk.json("report", kind, *PERIOD, *args)


def by_key(rows, key):
    return {r[key]: [r[c] for c in list(r)[1:]] for r in rows}


def test_volume_by_day(report_desk):
    rows = report(report_desk, "volume")
    assert [list(r) for r in rows] == [["day", *SPEC_COLUMNS["volume"]]] * 7
    assert by_key(rows, "day") == {
        #             created resolved closed reopened backlog_end
        "2026-11-16": [1, 0, 1, 0, 2],
        "2026-11-17": [2, 1, 0, 0, 3],
        "2026-11-18": [1, 1, 0, 0, 4],
        "2026-11-19": [0, 0, 1, 1, 3],
        "2026-11-20": [1, 0, 0, 0, 4],
        "2026-11-21": [1, 0, 1, 0, 4],
        "2026-11-22": [1, 1, 0, 0, 4],
    }
    assert [r["day"] for r in rows] == DAYS


def test_volume_by_agent_week_and_month(report_desk):
    rows = report(report_desk, "volume", "--by", "agent")
    assert [r["agent"] for r in rows] == ["alice", "bob", "carol", "dave", None]
    assert by_key(rows, "agent") == {
        "alice": [3, 1, 2, 0, 1],
        "bob": [1, 1, 0, 0, 1],
        "carol": [1, 0, 0, 0, 1],
        "dave": [1, 1, 1, 1, 0],
        None: [1, 0, 0, 0, 1],
    }
    weeks = report(report_desk, "volume", "--by", "week")
    assert by_key(weeks, "week") == {"2026-11-16": [7, 3, 3, 1, 4]}
    months = report_desk.json("report", "volume", "--by", "month", "--since", "2026-10-20", "--until", "2026-11-23")
    assert by_key(months, "month") == {"2026-10-01": [0, 0, 0, 0, 0], "2026-11-01": [9, 3, 3, 1, 4]}


def test_volume_filters_restrict_every_column(report_desk):
    rows = report(report_desk, "volume", "--by", "group", "--group", "billing")
    assert by_key(rows, "group") == {"billing": [4, 1, 2, 0, 2]}
    rows = report(report_desk, "volume", "--by", "channel", "--tag", "refund")
    assert by_key(rows, "channel") == {"chat": [1, 1, 0, 0, 0], "sms": [1, 1, 1, 1, 0]}


def test_sla_by_day(report_desk):
    rows = report(report_desk, "sla")
    assert list(rows[0]) == ["day", *SPEC_COLUMNS["sla"]]
    assert by_key(rows, "day") == {
        "2026-11-16": [1, 1, 0, 100.0, 1, 0, 100.0, 1800, 1800],
        "2026-11-17": [2, 1, 1, 50.0, 1, 0, 100.0, 7500, 13020],
        "2026-11-18": [1, 1, 0, 100.0, 1, 0, 100.0, 1200, 1200],
        "2026-11-19": [0, 0, 0, None, 0, 0, None, None, None],
        "2026-11-20": [1, 0, 1, 0.0, 0, 0, None, None, None],
        "2026-11-21": [1, 1, 0, 100.0, 0, 0, None, 900, 900],
        "2026-11-22": [1, 1, 0, 100.0, 0, 1, 0.0, 300, 300],
    }


def test_sla_by_group_and_tag(report_desk):
    rows = report(report_desk, "sla", "--by", "group")
    assert by_key(rows, "group") == {
        "billing": [4, 2, 2, 50.0, 1, 1, 50.0, 1800, 11880],
        "sales": [1, 1, 0, 100.0, 1, 0, 100.0, 1200, 1200],
        "support": [2, 2, 0, 100.0, 1, 0, 100.0, 750, 870],
    }
    rows = report(report_desk, "sla", "--by", "tag")
    assert by_key(rows, "tag") == {
        "billing-q": [2, 2, 0, 100.0, 2, 0, 100.0, 1200, 1680],
        "refund": [2, 2, 0, 100.0, 2, 0, 100.0, 900, 1140],
        None: [4, 2, 2, 50.0, 0, 1, 0.0, 900, 11700],
    }


def test_agents_by_agent_and_day(report_desk):
    rows = report(report_desk, "agents", "--by", "agent")
    assert list(rows[0]) == ["agent", *SPEC_COLUMNS["agents"]]
    assert by_key(rows, "agent") == {
        #        claimed in out replies resolved closed median_handle_s offered declined rona
        "alice": [2, 1, 0, 3, 1, 2, 7200, 0, 0, 0],
        "bob": [3, 0, 1, 2, 1, 0, 3600, 0, 0, 0],
        "carol": [1, 0, 0, 0, 0, 0, None, 0, 0, 0],
        "dave": [1, 0, 0, 2, 1, 1, 86400, 0, 0, 0],
    }
    rows = report(report_desk, "agents")
    assert by_key(rows, "day") == {
        "2026-11-16": [1, 0, 0, 1, 0, 1, 7200, 0, 0, 0],
        "2026-11-17": [2, 1, 1, 2, 1, 0, 3600, 0, 0, 0],
        "2026-11-18": [1, 0, 0, 1, 1, 0, None, 0, 0, 0],
        "2026-11-19": [0, 0, 0, 1, 0, 1, 86400, 0, 0, 0],
        "2026-11-20": [0, 0, 0, 0, 0, 0, None, 0, 0, 0],
        "2026-11-21": [2, 0, 0, 1, 0, 1, 799200, 0, 0, 0],
        "2026-11-22": [1, 0, 0, 1, 1, 0, 3600, 0, 0, 0],
    }


def test_tags_by_tag_and_day(report_desk):
    rows = report(report_desk, "tags", "--by", "tag")
    assert list(rows[0]) == ["tag", *SPEC_COLUMNS["tags"]]
    assert by_key(rows, "tag") == {
        "billing-q": [3, 7200, 270000],
        "refund": [2, 45000, 45000],
        None: [1, 3600, 3600],
    }
    rows = report(report_desk, "tags", "--by", "day")
    assert by_key(rows, "day") == {
        "2026-11-16": [1, 7200, 7200], "2026-11-17": [1, 3600, 3600], "2026-11-18": [0, None, None],
        "2026-11-19": [1, 86400, 86400], "2026-11-20": [0, None, None], "2026-11-21": [1, 799200, 799200],
        "2026-11-22": [1, 3600, 3600],
    }
    rows = report(report_desk, "tags", "--by", "group")
    assert by_key(rows, "group") == {"billing": [3, 7200, 270000], "sales": [1, 86400, 86400],
                                     "support": [1, 3600, 3600]}


def test_csat_by_day_and_location(report_desk):
    rows = report(report_desk, "csat")
    assert list(rows[0]) == ["day", *SPEC_COLUMNS["csat"]]
    assert by_key(rows, "day") == {
        "2026-11-16": [1, 5.0, 100.0], "2026-11-17": [1, 2.0, 0.0], "2026-11-18": [0, None, None],
        "2026-11-19": [1, 4.0, 100.0], "2026-11-20": [0, None, None], "2026-11-21": [1, 1.0, 0.0],
        "2026-11-22": [0, None, None],
    }
    rows = report(report_desk, "csat", "--by", "location")
    assert by_key(rows, "location") == {"lyon": [1, 4.0, 100.0], "paris": [3, 2.67, 33.3]}


def test_backlog_now_by_group_and_agent(report_desk):
    rows = report_desk.json("report", "backlog")
    assert list(rows[0]) == ["group", *SPEC_COLUMNS["backlog"]]
    assert by_key(rows, "group") == {
        "billing": [1, 1, 0, 1, 1],
        "sales": [1, 0, 0, 0, 0],
        "support": [0, 0, 2, 1, 0],
    }
    rows = report_desk.json("report", "backlog", "--by", "agent")
    assert by_key(rows, "agent") == {"alice": [0, 1, 0, 1, 0], "bob": [0, 0, 1, 1, 0], "carol": [0, 0, 1, 0, 0],
                                     None: [2, 0, 0, 0, 1]}
    rows = report(report_desk, "backlog", "--by", "day")  # by creation day, within the period
    assert by_key(rows, "day")["2026-11-17"] == [0, 1, 0, 1, 0]
    assert sum(r["new"] for r in rows) == 1 and len(rows) == 7


def test_conversations_rows(report_desk):
    ids = report_desk.ids
    rows = report(report_desk, "conversations")
    assert [list(r) for r in rows] == [["id", *SPEC_COLUMNS["conversations"]]] * 5
    assert [r["id"] for r in rows] == [ids[c] for c in ("c1", "c2", "c4", "c7", "c9")]
    first = rows[0]
    assert first == {"id": ids["c1"], "subject": "Invoice 1", "channel": "email", "group": "billing",
                     "assignee": "alice", "status": "closed", "priority": "low", "tags": ["billing-q"],
                     "reason": "invoice", "created_at": "2026-11-16T10:00:00+00:00", "first_response_s": 1800,
                     "handle_s": 7200, "csat": 5, "sla_breached": []}
    assert [(r["first_response_s"], r["handle_s"], r["csat"], r["sla_breached"], r["tags"]) for r in rows[1:]] == [
        (600, 3600, 2, [], ["billing-q", "refund"]),
        (1200, 86400, 4, [], ["refund"]),
        (1800, 799200, 1, ["resolution"], ["billing-q"]),
        (300, 3600, None, ["resolution"], []),
    ]


def test_csv_and_tsv_parse_back_with_spec_header(report_desk):
    result = report_desk.ok("report", "sla", *PERIOD, "--by", "group", fmt="csv")
    parsed = list(csv.reader(io.StringIO(result.stdout)))
    assert parsed[0] == ["group", *SPEC_COLUMNS["sla"]]
    assert parsed[1] == ["billing", "4", "2", "2", "50.0", "1", "1", "50.0", "1800", "11880"]
    assert parsed[2][0] == "sales" and parsed[3][0] == "support" and len(parsed) == 4
    result = report_desk.ok("report", "conversations", *PERIOD, fmt="tsv")
    parsed = list(csv.reader(io.StringIO(result.stdout), delimiter="\t"))
    assert parsed[0] == ["id", *SPEC_COLUMNS["conversations"]]
    assert parsed[1][1:] == ["Invoice 1", "email", "billing", "alice", "closed", "low", "billing-q", "invoice",
                             "2026-11-16T10:00:00+00:00", "1800", "7200", "5", ""]
    assert parsed[2][7] == "billing-q,refund"
    for kind in ("volume", "agents", "tags", "csat", "backlog"):
        header = report_desk.ok("report", kind, *PERIOD, fmt="csv").stdout.splitlines()[0]
        assert header.split(",")[1:] == SPEC_COLUMNS[kind]


def test_jsonl_and_ids(report_desk):
    lines = report_desk.ok("report", "volume", *PERIOD, fmt="jsonl").jsonl()
    assert [line["day"] for line in lines] == DAYS and lines[0]["created"] == 1
    ids = report_desk.ok("report", "conversations", *PERIOD, fmt="ids").stdout.split()
    assert ids == [str(report_desk.ids[c]) for c in ("c1", "c2", "c4", "c7", "c9")]


def test_table_humanises_durations_and_chart_needs_a_terminal(report_desk, monkeypatch):
    table = report_desk.ok("report", "tags", *PERIOD, "--by", "tag", fmt="table").stdout
    assert "3d 03h" in table and "2h 00m" in table and "270000" not in table
    result = report_desk.ok("report", "volume", *PERIOD, "--chart", "created", fmt="csv")
    assert "--chart ignored" in result.stderr and "█" not in result.stdout
    assert result.stdout.splitlines()[0] == "day,created,resolved,closed,reopened,backlog_end"
    from deskctl import term

    monkeypatch.setattr(term, "is_tty", lambda stream: True)
    result = report_desk.ok("report", "volume", *PERIOD, "--chart", "created", fmt="table")
    lines = result.stdout.splitlines()
    chart = {line.split("│")[0].strip(): line.split("│")[1] for line in lines if "│" in line}
    assert chart["2026-11-17"].startswith("█" * 40) and chart["2026-11-17"].endswith(" 2")
    assert chart["2026-11-16"] == "█" * 20 + " 1" and chart["2026-11-19"] == " 0"
    durations = report_desk.ok("report", "tags", *PERIOD, "--by", "tag", "--chart", "mean_handle_s",
                               fmt="table").stdout
    assert "3d 03h" in durations.split("mean_handle_s\n")[-1]


def test_timezone_periods_and_dst(seeded, tmp_path):
    config = tmp_path / "paris.yaml"
    config.write_text("timezone: Europe/Paris\nclock: {override: true}\n")
    env = {"DESKCTL_CONFIG": str(config)}
    # 22:30 UTC is 23:30 in Paris (16th), 23:30 UTC is 00:30 on the 17th.
    make_conversation(seeded, created_at=at("11-16 22:30"))
    make_conversation(seeded, created_at=at("11-16 23:30"), contact_email="b@example.fr")
    # Around the end of summer time (25 October 2026): 00:30 local on the 25th (CEST) and 26th (CET).
    make_conversation(seeded, created_at=at("10-24 22:30"), contact_email="c@example.fr")
    make_conversation(seeded, created_at=at("10-25 23:30"), contact_email="d@example.fr")
    seeded.now = "2026-11-20T12:00:00+00:00"
    rows = seeded.json("report", "volume", "--since", "2026-11-16", "--until", "2026-11-18", env=env)
    assert [(r["day"], r["created"]) for r in rows] == [("2026-11-16", 1), ("2026-11-17", 1)]
    rows = seeded.json("report", "volume", "--since", "2026-10-24", "--until", "2026-10-27", env=env)
    assert [(r["day"], r["created"]) for r in rows] == [("2026-10-24", 0), ("2026-10-25", 1), ("2026-10-26", 1)]
    utc = seeded.json("report", "volume", "--since", "2026-10-24", "--until", "2026-10-27")
    assert [(r["day"], r["created"]) for r in utc] == [("2026-10-24", 1), ("2026-10-25", 1), ("2026-10-26", 0)]
    # Default period: the last 7 days (today included) in the configured timezone.
    rows = seeded.json("report", "volume", env=env)
    assert [r["day"] for r in rows] == [f"2026-11-{d}" for d in range(14, 21)]
    assert sum(r["created"] for r in rows) == 2
    weeks = seeded.json("report", "volume", "--by", "week", "--since", "2026-10-20", "--until", "2026-11-20",
                        env=env)
    assert [(r["week"], r["created"]) for r in weeks] == [
        ("2026-10-19", 1), ("2026-10-26", 1), ("2026-11-02", 0), ("2026-11-09", 0), ("2026-11-16", 2)]


def test_bad_input_exits_2_or_3(report_desk):
    assert report_desk.run("report", "nope").exit_code == 2
    assert report_desk.run("report", "volume", "--by", "year").exit_code == 2
    bad = report_desk.run("report", "volume", "--since", "yesterdayish")
    assert bad.exit_code == 2 and "--since" in bad.stderr
    bad = report_desk.run("report", "volume", "--since", "2026-11-20", "--until", "2026-11-19")
    assert bad.exit_code == 2 and "start of the period must be before its end (--since, --until)" in bad.stderr
    bad = report_desk.run("report", "volume", "--chart", "day")
    assert bad.exit_code == 2 and "--chart" in bad.stderr
    assert report_desk.run("report", "volume", "--group", "nosuch").exit_code == 3
    assert report_desk.run("report", "volume", "--status", "weird").exit_code == 2


def test_reports_are_read_only(report_desk):
    before = report_desk.dump()
    for kind in SPEC_COLUMNS:
        report_desk.ok("report", kind, *PERIOD, fmt="json")
    assert report_desk.dump() == before


def test_help_gives_definitions_per_kind(report_desk):
    text = report_desk.ok("report", "sla", "--help").stdout
    assert "first_response_met" in text and "sla_breached" in text and "report volume" not in text
    everything = report_desk.ok("report", "--help").stdout
    for kind in SPEC_COLUMNS:
        assert f"report {kind}" in everything
    assert "handle_s" in everything and "first inbound message" in everything


def test_columns_of_each_kind_in_spec_order():
    from deskctl.services.reports import kinds as reports
    for kind, names in SPEC_COLUMNS.items():
        assert [c.name for c in reports.COLUMNS[kind]] == names


def test_columns_match_spec_text():
    """When the SPEC is at hand, its §6 table is the reference."""
    spec = next((p for p in (Path("/work/shared/SPEC.md"), Path(__file__).parents[2] / "SPEC.md") if p.is_file()),
                None)
    if spec is None:
        pytest.skip("SPEC.md not available")
    section = spec.read_text().split("## 6. Reports", 1)[1].split("## 7.", 1)[0]
    found = {}
    for line in section.splitlines():
        match = re.match(r"\| `(\w+)` \| (.*) \|$", line)
        if match:
            cells = match.group(2)
            if match.group(1) == "conversations":
                cells = cells.split(":", 1)[1]
            found[match.group(1)] = re.findall(r"`(\w+)`", cells)
    # §10 (routing) adds offered, declined and rona to `agents` after §6's columns.
    assert found == {**SPEC_COLUMNS, "agents": SPEC_COLUMNS["agents"][:-3]}


def test_default_since_is_the_seven_days_before_until(report_desk):
    rows = report_desk.json("report", "volume", "--until", "2026-11-23")
    assert [r["day"] for r in rows] == DAYS
    rows = report_desk.json("report", "volume", "--until", "2026-11-20T12:00:00+00:00")
    assert [r["day"] for r in rows] == [f"2026-11-{d}" for d in range(14, 21)]


def test_nightly_export_through_jobs_run(report_desk, tmp_path):
    config = tmp_path / "jobs.yaml"
    config.write_text(f"export_dir: {tmp_path / 'out'}\nclock: {{override: true}}\n")
    env = {"DESKCTL_CONFIG": str(config)}
    report_desk.ok("jobs", "run", "nightly-export", "--now", "2026-11-22T02:00:00+00:00", env=env)
    files = sorted(p.name for p in (tmp_path / "out" / "2026-11-21").iterdir())
    assert len(files) == 12 and "conversations.json" in files
    report_desk.ok("jobs", "run", "nightly-export", "--now", "2026-11-22T03:00:00+00:00", env=env)
    history = report_desk.json("jobs", "history", "nightly-export", env=env)
    counts = sorted((h["counts"]["written"], h["counts"]["skipped"]) for h in history)
    assert counts == [(0, 1), (1, 0)]
