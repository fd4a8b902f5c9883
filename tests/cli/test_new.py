"""`deskctl new`: agent-created conversations, inbound by default, --outbound sends."""

from __future__ import annotations

import json
from datetime import timedelta

from tests.factories import T0


def _events(desk, cid):
    return [(r["kind"], r["actor"], r["data"] if isinstance(r["data"], dict) else json.loads(r["data"]))
            for r in desk.rows("SELECT kind, actor, data FROM events WHERE conversation_id = :c ORDER BY id", c=cid)]


def test_new_phone_call_is_an_inbound_message_from_the_contact(seeded):
    seeded.ok("contact", "add", "--name", "Léa", "--email", "lea@example.fr")
    seeded.now = T0.isoformat()
    [conv] = seeded.json("new", "--channel", "phone", "--contact", "lea@example.fr", "--group", "billing",
                         "--priority", "high", "Called: invoice 42 charged twice.\nWants a refund.", as_="alice")
    cid = conv["id"]
    assert {k: conv[k] for k in ("status", "channel", "priority", "assignee", "group", "location", "subject")} == {
        "status": "new", "channel": "phone", "priority": "high", "assignee": None, "group": "billing",
        "location": "paris", "subject": "Called: invoice 42 charged twice."}
    assert conv["contact"] == {"id": 1, "name": "Léa", "email": "lea@example.fr", "vip": False}
    assert conv["created_at"] == T0.isoformat()
    [msg] = seeded.rows("SELECT direction, text, author_contact_id, message_type FROM messages")
    assert msg == {"direction": "inbound", "text": "Called: invoice 42 charged twice.\nWants a refund.",
                   "author_contact_id": 1, "message_type": "agent_entry"}
    assert _events(seeded, cid) == [("created", "alice", {"channel": "phone", "source": "agent"}),
                                    ("message_in", "alice", {"message_id": 1, "external_id": None})]
    [row] = seeded.rows("SELECT first_inbound_at, first_response_at, status FROM conversations")
    assert row["first_response_at"] is None and row["first_inbound_at"] is not None
    assert seeded.scalar("SELECT count(*) FROM outbox") == 0
    # It is an ordinary conversation: claimable work that shows in `list`.
    assert [c["id"] for c in seeded.json("list", "--status", "new")] == [cid]


def test_new_outbound_email_is_sent_through_the_outbox(seeded):
    seeded.now = (T0 + timedelta(hours=1)).isoformat()
    result = seeded.run("new", "--channel", "email", "--contact", "Max@Example.com", "--name", "Max Power",
                        "--subject", "Your refund", "--outbound", "-", input="Hello Max, it is done.\n",
                        as_="alice", fmt="ids")
    assert result.exit_code == 0, result
    cid = int(result.stdout.strip())
    assert "created contact #1" in result.stderr and f"created conversation #{cid}" in result.stderr
    assert seeded.rows("SELECT name, email FROM contacts") == [{"name": "Max Power", "email": "max@example.com"}]
    [msg] = seeded.rows("SELECT direction, text, author_user_id FROM messages")
    assert msg["direction"] == "outbound" and msg["text"] == "Hello Max, it is done.\n"
    [out] = seeded.rows("SELECT kind, recipient, conversation_id FROM outbox")
    assert out == {"kind": "email", "recipient": "max@example.com", "conversation_id": cid}
    assert [k for k, _, _ in _events(seeded, cid)] == ["created", "message_out"]
    assert seeded.scalar("SELECT status FROM conversations WHERE id = :c", c=cid) == "new"
    assert seeded.scalar("SELECT first_response_at FROM conversations WHERE id = :c", c=cid) is not None


def test_new_from_file_and_default_subject(seeded, tmp_path):
    path = tmp_path / "call.txt"
    path.write_text("\n  " + "x" * 100 + "\nsecond line\n", encoding="utf-8")
    [conv] = seeded.json("new", "--channel", "phone", "--contact", "lea@example.fr", "--file", path, as_="bob")
    assert conv["subject"] == "x" * 77 + "…" and conv["group"] is None and conv["priority"] == "low"


def test_new_refusals_change_nothing(seeded):
    seeded.ok("contact", "add", "--name", "NoMail", "--phone", "123")
    before = seeded.dump()

    def code(*args, **kw):
        return seeded.run("new", *args, **{"as_": "alice", **kw}).exit_code

    assert code("--channel", "pigeon", "--contact", "a@b.org", "hi") == 2
    assert code("--channel", "phone", "--contact", "a@b.org", "--priority", "asap", "hi") == 2
    assert code("--channel", "phone", "--contact", "a@b.org", "  ") == 2
    assert code("--channel", "phone", "--contact", "a@b.org") == 2  # no text
    assert code("--channel", "phone", "--contact", "not-a-ref", "hi") == 2
    assert code("--contact", "a@b.org", "hi") == 2  # --channel missing
    assert code("--channel", "phone", "--contact", "42", "hi") == 3  # unknown contact id
    assert code("--channel", "phone", "--contact", "a@b.org", "--group", "nope", "hi") == 3
    assert code("--channel", "phone", "--contact", "a@b.org", "hi", as_="nobody") == 5
    # --outbound replies on the new conversation: the agent must be able to act on it.
    assert code("--channel", "email", "--contact", "a@b.org", "--group", "sales", "--outbound", "hi") == 5
    assert code("--channel", "email", "--contact", "1", "--outbound", "hi") == 4  # contact has no email
    dry = seeded.run("new", "--channel", "phone", "--contact", "a@b.org", "hi", "--dry-run", as_="alice",
                     fmt="json")
    assert dry.exit_code == 0 and dry.json()[0]["status"] == "new" and "would create" in dry.stderr
    assert seeded.dump() == before


def test_new_refreshes_the_sla_of_the_new_conversation(seeded, monkeypatch):
    from deskctl.services.sla import deadlines as sla
    calls = []
    monkeypatch.setattr(sla, "refresh", lambda session, ids, **kw: calls.append(list(ids)))
    [conv] = seeded.json("new", "--channel", "chat", "--contact", "lea@example.fr", "hello", as_="alice")
    assert calls and all(ids == [conv["id"]] for ids in calls)
