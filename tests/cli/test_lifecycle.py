"""release, pending, resolve, close, qualify, reopen, merge: status rules (SPEC §1),
change records (§7), audit rows, refusals that change nothing."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from tests.factories import T0, make_conversation

NOW = T0 + timedelta(hours=1)


def conv(desk, cid):
    [row] = desk.rows("SELECT c.status, u.handle AS assignee, c.boomerang_at, c.pending_since, c.resolved_at, "
                      "c.closed_at, c.reason, c.closing_note, c.csat, c.priority, c.linked_to_id "
                      "FROM conversations c LEFT JOIN users u ON u.id = c.assignee_id WHERE c.id = :id", id=cid)
    for key in ("boomerang_at", "pending_since", "resolved_at", "closed_at"):
        value = row[key]
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if value is not None and value.tzinfo is None:
            from datetime import UTC

            value = value.replace(tzinfo=UTC)
        row[key] = value
    return row


def events(desk, kind):
    rows = desk.rows("SELECT conversation_id, actor, data FROM events WHERE kind = :kind ORDER BY id", kind=kind)
    for row in rows:
        if isinstance(row["data"], str):
            row["data"] = json.loads(row["data"])
    return rows


def tags(desk, cid):
    return [r["tag"] for r in desk.rows("SELECT tag FROM conversation_tags WHERE conversation_id = :id "
                                        "ORDER BY tag", id=cid)]


def test_release_gives_it_back_to_the_group(seeded):
    seeded.now = NOW.isoformat()
    cid = make_conversation(seeded, assignee="alice", status="open")
    bobs = make_conversation(seeded, assignee="bob", status="open", group="support")
    before = seeded.dump()
    result = seeded.run("release", bobs, as_="alice")
    assert result.exit_code == 5 and "assigned to bob" in result.stderr
    unassigned = make_conversation(seeded)
    before = seeded.dump()
    assert seeded.run("release", unassigned, as_="alice").exit_code == 4
    assert seeded.dump() == before
    [record] = seeded.json("release", cid, as_="alice")
    assert record == {"id": cid, "status": "new", "assignee": None, "group": "billing", "previous_status": "open",
                      "previous_assignee": "alice", "previous_group": "billing"}
    assert events(seeded, "released") == [{"conversation_id": cid, "actor": "alice", "data": {"from_user": "alice"}}]
    seeded.ok("release", bobs, as_="carol")  # a supervisor may


def test_pending_with_and_without_boomerang(seeded):
    seeded.now = NOW.isoformat()
    a = make_conversation(seeded, assignee="alice", status="open")
    b = make_conversation(seeded, assignee="alice", status="open")
    result = seeded.run("pending", a, "--until", "2d", "--note", "waiting for the invoice", as_="alice", fmt="json")
    assert result.exit_code == 0 and result.json()[0]["status"] == "pending"
    row = conv(seeded, a)
    assert row["status"] == "pending" and row["boomerang_at"] == NOW + timedelta(days=2)
    assert row["pending_since"] == NOW and row["assignee"] == "alice"
    [event] = events(seeded, "pending")
    assert event["data"] == {"until": (NOW + timedelta(days=2)).isoformat(), "note": "waiting for the invoice"}
    seeded.ok("pending", b, as_="alice")
    assert conv(seeded, b)["boomerang_at"] is None and conv(seeded, b)["status"] == "pending"
    before = seeded.dump()
    assert seeded.run("pending", b, as_="alice").exit_code == 4           # already pending
    assert seeded.run("pending", b, "--until", "someday", as_="alice").exit_code == 2
    assert seeded.run("pending", b, "--until", "2020-01-01T00:00:00Z", as_="alice").exit_code == 2
    assert seeded.dump() == before
    seeded.ok("pending", b, "--until", "tomorrow", as_="alice")             # re-schedule
    assert conv(seeded, b)["boomerang_at"] is not None


def test_resolve_sets_resolution_time_and_optional_boomerang(seeded):
    seeded.now = NOW.isoformat()
    cid = make_conversation(seeded, assignee="alice", status="pending", boomerang_at=NOW + timedelta(days=3))
    [record] = seeded.json("resolve", cid, as_="alice")
    assert record["status"] == "resolved" and record["previous_status"] == "pending"
    row = conv(seeded, cid)
    assert row["resolved_at"] == NOW and row["boomerang_at"] is None and row["pending_since"] is None
    assert seeded.run("resolve", cid, as_="alice").exit_code == 4
    seeded.ok("resolve", cid, "--until", "1w", as_="alice")
    assert conv(seeded, cid)["boomerang_at"] == NOW + timedelta(weeks=1)
    assert [e["data"] for e in events(seeded, "resolved")] == [
        {"until": None}, {"until": (NOW + timedelta(weeks=1)).isoformat()}]


def test_close_with_qualification_and_invalid_transitions(seeded):
    seeded.now = NOW.isoformat()
    cid = make_conversation(seeded, assignee="alice", status="open", tags=("vip",))
    result = seeded.run("close", cid, "--tag", "refund", "--tag", "invoice,vip", "--reason", "billing error",
                        "--note", "Refunded 40 EUR", "--csat", "5", as_="alice", fmt="json")
    assert result.exit_code == 0, result
    assert result.json()[0]["status"] == "closed" and result.stderr.strip() == "closed 1 conversation"
    row = conv(seeded, cid)
    assert (row["status"], row["reason"], row["closing_note"], row["csat"]) == \
        ("closed", "billing error", "Refunded 40 EUR", 5)
    assert row["closed_at"] == NOW and row["resolved_at"] == NOW
    assert tags(seeded, cid) == ["invoice", "refund", "vip"]
    [event] = events(seeded, "closed")
    assert event["data"]["status"] == "closed" and event["data"]["tags"] == ["refund", "invoice", "vip"]
    assert event["data"]["csat"] == 5 and event["data"]["reason"] == "billing error"
    before = seeded.dump()
    assert seeded.run("close", cid, as_="alice").exit_code == 4              # close a closed one
    assert seeded.run("pending", cid, as_="alice").exit_code == 4            # pending a closed one
    assert seeded.run("claim", cid, as_="alice").exit_code == 4
    assert seeded.run("close", cid, "--csat", "6", as_="alice").exit_code == 2
    assert seeded.run("close", cid, "--status", "gone", as_="alice").exit_code == 2
    assert seeded.dump() == before


def test_close_status_pending_or_open_keeps_the_request_going(seeded):
    chat = make_conversation(seeded, channel="chat")
    [record] = seeded.json("close", chat, "--status", "open", "--tag", "chat-ended", as_="alice")
    assert record["status"] == "open" and record["assignee"] == "alice"   # open needs someone holding it
    other = make_conversation(seeded, channel="chat")
    seeded.ok("close", other, "--status", "pending", as_="alice")
    assert conv(seeded, other)["status"] == "pending" and conv(seeded, other)["closed_at"] is None
    assert [e["data"]["status"] for e in events(seeded, "closed")] == ["open", "pending"]


def test_close_requires_tag_rule(seeded, tmp_path):
    untagged = make_conversation(seeded, assignee="alice", status="open")
    tagged = make_conversation(seeded, assignee="alice", status="open", tags=("refund",))
    config = tmp_path / "rules.yaml"
    config.write_text("rules: {close_requires_tag: true}\n")
    env = {"DESKCTL_CONFIG": str(config)}
    before = seeded.dump()
    result = seeded.run("close", tagged, untagged, as_="alice", env=env)
    assert result.exit_code == 2 and f"#{untagged}: needs a tag" in result.stderr
    assert seeded.dump() == before
    seeded.ok("close", tagged, as_="alice", env=env)                 # already tagged
    seeded.ok("close", untagged, "--tag", "misc", as_="alice", env=env)


def test_close_transcript_is_queued_without_notes(seeded):
    cid = make_conversation(seeded, assignee="alice", status="open")
    seeded.ok("transfer", cid, "--to", "user:alice", "--message", "SECRET internal", as_="carol")
    seeded.ok("close", cid, "--note", "Solved by resending the invoice", "--transcript-to", "lea@example.fr",
              as_="alice")
    [mail] = seeded.rows("SELECT recipient, body FROM outbox WHERE dedupe_key LIKE 'transcript:%'")
    assert mail["recipient"] == "lea@example.fr"
    assert "Hello, I have a question." in mail["body"] and "Solved by resending" in mail["body"]
    assert "SECRET" not in mail["body"]
    assert events(seeded, "transcript_sent")[0]["data"] == {"to": "lea@example.fr"}
    before = seeded.dump()
    other = make_conversation(seeded, assignee="alice", status="open")
    before = seeded.dump()
    assert seeded.run("close", other, "--transcript-to", "not-an-address", as_="alice").exit_code == 2
    assert seeded.dump() == before


def test_qualify_also_after_closing(seeded):
    cid = make_conversation(seeded, assignee="alice", status="closed", closed_at=T0, resolved_at=T0,
                            tags=("refund", "wrong"))
    [record] = seeded.json("qualify", cid, "--tag", "invoice", "--untag", "wrong", "--reason", "billing",
                           "--priority", "high", "--note", "fixed", as_="alice")
    assert record["status"] == "closed" and record["previous_status"] == "closed"
    row = conv(seeded, cid)
    assert (row["reason"], row["priority"], row["closing_note"], row["status"]) == \
        ("billing", "high", "fixed", "closed")
    assert tags(seeded, cid) == ["invoice", "refund"]
    [event] = events(seeded, "qualified")
    assert event["data"] == {"tags_added": ["invoice"], "tags_removed": ["wrong"], "reason": "billing",
                             "priority": "high", "note": "fixed"}
    before = seeded.dump()
    assert seeded.run("qualify", cid, as_="alice").exit_code == 2
    assert seeded.run("qualify", cid, "--priority", "extreme", as_="alice").exit_code == 2
    assert seeded.run("qualify", cid, "--tag", "a", "--untag", "a", as_="alice").exit_code == 2
    assert seeded.run("qualify", cid, "--tag", "x", as_="dave").exit_code == 5
    assert seeded.dump() == before


def test_reopen_back_to_new(seeded):
    closed = make_conversation(seeded, assignee="alice", status="closed", closed_at=T0, resolved_at=T0)
    pending = make_conversation(seeded, status="pending", boomerang_at=T0 + timedelta(days=1))
    opened = make_conversation(seeded, assignee="alice", status="open")
    before = seeded.dump()
    result = seeded.run("reopen", opened, as_="alice")
    assert result.exit_code == 4 and "open" in result.stderr
    assert seeded.run("reopen", closed, opened, as_="alice").exit_code == 4
    assert seeded.dump() == before
    records = seeded.json("reopen", closed, pending, as_="alice")
    assert [(r["status"], r["previous_status"]) for r in records] == [("new", "closed"), ("new", "pending")]
    assert records[0]["assignee"] == "alice"
    row = conv(seeded, closed)
    assert row["closed_at"] is None and row["status"] == "new"
    assert conv(seeded, pending)["boomerang_at"] is None
    assert [e["data"] for e in events(seeded, "reopened")] == [
        {"previous_status": "closed", "cause": "manual"}, {"previous_status": "pending", "cause": "manual"}]


def test_merge_moves_messages_notes_watchers_and_closes_the_duplicate(seeded):
    keep = make_conversation(seeded, channel="email", watchers=("carol",))
    dup = make_conversation(seeded, channel="chat", created_at=T0 - timedelta(hours=2), watchers=("bob", "carol"))
    seeded.ok("transfer", dup, "--to", "user:alice", "--message", "same person as the email", as_="carol")
    records = seeded.json("merge", dup, "--into", f"#{keep}", as_="alice")
    assert [(r["id"], r["status"]) for r in records] == [(dup, "closed"), (keep, "new")]
    assert seeded.scalar("SELECT count(*) FROM messages WHERE conversation_id = :id", id=keep) == 2
    assert seeded.scalar("SELECT count(*) FROM messages WHERE conversation_id = :id", id=dup) == 0
    assert seeded.scalar("SELECT count(*) FROM notes WHERE conversation_id = :id", id=keep) == 1
    handles = [r["handle"] for r in seeded.rows(
        "SELECT u.handle FROM watchers w JOIN users u ON u.id = w.user_id WHERE conversation_id = :id "
        "ORDER BY u.handle", id=keep)]
    assert handles == ["bob", "carol"]
    assert conv(seeded, dup)["linked_to_id"] == keep and conv(seeded, dup)["status"] == "closed"
    assert sorted((e["conversation_id"], tuple(e["data"].items())) for e in events(seeded, "merged")) == \
        sorted([(dup, (("into", keep),)), (keep, (("from", dup),))])
    before = seeded.dump()
    assert seeded.run("merge", dup, "--into", keep, as_="alice").exit_code == 4   # already merged (closed)
    assert seeded.run("merge", keep, "--into", keep, as_="alice").exit_code == 2
    assert seeded.run("merge", keep, "--into", 999, as_="alice").exit_code == 3
    lyon = make_conversation(seeded, group="sales")
    before = seeded.dump()
    assert seeded.run("merge", lyon, "--into", keep, as_="alice").exit_code == 5
    assert seeded.dump() == before


def test_db_check_passes_after_every_verb(seeded):
    cid = make_conversation(seeded)
    for args in (("claim", cid), ("pending", cid, "--until", "1d"), ("resolve", cid, "--until", "2d"),
                 ("reopen", cid), ("release", cid), ("claim", cid), ("close", cid, "--status", "open"),
                 ("close", cid), ("reopen", cid), ("transfer", cid, "--to", "group:support")):
        seeded.ok(*args, as_="carol")
    result = seeded.run("db", "check", as_="root")
    assert result.exit_code == 0, result


def test_no_ids_on_stdin_is_an_empty_selection_not_an_error(seeded):
    """`list ... --format ids | deskctl close -` on a day when nothing matched: exit 0 with
    a notice, as for a filter that matches nothing (SPEC §3), so cron recipes do not fail."""
    from tests.factories import make_conversation

    make_conversation(seeded, assignee="alice", status="open")
    before = seeded.dump()
    for verb in (("close", "-"), ("transfer", "-", "--to", "group:sales"), ("resolve", "-")):
        result = seeded.run(*verb, input="# nothing today\n\n", fmt="json")
        assert result.exit_code == 0, (verb, result)
        assert result.json() == [] and "nothing changed" in result.stderr
    assert seeded.dump() == before
    assert seeded.run("transfer", "-", "--to", "group:sales", "--assignee", "alice", input="").exit_code == 2
