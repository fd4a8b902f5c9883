"""SPEC §10: the `pending --note` reminder shows in the thread and in the boomerang's
notification; messages show their channel message type (JSON lines `type`)."""

from __future__ import annotations

import json

from tests.factories import T0, hours, make_conversation


def test_pending_reminder_in_the_thread_and_the_boomerang_notification(seeded, tmp_path):
    config = tmp_path / "clock.yaml"
    config.write_text("clock: {override: true}\n")
    env = {"DESKCTL_CONFIG": str(config)}
    seeded.now = (T0 + hours(1)).isoformat()
    cid = make_conversation(seeded, assignee="alice", status="open")
    seeded.ok("pending", cid, "--until", "2h", "--note", "call back about the refund", as_="alice", env=env)
    thread = seeded.ok("show", cid, fmt="table", as_="alice", env=env).stdout
    assert "reminder: call back about the refund" in thread
    assert seeded.json("show", cid, as_="alice", env=env)[0]["reminder"] == "call back about the refund"
    seeded.now = (T0 + hours(4)).isoformat()
    seeded.ok("jobs", "run", "boomerang", env=env)
    [note] = seeded.rows("SELECT recipient, body FROM outbox WHERE dedupe_key LIKE 'boomerang_returned:%'")
    assert note["recipient"] == "alice@desk.example"
    assert "Reminder: call back about the refund" in note["body"]
    # back to new: no longer a pending reminder in the thread
    assert "reminder:" not in seeded.ok("show", cid, fmt="table", as_="alice", env=env).stdout


def test_boomerang_without_a_note_has_no_reminder_line(seeded, tmp_path):
    config = tmp_path / "clock.yaml"
    config.write_text("clock: {override: true}\n")
    env = {"DESKCTL_CONFIG": str(config)}
    seeded.now = (T0 + hours(1)).isoformat()
    cid = make_conversation(seeded, assignee="alice", status="open")
    seeded.ok("pending", cid, "--until", "1h", as_="alice", env=env)
    seeded.now = (T0 + hours(3)).isoformat()
    seeded.ok("jobs", "run", "boomerang", env=env)
    [note] = seeded.rows("SELECT body FROM outbox WHERE dedupe_key LIKE 'boomerang_returned:%'")
    assert "Reminder" not in note["body"]


def test_thread_shows_the_message_type(seeded):
    line = json.dumps({"channel": "social", "thread": "tw-1", "id": "dm-1", "type": "Twitter direct message",
                       "from": {"name": "Léa", "email": "lea@example.fr"}, "text": "my order?"})
    [created] = seeded.json("ingest", "jsonl", "-", input=line.encode())
    thread = seeded.ok("show", created["id"], fmt="table").stdout
    assert "from Léa (Twitter direct message)" in thread
    assert seeded.json("show", created["id"])[0]["messages"][0]["type"] == "Twitter direct message"


def test_thread_shows_the_message_link_and_a_bad_link_is_quarantined(seeded):
    good = json.dumps({"channel": "social", "thread": "fb-1", "id": "post-1", "type": "Facebook public post",
                       "url": "https://facebook.example/posts/1", "from": {"name": "Léa", "email": "lea@example.fr"},
                       "text": "where is my order?"})
    bad = json.dumps({"channel": "social", "thread": "fb-2", "id": "post-2", "url": "javascript:alert(1)",
                      "from": {"name": "Léa", "email": "lea@example.fr"}, "text": "hi"})
    result = seeded.run("ingest", "jsonl", "-", input=(good + "\n" + bad + "\n").encode(), fmt="json")
    assert result.exit_code == 65
    created, quarantined = result.json()
    assert quarantined["action"] == "quarantined"
    thread = seeded.ok("show", created["id"], fmt="table").stdout
    assert "(Facebook public post)" in thread and "link: https://facebook.example/posts/1" in thread
    assert seeded.json("show", created["id"])[0]["messages"][0]["url"] == "https://facebook.example/posts/1"
    assert "url" in seeded.scalar("SELECT reason FROM quarantine")


def test_desk_message_types_get_no_label(seeded):
    [change] = seeded.json("new", "--channel", "phone", "--contact", "lea@example.fr", "Called about an invoice",
                           as_="alice")
    assert "(agent_entry)" not in seeded.ok("show", change["id"], fmt="table").stdout
