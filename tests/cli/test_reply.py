"""`deskctl reply`: the stored outbound message, the queued RFC 5322 email, and every
refusal (exit codes, nothing changed)."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from email import message_from_bytes, policy

from sqlalchemy import select

from deskctl.models import Contact, Conversation, Message, Outbox
from tests.factories import T0, make_conversation


def queued_email(desk, outbox_id):
    with desk.session() as session:
        raw = session.scalar(select(Outbox.raw).where(Outbox.id == outbox_id))
    return message_from_bytes(raw, policy=policy.default)


def test_reply_on_email_stores_message_and_queues_a_threaded_email(seeded):
    cid = make_conversation(seeded, assignee="alice")
    seeded.now = (T0 + timedelta(minutes=20)).isoformat()
    [record] = seeded.json("reply", f"#{cid}", "Thanks, we are on it.", "--cc", "boss@example.fr", as_="alice")
    assert record["id"] == cid and record["queued"] is True
    assert record["to"] == "lea@example.fr" and record["cc"] == ["boss@example.fr"]
    assert record["subject"] == f"[#{cid}] Re: Invoice question"

    [out] = seeded.rows("SELECT direction, text, external_id, in_reply_to FROM messages WHERE direction = 'outbound'")
    assert out["text"] == "Thanks, we are on it."
    assert out["external_id"] == record["external_id"] and out["external_id"].endswith("@example.com")
    assert out["in_reply_to"] == f"m{cid}@example.fr"
    with seeded.session() as session:
        conv = session.get(Conversation, cid)
        assert conv.first_response_at == T0 + timedelta(minutes=20)  # counts for the SLA
    assert seeded.scalar("SELECT count(*) FROM events WHERE kind = 'message_out'") == 1

    [row] = seeded.rows("SELECT kind, recipient, status, dedupe_key, conversation_id FROM outbox")
    assert row == {"kind": "email", "recipient": "lea@example.fr", "status": "queued",
                   "dedupe_key": f"email:{record['external_id']}", "conversation_id": cid}
    msg = queued_email(seeded, record["outbox_id"])
    assert msg["Subject"] == f"[#{cid}] Re: Invoice question"
    assert msg["From"] == "support@example.com"
    assert msg["To"] == "Lea <lea@example.fr>"
    assert msg["Cc"] == "boss@example.fr"
    assert msg["In-Reply-To"] == f"<m{cid}@example.fr>"
    assert msg["References"] == f"<m{cid}@example.fr>"
    assert msg["Message-ID"] == f"<{record['external_id']}>"


def test_references_carry_the_thread_and_follow_the_last_inbound_message(seeded):
    cid = make_conversation(seeded, assignee="alice")
    with seeded.session() as session:
        conv = session.get(Conversation, cid)
        session.add(Message(conversation_id=cid, direction="inbound", author_contact_id=conv.contact_id,
                            channel="email", subject="Re: Invoice question", text="Any news?",
                            external_id="m2@example.fr", in_reply_to="<out1@example.com>",
                            references=f"<m{cid}@example.fr> <out1@example.com>",
                            created_at=T0 + timedelta(hours=1), cc=[], bcc=[]))
    record = seeded.json("reply", cid, "Yes: done.", as_="alice")[0]
    msg = queued_email(seeded, record["outbox_id"])
    assert msg["In-Reply-To"] == "<m2@example.fr>"
    assert msg["References"] == f"<m{cid}@example.fr> <out1@example.com> <m2@example.fr>"


def test_reply_from_stdin_and_from_file(seeded, tmp_path):
    cid = make_conversation(seeded, assignee="alice")
    seeded.ok("reply", cid, "-", input="From stdin\nsecond line\n", as_="alice")
    body = tmp_path / "answer.txt"
    body.write_text("From a file — é\n", encoding="utf-8")
    seeded.ok("reply", cid, "--file", body, as_="alice")
    texts = [r["text"] for r in seeded.rows("SELECT text FROM messages WHERE direction = 'outbound' ORDER BY id")]
    assert texts == ["From stdin\nsecond line\n", "From a file — é\n"]


def test_attachments_are_sent_and_stored_content_addressed(seeded, tmp_path):
    cid = make_conversation(seeded, assignee="alice")
    data = bytes(range(256)) * 40
    path = tmp_path / "scan.png"
    path.write_bytes(data)
    record = seeded.json("reply", cid, "See attached.", "--attach", path, as_="alice")[0]
    assert record["attachments"] == ["scan.png"]
    digest = hashlib.sha256(data).hexdigest()
    [att] = seeded.rows("SELECT filename, content_type, size, sha256 FROM attachments")
    assert att == {"filename": "scan.png", "content_type": "image/png", "size": len(data), "sha256": digest}
    stored = tmp_path / "data" / "deskctl" / "attachments" / digest[:2] / digest
    assert stored.read_bytes() == data
    [part] = list(queued_email(seeded, record["outbox_id"]).iter_attachments())
    assert part.get_content_type() == "image/png" and part.get_content() == data
    shown = seeded.json("show", cid)[0]["messages"]
    assert shown[-1]["attachments"][0]["sha256"] == digest


def test_reply_on_chat_is_stored_only(seeded):
    cid = make_conversation(seeded, channel="chat", assignee="alice")
    record = seeded.json("reply", cid, "Hi on chat", as_="alice")[0]
    assert record["queued"] is False and record["external_id"] is None
    assert seeded.scalar("SELECT count(*) FROM outbox") == 0
    assert seeded.scalar("SELECT count(*) FROM messages WHERE direction = 'outbound'") == 1
    result = seeded.run("reply", cid, "again", "--cc", "x@example.fr", as_="alice")
    assert result.exit_code == 2 and "apply to email only" in result.stderr


def test_refusals_change_nothing(seeded):
    cid = make_conversation(seeded, assignee="alice")
    closed = make_conversation(seeded, assignee="alice", status="closed")
    before = seeded.dump()
    cases = [
        (("reply", closed, "late"), "alice", 4),
        (("reply", 999, "nobody"), "alice", 3),
        (("reply", cid, "not mine"), "dave", 5),           # lyon agent, billing conversation
        (("reply", cid), "alice", 2),                       # no text
        (("reply", cid, "x", "--template", "t"), "alice", 2),  # two sources
        (("reply", cid, "x", "--cc", "not-an-address"), "alice", 2),
        (("reply", cid, "   "), "alice", 2),                # empty
        (("reply", cid, "--template", "missing"), "alice", 3),
        (("reply", "abc", "x"), "alice", 2),
    ]
    for args, who, code in cases:
        result = seeded.run(*args, as_=who)
        assert result.exit_code == code, (args, result)
        assert result.stderr.strip().count("\n") == 0  # one line
    assert seeded.dump() == before


def test_email_conversation_without_contact_email_is_a_conflict(seeded):
    cid = make_conversation(seeded, assignee="alice")
    with seeded.session() as session:
        contact = session.get(Contact, session.get(Conversation, cid).contact_id)
        contact.email = None
    before = seeded.dump()
    result = seeded.run("reply", cid, "hello", as_="alice")
    assert result.exit_code == 4 and "no email address" in result.stderr
    assert seeded.dump() == before


def test_reply_with_template_renders_the_fields(seeded):
    cid = make_conversation(seeded, assignee="alice", subject="Refund please")
    seeded.ok("template", "add", "thanks",
              "Dear {contact.name} ({contact.email}), about #{conversation.id} \"{conversation.subject}\": "
              "done. {{{agent.name}}} / {agent.handle}", as_="carol")
    record = seeded.json("reply", cid, "--template", "thanks", as_="alice")[0]
    text = seeded.scalar("SELECT text FROM messages WHERE id = :id", id=record["message_id"])
    assert text == (f"Dear Lea (lea@example.fr), about #{cid} \"Refund please\": done. "
                    "{Alice Martin} / alice")
    assert record["subject"] == f"[#{cid}] Re: Refund please"


def test_subject_tag_is_not_doubled(seeded):
    cid = make_conversation(seeded, assignee="alice")
    with seeded.session() as session:
        session.get(Conversation, cid).subject = f"RE: Re: [#{cid}] Invoice question"
    record = seeded.json("reply", cid, "ok", as_="alice")[0]
    assert record["subject"] == f"[#{cid}] Re: Invoice question"
