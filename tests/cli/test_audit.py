"""`deskctl audit`: event records, filters, --limit, formats, exit codes."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

from sqlalchemy import insert

from deskctl.models import Event
from tests.factories import T0, make_conversation


def _arrange(desk):
    a = make_conversation(desk)
    b = make_conversation(desk)
    desk.now = (T0 + timedelta(hours=1)).isoformat()
    desk.ok("note", a, "first note", as_="alice")
    desk.now = (T0 + timedelta(hours=2)).isoformat()
    desk.ok("watch", b, as_="bob")
    desk.now = (T0 + timedelta(hours=3)).isoformat()
    desk.ok("note", b, "second note", as_="carol")
    with desk.session() as s:
        s.execute(insert(Event), [{"conversation_id": a, "actor": "system", "kind": "sla_warning",
                                   "at": T0 + timedelta(hours=4), "data": {"target": "first_response",
                                                                           "due": "2026-11-20T13:00:00+00:00"}}])
    desk.now = (T0 + timedelta(hours=5)).isoformat()
    return a, b


def test_audit_prints_every_event_oldest_first(seeded):
    a, b = _arrange(seeded)
    events = seeded.json("audit", as_="alice")
    assert [(e["conversation_id"], e["actor"], e["kind"]) for e in events] == [
        (a, "alice", "note_added"), (b, "bob", "watched"), (b, "carol", "note_added"), (a, "system", "sla_warning")]
    assert list(events[0]) == ["id", "conversation_id", "at", "actor", "kind", "data"]
    assert events[0]["at"] == (T0 + timedelta(hours=1)).isoformat()
    assert events[0]["data"]["text"] == "first note" and events[1]["data"] == {"user": "bob"}
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)


def test_audit_filters(seeded):
    a, b = _arrange(seeded)

    def kinds(*args):
        return [(e["conversation_id"], e["kind"]) for e in seeded.json("audit", *args)]

    assert kinds(f"#{a}") == [(a, "note_added"), (a, "sla_warning")]
    assert kinds("--actor", "system") == [(a, "sla_warning")]
    assert kinds("--actor", "alice,bob") == [(a, "note_added"), (b, "watched")]
    assert kinds("--kind", "note_added") == [(a, "note_added"), (b, "note_added")]
    assert kinds("--kind", "watched,sla_warning") == [(b, "watched"), (a, "sla_warning")]
    assert kinds("--since", (T0 + timedelta(hours=2)).isoformat()) == [
        (b, "watched"), (b, "note_added"), (a, "sla_warning")]
    assert kinds("--since", "1h30m") == [(a, "sla_warning")]  # now is T0+5h: events since T0+3h30
    assert kinds("--until", (T0 + timedelta(hours=2)).isoformat()) == [(a, "note_added")]
    assert kinds(b, "--kind", "note_added", "--actor", "carol") == [(b, "note_added")]
    assert kinds("--limit", "2") == [(b, "note_added"), (a, "sla_warning")]  # the latest two, oldest first
    assert kinds(a, "--limit", "1") == [(a, "sla_warning")]


def test_audit_formats(seeded):
    a, b = _arrange(seeded)
    assert seeded.ok("audit", fmt="ids").stdout == f"{a}\n{b}\n"  # each conversation once
    lines = seeded.ok("audit", fmt="jsonl").jsonl()
    assert len(lines) == 4 and lines[-1]["data"]["target"] == "first_response"
    rows = list(csv.DictReader(io.StringIO(seeded.ok("audit", fmt="csv").stdout)))
    assert list(rows[0]) == ["id", "conversation_id", "at", "actor", "kind", "data"]
    assert json.loads(rows[1]["data"]) == {"user": "bob"}
    rows = list(csv.DictReader(io.StringIO(seeded.ok("audit", fmt="tsv").stdout), delimiter="\t"))
    assert [r["kind"] for r in rows] == ["note_added", "watched", "note_added", "sla_warning"]
    assert "sla_warning" in seeded.ok("audit", fmt="table").stdout
    empty = seeded.run("audit", "--kind", "merged", fmt="json")
    assert empty.exit_code == 0 and empty.json() == [] and "no events matched" in empty.stderr


def test_audit_errors(seeded):
    _arrange(seeded)
    bad_kind = seeded.run("audit", "--kind", "note_added,exploded")
    assert bad_kind.exit_code == 2 and "exploded" in bad_kind.stderr
    assert seeded.run("audit", "--since", "last tuesday").exit_code == 2
    assert seeded.run("audit", "abc").exit_code == 2
    assert seeded.run("audit", "999").exit_code == 3
    assert seeded.run("audit", "--actor", "ghost").exit_code == 3
    assert seeded.run("audit", as_="nobody").exit_code == 5


def test_audit_streams_many_events(seeded):
    cid = make_conversation(seeded)
    with seeded.session() as s:
        s.execute(insert(Event), [{"conversation_id": cid, "actor": "system", "kind": "message_in",
                                   "at": T0 + timedelta(seconds=i), "data": {"message_id": i}}
                                  for i in range(5000)])
    lines = seeded.ok("audit", cid, fmt="jsonl").stdout.splitlines()
    assert len(lines) == 5000
    assert json.loads(lines[-1])["data"] == {"message_id": 4999}
    assert len(seeded.json("audit", "--limit", "2500")) == 2500
