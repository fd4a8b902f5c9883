"""The inbound pipeline's automation hook: what `automations.on_arrivals` is given for
each stored message, from every way a message comes in (email, JSON lines, `new`)."""

from __future__ import annotations

import json

import pytest

from deskctl.services import automations
from deskctl.services.inbound import email as ingest_email
from tests.factories import email_message, ingest_mail


@pytest.fixture
def arrivals(monkeypatch):
    """Every Arrival handed to the hook, in order."""
    seen = []

    def record(session, batch, *, now, settings):
        seen.extend(batch)

    monkeypatch.setattr(automations, "on_arrivals", record)
    return seen


def test_mail_arrivals_name_what_the_message_caused(seeded, tmp_path, arrivals):
    first = email_message("p-1@example.org", sender="Léa <Lea@Example.FR>", subject="Invoice 12",
                          date="Fri, 20 Nov 2026 10:00:00 +0000", body="Where is my invoice?")
    first["Auto-Submitted"] = "auto-replied"
    first["List-Id"] = "Billing <billing.lists.example.org>"
    [created] = ingest_mail(seeded, tmp_path, first).json()
    cid = created["id"]
    [arrival] = arrivals
    assert (arrival.conversation_id, arrival.kinds, arrival.channel, arrival.subject, arrival.sender) == (
        cid, ("created", "message_in"), "email", "Invoice 12", "lea@example.fr")
    assert arrival.text.strip() == "Where is my invoice?"
    assert dict(arrival.headers) == {"auto-submitted": "auto-replied",
                                     "list-id": "Billing <billing.lists.example.org>"}
    [row] = seeded.rows("SELECT id FROM messages WHERE conversation_id = :c", c=cid)
    assert arrival.message_id == row["id"]

    seeded.ok("claim", cid)
    seeded.ok("pending", cid)
    reply = email_message("p-2@example.org", sender="lea@example.fr", subject="Re: Invoice 12",
                          date="Fri, 20 Nov 2026 11:00:00 +0000", body="Any news?", in_reply_to="p-1@example.org")
    assert ingest_mail(seeded, tmp_path, reply).json()[0]["action"] == "appended"
    assert [(a.conversation_id, a.kinds, dict(a.headers)) for a in arrivals[1:]] == [
        (cid, ("message_in", "reopened"), {})]

    # A re-delivery stores nothing, so nothing arrives.
    assert ingest_mail(seeded, tmp_path, reply, name="again.eml").json()[0]["action"] == "duplicate"
    assert len(arrivals) == 2


def test_chat_and_agent_arrivals(seeded, tmp_path, arrivals):
    lines = tmp_path / "in.jsonl"
    lines.write_text("".join(json.dumps(obj) + "\n" for obj in (
        {"channel": "chat", "thread": "t-1", "id": "m-1", "from": {"handle": "lea42"}, "text": "Hello"},
        {"channel": "chat", "thread": "t-1", "id": "m-2", "from": {"handle": "lea42"}, "text": "Anyone?"},
        {"channel": "sms", "thread": "t-2", "id": "s-1", "from": {"email": "Bob@Example.org"}, "text": "Hi"})))
    out = seeded.ok("ingest", "jsonl", lines, fmt="json").json()
    assert [(a.conversation_id, a.kinds, a.channel, a.sender, a.text, dict(a.headers)) for a in arrivals] == [
        (out[0]["id"], ("created", "message_in"), "chat", None, "Hello", {}),
        (out[0]["id"], ("message_in",), "chat", None, "Anyone?", {}),
        (out[2]["id"], ("created", "message_in"), "sms", "bob@example.org", "Hi", {})]

    del arrivals[:]
    [conv] = seeded.json("new", "--channel", "phone", "--contact", "carla@example.com", "Call me back",
                         as_="alice")
    cid = conv["id"]
    [arrival] = arrivals
    assert (arrival.conversation_id, arrival.kinds, arrival.channel, arrival.sender, arrival.text) == (
        cid, ("created", "message_in"), "phone", "carla@example.com", "Call me back")


def test_parse_keeps_the_headers_automations_read():
    msg = email_message("h-1@example.org", sender="list@example.org", subject="Digest",
                        date="Fri, 20 Nov 2026 10:00:00 +0000", body="News")
    msg["Precedence"] = "bulk"
    msg["X-Other"] = "not kept"
    parsed = ingest_email.parse(msg.as_bytes())
    assert parsed.headers == {"precedence": "bulk"}
