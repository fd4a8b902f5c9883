"""`deskctl watch/unwatch` and `deskctl inbox`."""

from __future__ import annotations

import csv
import io
import json

from tests.factories import make_conversation


def _events(desk, kind):
    return [(r["conversation_id"], r["actor"], r["data"] if isinstance(r["data"], dict) else json.loads(r["data"]))
            for r in desk.rows("SELECT conversation_id, actor, data FROM events WHERE kind = :k ORDER BY id", k=kind)]


def test_watch_adds_watcher_and_event_and_is_idempotent(seeded):
    a = make_conversation(seeded)
    b = make_conversation(seeded)
    records = seeded.json("watch", f"#{a}", b, as_="alice")
    assert records == [{"id": a, "user": "alice", "watching": True, "changed": True},
                       {"id": b, "user": "alice", "watching": True, "changed": True}]
    assert seeded.rows("SELECT conversation_id FROM watchers ORDER BY conversation_id") == [
        {"conversation_id": a}, {"conversation_id": b}]
    assert _events(seeded, "watched") == [(a, "alice", {"user": "alice"}), (b, "alice", {"user": "alice"})]
    assert seeded.json("show", a)[0]["watchers"] == ["alice"]
    # Watching again: exit 0, a notice, no new row or event.
    again = seeded.run("watch", a, as_="alice", fmt="json")
    assert again.exit_code == 0 and "already watching #" in again.stderr
    assert again.json() == [{"id": a, "user": "alice", "watching": True, "changed": False}]
    assert seeded.scalar("SELECT count(*) FROM watchers") == 2
    assert len(_events(seeded, "watched")) == 2


def test_unwatch_removes_and_is_idempotent(seeded):
    a = make_conversation(seeded, watchers=("alice", "bob"))
    [record] = seeded.json("unwatch", a, as_="alice")
    assert record == {"id": a, "user": "alice", "watching": False, "changed": True}
    assert seeded.rows("SELECT u.handle FROM watchers w JOIN users u ON u.id = w.user_id") == [{"handle": "bob"}]
    assert _events(seeded, "unwatched") == [(a, "alice", {"user": "alice"})]
    again = seeded.run("unwatch", a, as_="alice", fmt="json")
    assert again.exit_code == 0 and "was not watching" in again.stderr
    assert len(_events(seeded, "unwatched")) == 1


def test_watch_is_atomic_and_checks_scope(seeded):
    ok = make_conversation(seeded)  # billing, paris
    lyon = make_conversation(seeded, group="sales")
    before = seeded.dump()
    result = seeded.run("watch", ok, lyon, 999, as_="alice")
    assert result.exit_code == 5  # the first failure in argument order
    assert f"#{lyon}:" in result.stderr and "#999: conversation not found" in result.stderr
    assert seeded.run("watch", 999, as_="alice").exit_code == 3
    assert seeded.run("watch", "x", as_="alice").exit_code == 2
    assert seeded.run("unwatch", 999, as_="alice").exit_code == 3
    dry = seeded.run("watch", ok, "--dry-run", as_="alice", fmt="json")
    assert dry.exit_code == 0 and dry.json()[0]["changed"] is True
    assert seeded.dump() == before


def test_watch_reads_ids_from_stdin(seeded):
    a = make_conversation(seeded)
    b = make_conversation(seeded)
    seeded.ok("watch", "-", input=f"# mine\n#{a}\n\n{b}\n", as_="bob")
    assert seeded.scalar("SELECT count(*) FROM watchers") == 2


def test_inbox_is_assigned_not_closed_plus_watched(seeded):
    mine = make_conversation(seeded, assignee="alice", status="open", priority="low")
    urgent = make_conversation(seeded, assignee="alice", status="pending", priority="urgent")
    make_conversation(seeded, assignee="alice", status="closed")
    watched = make_conversation(seeded, assignee="bob", status="open", watchers=("alice",), priority="high")
    make_conversation(seeded, status="closed", watchers=("alice",))  # closed: not in the working set
    make_conversation(seeded, assignee="bob")  # someone else's
    records = seeded.json("inbox", as_="alice")
    assert [r["id"] for r in records] == [urgent, watched, mine]  # most urgent first
    assert records[1]["watchers"] == ["alice"] and records[1]["assignee"] == "bob"
    assert set(records[0]) >= {"id", "subject", "status", "channel", "priority", "assignee", "group", "location",
                               "contact", "tags", "reason", "watchers", "created_at", "updated_at", "sla"}
    assert seeded.ok("inbox", as_="alice", fmt="ids").stdout == f"{urgent}\n{watched}\n{mine}\n"
    assert [r["id"] for r in seeded.ok("inbox", as_="alice", fmt="jsonl").jsonl()] == [urgent, watched, mine]
    rows = list(csv.DictReader(io.StringIO(seeded.ok("inbox", as_="alice", fmt="csv").stdout)))
    assert [int(r["id"]) for r in rows] == [urgent, watched, mine]
    rows = list(csv.DictReader(io.StringIO(seeded.ok("inbox", as_="alice", fmt="tsv").stdout), delimiter="\t"))
    assert rows[0]["priority"] == "urgent"
    assert str(urgent) in seeded.ok("inbox", as_="alice", fmt="table").stdout
    assert [r["id"] for r in seeded.json("inbox", "--sort", "id", "--limit", "2", as_="alice")] == [mine, urgent]


