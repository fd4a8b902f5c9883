"""Per-user read state (SPEC §10): `show` (thread view) marks read, `list --unread`,
the `unread` column of `inbox`, and `reply` warning about an unread latest message."""

from __future__ import annotations

import json

import pytest

from tests.factories import T0, hours

NOW = T0 + hours(1)


def chat(message_id: str, at, text="hello") -> bytes:
    return json.dumps({"channel": "chat", "thread": "t-1", "id": message_id, "at": at.isoformat(),
                       "from": {"name": "Léa", "email": "lea@example.fr"}, "text": text,
                       "group": "billing"}).encode()


@pytest.fixture
def desk_(seeded, monkeypatch):
    config = seeded.tmp_path / "clock.yaml"
    config.write_text("clock: {override: true}\n")
    monkeypatch.setenv("DESKCTL_CONFIG", str(config))
    seeded.now = NOW.isoformat()
    return seeded


def unread_ids(desk, who):
    return [r["id"] for r in desk.json("list", "--unread", as_=who)]


def test_show_marks_read_for_the_actor_only_and_a_new_message_makes_it_unread(desk_):
    [created] = desk_.json("ingest", "jsonl", "-", input=chat("m-1", T0))
    cid = created["id"]
    desk_.ok("claim", cid, as_="alice")
    assert unread_ids(desk_, "alice") == [cid] and unread_ids(desk_, "carol") == [cid]
    [row] = desk_.json("inbox", as_="alice")
    assert row["id"] == cid and row["unread"] is True
    # machine formats do not mark read; the thread view does
    desk_.ok("show", cid, fmt="json", as_="alice")
    assert unread_ids(desk_, "alice") == [cid]
    thread = desk_.ok("show", cid, fmt="table", as_="alice")
    assert "hello" in thread.stdout
    assert unread_ids(desk_, "alice") == [] and unread_ids(desk_, "carol") == [cid]
    assert desk_.json("inbox", as_="alice")[0]["unread"] is False
    assert "unread" in desk_.ok("inbox", fmt="tsv", as_="alice").stdout.splitlines()[0].split("\t")
    # the contact writes again: unread again
    desk_.now = (NOW + hours(1)).isoformat()
    desk_.ok("ingest", "jsonl", "-", input=chat("m-2", NOW + hours(0.5), "are you there?"))
    assert unread_ids(desk_, "alice") == [cid]
    # a supervisor looks at alice's inbox: her read state, not theirs
    assert desk_.json("inbox", "--user", "alice", as_="carol")[0]["unread"] is True


def test_reply_warns_when_the_latest_inbound_message_is_unread(desk_):
    [created] = desk_.json("ingest", "jsonl", "-", input=chat("m-1", T0))
    cid = created["id"]
    desk_.ok("claim", cid, as_="alice")
    warned = desk_.ok("reply", cid, "On it", as_="alice", fmt="json")
    assert "not read the latest message" in warned.stderr and f"#{cid}" in warned.stderr
    assert warned.json()[0]["id"] == cid  # the reply is sent all the same
    desk_.ok("show", cid, fmt="table", as_="alice")
    quiet = desk_.ok("reply", cid, "Done", as_="alice", fmt="json")
    assert "not read" not in quiet.stderr


def test_a_conversation_an_agent_wrote_down_is_read_by_them_only(desk_):
    [change] = desk_.json("new", "--channel", "phone", "--contact", "lea@example.fr", "--group", "billing",
                          "Called about an invoice", as_="alice")
    assert unread_ids(desk_, "alice") == [] and unread_ids(desk_, "carol") == [change["id"]]