def test_inbox_of_another_user_needs_supervisor(seeded):
    a = make_conversation(seeded, assignee="alice", status="open")
    assert [r["id"] for r in seeded.json("inbox", "--user", "alice", as_="carol")] == [a]
    assert [r["id"] for r in seeded.json("inbox", "--user", "alice", as_="root")] == [a]
    assert seeded.json("inbox", "--user", "alice", as_="alice")[0]["id"] == a
    denied = seeded.run("inbox", "--user", "alice", as_="bob")
    assert denied.exit_code == 5 and denied.stdout == ""
    assert seeded.run("inbox", "--user", "ghost", as_="carol").exit_code == 3
    empty = seeded.run("inbox", as_="dave", fmt="json")
    assert empty.exit_code == 0 and empty.json() == [] and "empty" in empty.stderr


# -- watchers hear about activity ------------------------------------------------------------

def _notifications(desk, like: str):
    return desk.rows("SELECT recipient, subject, body, conversation_id, dedupe_key FROM outbox "
                     "WHERE kind = 'notification' AND dedupe_key LIKE :like ORDER BY recipient, id", like=like)


def test_watchers_but_not_the_actor_are_told_of_a_status_change(seeded):
    cid = make_conversation(seeded, subject="Refund {please}", status="open", assignee="alice",
                            watchers=("alice", "bob", "carol"))
    seeded.ok("resolve", cid, as_="alice")
    sent = _notifications(seeded, "resolved:%")
    assert [n["recipient"] for n in sent] == ["bob@desk.example", "carol@desk.example"]
    assert all(n["conversation_id"] == cid for n in sent)
    assert sent[0]["subject"] == f"[#{cid}] resolved by alice: Refund {{please}}"
    assert sent[0]["body"] == f"Conversation #{cid} (Refund {{please}}) was resolved by alice."
    # Reopening is another occurrence: told again, still not the actor.
    seeded.ok("reopen", cid, as_="bob")
    assert [n["recipient"] for n in _notifications(seeded, "reopened:%")] == [
        "alice@desk.example", "carol@desk.example"]


def test_a_watcher_who_receives_the_transfer_is_told_once(seeded):
    cid = make_conversation(seeded, status="open", assignee="alice", watchers=("bob", "carol"))
    seeded.ok("transfer", cid, "--to", "user:bob", "--no-keep-informed", as_="alice")
    sent = _notifications(seeded, "transferred:%")
    assert [n["recipient"] for n in sent] == ["bob@desk.example", "carol@desk.example"]
    assert "transferred to you" in sent[0]["subject"]  # bob: the direct notification wins
    assert sent[1]["subject"].startswith(f"[#{cid}] transferred by alice")


def test_a_bulk_change_sends_each_watcher_one_summary(seeded):
    ids = [make_conversation(seeded, status="open", assignee="alice", watchers=("bob",), with_message=False)
           for _ in range(55)]
    few = make_conversation(seeded, status="open", assignee="alice", watchers=("carol",), with_message=False)
    seeded.ok("transfer", "--from", "alice", "--to", "group:support", "--yes", as_="root")
    bob = _notifications(seeded, "transferred:%")
    assert [n["recipient"] for n in bob] == ["bob@desk.example", "carol@desk.example"]
    assert bob[0]["subject"] == "55 conversations you watch were transferred by root"
    assert bob[0]["conversation_id"] is None and f"#{min(ids)}" in bob[0]["body"]
    assert bob[1]["conversation_id"] == few


def test_a_contact_message_tells_the_assignee_and_watchers_once(seeded):
    seeded.now = "2026-11-23T12:00:00+00:00"
    cid = make_conversation(seeded, channel="chat", status="open", assignee="alice", watchers=("bob",),
                            thread_key="t-9", subject="Where is my parcel")
    line = json.dumps({"channel": "chat", "thread": "t-9", "id": "m-9", "from": {"email": "lea@example.fr"},
                       "text": "any news?"})
    for _ in range(2):  # the second delivery is a duplicate: nothing new to tell
        seeded.ok("ingest", "jsonl", "-", input=(line + "\n").encode(), fmt="json")
    sent = _notifications(seeded, "message_in:%")
    assert [(n["recipient"], n["conversation_id"]) for n in sent] == [
        ("alice@desk.example", cid), ("bob@desk.example", cid)]
    assert sent[0]["subject"] == f"[#{cid}] new message from the contact: Where is my parcel"
