"""`deskctl ingest email`: real messages in (multipart with HTML and attachments,
ISO-8859-1 and encoded words, a broken boundary, no Message-ID, a 10 MB attachment, an
mbox thread, a Maildir), threading, contact replies, idempotency, exit codes."""

from __future__ import annotations

import hashlib
import mailbox
from datetime import timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from click.testing import CliRunner

from deskctl.cli import cli
from tests.factories import T0, make_conversation

MAIL = Path(__file__).resolve().parent.parent / "data" / "mail"
NOW = "2026-11-23T12:00:00+00:00"


@pytest.fixture
def mail_desk(seeded):
    seeded.now = NOW
    return seeded


def ingest(desk, *args, **kwargs):
    return desk.run("ingest", "email", *[str(a) for a in args], fmt="json", **kwargs)


def show(desk, cid) -> dict:
    [record] = desk.json("show", cid)
    return record


def events(desk, cid):
    return [(r["kind"], loads(r["data"])) for r in desk.rows(
        "SELECT kind, data FROM events WHERE conversation_id = :c ORDER BY id", c=cid)]


def loads(value):
    import json

    return value if isinstance(value, (dict, list)) else json.loads(value)


def test_multipart_with_html_and_attachments(mail_desk, tmp_path):
    result = ingest(mail_desk, MAIL / "multipart_html_attachment.eml", "--group", "billing")
    assert result.exit_code == 0, result
    [record] = result.json()
    assert record["message_id"] == "CAH8a1kP2x=Vb7Qh0@mail.example.fr" and record["action"] == "created"
    cid = record["id"]

    [conv] = mail_desk.rows("SELECT c.subject, c.channel, c.status, g.name AS grp, c.location_id, c.contact_id "
                            "FROM conversations c JOIN groups g ON g.id = c.group_id")
    assert conv["subject"] == "Facture 2026-1142 : montant incorrect"
    assert (conv["channel"], conv["status"], conv["grp"]) == ("email", "new", "billing")
    assert conv["location_id"] is not None  # billing's location
    [contact] = mail_desk.rows("SELECT id, name, email FROM contacts")
    assert contact == {"id": conv["contact_id"], "name": "Léa Dubois", "email": "lea.dubois@example.fr"}

    [shown] = show(mail_desk, cid)["messages"]
    assert shown["kind"] == "inbound" and shown["external_id"] == record["message_id"]
    assert "compte deux fois l'abonnement Pro (voir pièce jointe)" in shown["text"]
    assert "<table" in shown["html"] and "https://billing.example.com/invoices/2026-1142" in shown["html"]
    assert shown["cc"] == ["marc.petit@example.fr", "compta@example.fr"]
    assert shown["at"] == NOW  # received now (SPEC §13)...
    assert shown["sent_at"].startswith("2026-11-20T09:02:05")  # ...the Date header kept, in UTC

    original = message_from_bytes((MAIL / "multipart_html_attachment.eml").read_bytes(), policy=policy.default)
    expected = {part.get_filename(): part.get_content() for part in original.iter_attachments()}
    assert [a["filename"] for a in shown["attachments"]] == ["facture-2026-1142.pdf", "capture écran.png"]
    for att in shown["attachments"]:
        data = expected[att["filename"]]
        assert att["size"] == len(data) and att["sha256"] == hashlib.sha256(data).hexdigest()
        stored = tmp_path / "data" / "deskctl" / "attachments" / att["sha256"][:2] / att["sha256"]
        assert stored.read_bytes() == data
    assert [a["content_type"] for a in shown["attachments"]] == ["application/pdf", "image/png"]

    assert events(mail_desk, cid) == [
        ("created", {"channel": "email", "source": "email"}),
        ("message_in", {"message_id": shown["id"], "external_id": record["message_id"]}),
    ]


def test_html_only_message_gets_a_text_rendering_with_tables_and_links(mail_desk):
    [record] = ingest(mail_desk, MAIL / "html_only.eml").json()
    [shown] = show(mail_desk, record["id"])["messages"]
    text = shown["text"]
    assert "Your order has shipped" in text
    assert "here <https://track.acme.example/A-88213>" in text
    assert "USB-C dock | 1   | €89.00" in text  # windows-1252 euro sign, table row kept
    assert "- Carrier: DHL" in text
    assert "track()" not in text and "Shipped" not in text.splitlines()[0:1]  # script and title dropped
    assert shown["html"].startswith("<!DOCTYPE html>")


def test_iso_8859_1_body_and_encoded_word_headers(mail_desk):
    [record] = ingest(mail_desk, MAIL / "latin1_encoded_words.eml").json()
    conv = show(mail_desk, record["id"])
    assert conv["subject"] == "Problème de connexion à mon compte (réponse urgente)"
    assert conv["contact"]["name"] == "François Lefèvre"
    assert conv["contact"]["email"] == "francois.lefevre@orange.example"
    [message] = conv["messages"]
    assert "« mot de passe erroné »" in message["text"] and "Ça devient très gênant." in message["text"]
    assert message["cc"] == ["helene@orange.example"]


def test_broken_mime_boundary_is_quarantined_with_its_bytes_exit_65(mail_desk):
    raw = (MAIL / "broken_boundary.eml").read_bytes()
    result = ingest(mail_desk, MAIL / "broken_boundary.eml")
    assert result.exit_code == 65, result
    [record] = result.json()
    assert record["action"] == "quarantined" and record["id"] is None
    assert record["message_id"] == "a81f-broken-22@example.net"
    [row] = mail_desk.rows("SELECT id, source, reason, raw, status, filename FROM quarantine")
    assert row["id"] == record["quarantine_id"]
    assert bytes(row["raw"]) == raw and row["status"] == "held" and row["source"] == "email"
    assert row["filename"] == "broken_boundary.eml"
    assert "boundary" in row["reason"] and "----=_Part_1234_5678.1700000000000" in row["reason"]
    assert "quarantined" in result.stderr and "broken MIME structure" in result.stderr
    assert mail_desk.scalar("SELECT count(*) FROM messages") == 0
    assert mail_desk.scalar("SELECT count(*) FROM conversations") == 0


def test_message_without_sender_is_quarantined(mail_desk):
    result = ingest(mail_desk, MAIL / "no_sender.eml")
    assert result.exit_code == 65
    assert "no sender address" in mail_desk.scalar("SELECT reason FROM quarantine")


def test_no_message_id_gets_a_stable_synthetic_one(mail_desk):
    raw = (MAIL / "no_message_id.eml").read_bytes()
    [first] = ingest(mail_desk, "-", input=raw).json()
    assert first["action"] == "created"
    assert first["message_id"].startswith("synthetic.") and first["message_id"].endswith("@deskctl.invalid")
    # The same message relayed once more (a new Received line) is still the same message.
    relayed = b"Received: from relay2.example (relay2.example [192.0.2.80]) by mx.desk.example;\r\n" + raw
    [again] = ingest(mail_desk, "-", input=relayed).json()
    assert again == {**first, "action": "duplicate"}
    assert mail_desk.scalar("SELECT count(*) FROM messages") == 1
    text = mail_desk.scalar("SELECT text FROM messages")
    assert "Téléphone : 06 12 34 56 78" in text


def test_redelivered_message_id_is_a_no_op(mail_desk):
    ingest(mail_desk, MAIL / "multipart_html_attachment.eml")
    before = mail_desk.dump()
    result = ingest(mail_desk, MAIL / "multipart_html_attachment.eml")
    assert result.exit_code == 0
    assert [r["action"] for r in result.json()] == ["duplicate"]
    assert mail_desk.dump() == before


def test_thread_mbox_threads_by_in_reply_to_and_references(mail_desk):
    result = ingest(mail_desk, "--mbox", MAIL / "thread.mbox")
    assert result.exit_code == 0, result
    records = result.json()
    assert [(r["message_id"], r["action"]) for r in records] == [
        ("5f2c1e9a-thread-1@mail.example.fr", "created"),
        ("5f2c1e9a-thread-2@mail.example.fr", "appended"),
        ("DB9PR0102MB3356A1@eurprd01.prod.outlook.example", "appended"),  # via References
        ("q-2001@shop.example", "created"),
    ]
    first = records[0]["id"]
    assert records[1]["id"] == records[2]["id"] == first != records[3]["id"]
    conv = show(mail_desk, first)
    assert conv["contact"]["email"] == "lea.dubois@example.fr"
    assert [m["author"] for m in conv["messages"]] == ["Léa Dubois", "Léa Dubois", "Marc Petit"]
    assert ">From the export page" not in conv["messages"][0]["text"]  # mboxrd quoting is undone...
    assert "From the export page" in conv["messages"][0]["text"]
    assert mail_desk.scalar("SELECT count(*) FROM contacts") == 3


def test_an_mbox_is_not_all_or_nothing(mail_desk, tmp_path):
    box = tmp_path / "mixed.mbox"
    thread = (MAIL / "thread.mbox").read_bytes()
    bad = (MAIL / "no_sender.eml").read_bytes().replace(b"\r\n", b"\n")
    cut = thread.index(b"From marc.petit@example.fr")
    box.write_bytes(thread[:cut] + b"From MAILER-DAEMON Fri Nov 20 08:00:00 2026\n" + bad + b"\n" + thread[cut:])
    result = ingest(mail_desk, "--mbox", box)
    assert result.exit_code == 65
    assert [r["action"] for r in result.json()] == ["created", "appended", "quarantined", "appended", "created"]
    assert mail_desk.scalar("SELECT count(*) FROM messages") == 4
    assert mail_desk.scalar("SELECT count(*) FROM quarantine") == 1
    assert "1 message(s) quarantined" in result.stderr


def test_mbox_commits_in_batches_and_a_rerun_is_idempotent(mail_desk, tmp_path, monkeypatch):
    from deskctl.services.inbound import maildir

    monkeypatch.setattr(maildir, "EMAIL_BATCH", 2)
    first = ingest(mail_desk, "--mbox", MAIL / "thread.mbox").json()
    again = ingest(mail_desk, "--mbox", MAIL / "thread.mbox").json()
    assert [r["action"] for r in first] == ["created", "appended", "appended", "created"]
    assert [r["action"] for r in again] == ["duplicate"] * 4
    assert [r["id"] for r in again] == [r["id"] for r in first]


@pytest.mark.parametrize("status", ["pending", "resolved"])
def test_contact_reply_to_pending_or_resolved_brings_it_back_and_cancels_the_boomerang(mail_desk, status):
    [record] = ingest(mail_desk, MAIL / "multipart_html_attachment.eml").json()
    cid = record["id"]
    with mail_desk.engine.begin() as conn:
        from sqlalchemy import text

        conn.execute(text("UPDATE conversations SET status = :s, boomerang_at = :b, pending_since = :p "
                          "WHERE id = :c"), {"s": status, "b": "2026-11-25 09:00:00" if mail_desk.engine_name ==
                                             "sqlite" else T0 + timedelta(days=5), "p": None, "c": cid})
    reply = (b"From: Lea Dubois <lea.dubois@example.fr>\r\nTo: support@desk.example\r\n"
             b"Subject: Re: Facture\r\nMessage-ID: <reply-2@mail.example.fr>\r\n"
             b"In-Reply-To: <CAH8a1kP2x=Vb7Qh0@mail.example.fr>\r\nDate: Mon, 23 Nov 2026 11:00:00 +0000\r\n"
             b"\r\nAny news?\r\n")
    [again] = ingest(mail_desk, "-", input=reply).json()
    assert again == {"message_id": "reply-2@mail.example.fr", "id": cid, "action": "appended",
                     "quarantine_id": None, "reason": None}
    [row] = mail_desk.rows("SELECT status, boomerang_at, last_inbound_at, version FROM conversations")
    assert row["status"] == "new" and row["boomerang_at"] is None
    assert str(row["last_inbound_at"]).startswith("2026-11-23 12:00:00")  # received at NOW, not its Date
    assert row["version"] >= 2
    assert events(mail_desk, cid)[-1] == ("reopened", {"previous_status": status, "cause": "contact_reply"})


def test_contact_reply_to_open_is_just_appended(mail_desk):
    [record] = ingest(mail_desk, MAIL / "multipart_html_attachment.eml").json()
    mail_desk.ok("claim", record["id"], as_="alice")
    reply = (b"From: lea.dubois@example.fr\r\nSubject: Re: Facture\r\nMessage-ID: <r3@mail.example.fr>\r\n"
             b"References: <CAH8a1kP2x=Vb7Qh0@mail.example.fr>\r\n\r\nStill there?\r\n")
    [again] = ingest(mail_desk, "-", input=reply).json()
    assert again["action"] == "appended"
    assert mail_desk.scalar("SELECT status FROM conversations") == "open"
    assert "reopened" not in [k for k, _ in events(mail_desk, record["id"])]
    # The assignee hears of the contact's reply (the first message created nobody's work).
    assert mail_desk.rows("SELECT recipient, conversation_id FROM outbox WHERE dedupe_key LIKE 'message_in:%'") == [
        {"recipient": "alice@desk.example", "conversation_id": record["id"]}]


def test_contact_reply_to_closed_opens_a_new_linked_conversation(mail_desk):
    [record] = ingest(mail_desk, MAIL / "multipart_html_attachment.eml", "--group", "billing").json()
    old = record["id"]
    with mail_desk.engine.begin() as conn:
        from sqlalchemy import text

        conn.execute(text("UPDATE conversations SET status = 'closed' WHERE id = :c"), {"c": old})
    reply = (f"From: lea.dubois@example.fr\r\nSubject: Re: [#{old}] Facture 2026-1142\r\n"
             "Message-ID: <after-close@mail.example.fr>\r\n"
             "In-Reply-To: <CAH8a1kP2x=Vb7Qh0@mail.example.fr>\r\n\r\nIt happened again.\r\n").encode()
    [again] = ingest(mail_desk, "-", input=reply).json()
    assert again["action"] == "created" and again["id"] != old
    conv = show(mail_desk, again["id"])
    assert conv["linked_to"] == old and conv["status"] == "new" and conv["group"] == "billing"
    assert conv["subject"] == "Re: Facture 2026-1142"
    assert mail_desk.scalar("SELECT status FROM conversations WHERE id = :c", c=old) == "closed"
    assert events(mail_desk, again["id"])[0] == ("created", {"channel": "email", "source": "email",
                                                             "linked_to": old})


def test_subject_tag_threads_when_no_header_matches(mail_desk):
    cid = make_conversation(mail_desk, subject="Invoice question")
    message = (f"From: Someone Else <other@example.org>\r\nSubject: RE: [#{cid}] Invoice question\r\n"
               "Message-ID: <tagged-1@example.org>\r\nIn-Reply-To: <unknown@nowhere.example>\r\n\r\n"
               "Forwarding the answer.\r\n").encode()
    [record] = ingest(mail_desk, "-", input=message).json()
    assert (record["id"], record["action"]) == (cid, "appended")
    # (Another parent too: one shared with tagged-1 would thread it there, SPEC §9.)
    unknown = message.replace(f"[#{cid}]".encode(), b"[#999999]").replace(b"tagged-1", b"tagged-2") \
        .replace(b"unknown@", b"other-unknown@")
    [other] = ingest(mail_desk, "-", input=unknown).json()
    assert other["action"] == "created" and other["id"] != cid


def test_reply_to_our_outbound_email_threads_by_its_message_id(mail_desk):
    cid = make_conversation(mail_desk, assignee="alice")
    [sent] = mail_desk.json("reply", cid, "We are looking into it.", as_="alice")
    answer = (f"From: Lea <lea@example.fr>\r\nSubject: Re: [#{cid}] Re: Invoice question\r\n"
              f"Message-ID: <thanks@example.fr>\r\nIn-Reply-To: <{sent['external_id']}>\r\n\r\nThanks!\r\n").encode()
    [record] = ingest(mail_desk, "-", input=answer).json()
    assert (record["id"], record["action"]) == (cid, "appended")


def test_ten_megabyte_attachment(mail_desk, tmp_path):
    data = hashlib.sha256(b"seed").digest() * (10 * 1024 * 1024 // 32)
    msg = EmailMessage()
    msg["From"] = "Big Sender <big@example.com>"
    msg["To"] = "support@desk.example"
    msg["Subject"] = "Logs attached"
    msg["Message-ID"] = "<big-1@example.com>"
    msg.set_content("The full log is attached.\n")
    msg.add_attachment(data, maintype="application", subtype="gzip", filename="server.log.gz")
    path = tmp_path / "big.eml"
    path.write_bytes(msg.as_bytes())
    [record] = ingest(mail_desk, path).json()
    assert record["action"] == "created"
    [att] = mail_desk.rows("SELECT filename, content_type, size, sha256 FROM attachments")
    digest = hashlib.sha256(data).hexdigest()
    assert att == {"filename": "server.log.gz", "content_type": "application/gzip", "size": len(data),
                   "sha256": digest}
    stored = tmp_path / "data" / "deskctl" / "attachments" / digest[:2] / digest
    assert stored.stat().st_size == 10 * 1024 * 1024 and hashlib.sha256(stored.read_bytes()).hexdigest() == digest


def test_maildir(mail_desk, tmp_path):
    box = mailbox.Maildir(tmp_path / "Maildir", create=True)
    box.add((MAIL / "latin1_encoded_words.eml").read_bytes())
    box.add((MAIL / "html_only.eml").read_bytes())
    box.close()
    result = ingest(mail_desk, "--maildir", tmp_path / "Maildir")
    assert result.exit_code == 0, result
    assert sorted(r["action"] for r in result.json()) == ["created", "created"]
    assert mail_desk.scalar("SELECT count(*) FROM conversations") == 2


def test_tsv_output_and_summary(mail_desk):
    result = mail_desk.run("ingest", "email", MAIL / "html_only.eml", fmt="tsv")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split("\t")[:3] == ["message_id", "id", "action"]
    assert lines[1].split("\t")[:3] == ["order-88213.shipped@acme.example", "1", "created"]
    assert "ingested 1 message: 1 created" in result.stderr


def test_usage_errors_change_nothing(mail_desk):
    # An MTA gateway exits only 0, 65 or 75 (SPEC §9): a usage error is "retry later".
    before = mail_desk.dump()
    assert mail_desk.run("ingest", "email").exit_code == 75
    assert mail_desk.run("ingest", "email", MAIL / "html_only.eml", "--mbox", MAIL / "thread.mbox").exit_code == 75
    assert mail_desk.run("ingest", "email", "/nonexistent/x.eml").exit_code == 75
    unknown = mail_desk.run("ingest", "email", MAIL / "html_only.eml", "--group", "nope")
    assert unknown.exit_code == 75 and "group not found: nope" in unknown.stderr
    assert mail_desk.dump() == before


def test_database_unreachable_exits_75_for_the_mta(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    raw = (MAIL / "html_only.eml").read_bytes()
    result = CliRunner().invoke(
        cli, ["ingest", "email", "-"], input=raw,
        env={"DESKCTL_DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1:1/nowhere"})
    assert result.exit_code == 75, result.output
    assert "safe to retry" in result.stderr


def test_database_locked_exits_75(mail_desk, tmp_path, monkeypatch):
    if mail_desk.engine_name != "sqlite":
        pytest.skip("SQLite locking")
    import sqlite3

    from deskctl.db import engine as engine_module

    monkeypatch.setattr(engine_module, "SQLITE_BUSY_TIMEOUT_MS", 200)
    path = mail_desk.url.removeprefix("sqlite:///")
    mail_desk.ok("ingest", "email", MAIL / "html_only.eml")  # schema checked, file exists
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        result = mail_desk.run("ingest", "email", MAIL / "latin1_encoded_words.eml")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.exit_code == 75, result
    assert mail_desk.scalar("SELECT count(*) FROM quarantine") == 0
    assert mail_desk.scalar("SELECT count(*) FROM messages") == 1


def test_mbox_from_stdin(mail_desk):
    result = ingest(mail_desk, "--mbox", "-", input=(MAIL / "thread.mbox").read_bytes())
    assert result.exit_code == 0, result
    assert [r["action"] for r in result.json()] == ["created", "appended", "appended", "created"]


def test_a_batch_handles_duplicates_and_replies_to_closed_within_itself(mail_desk, tmp_path):
    from tests.factories import make_conversation as make

    closed = make(mail_desk, status="closed", subject="Old question")  # has message m{closed}@example.fr
    first = (f"From: Lea <lea@example.fr>\nSubject: Re: Old question\nMessage-ID: <again-1@example.fr>\n"
             f"In-Reply-To: <m{closed}@example.fr>\n\nIt is back.\n")
    follow = ("From: Lea <lea@example.fr>\nSubject: Re: Old question\nMessage-ID: <again-2@example.fr>\n"
              "In-Reply-To: <again-1@example.fr>\n\nAnd worse.\n")
    box = tmp_path / "b.mbox"
    box.write_text("".join(f"From lea@example.fr Mon Nov 23 10:00:00 2026\n{m}\n" for m in (first, follow, first)))
    records = ingest(mail_desk, "--mbox", box).json()
    assert [r["action"] for r in records] == ["created", "appended", "duplicate"]
    new_id = records[0]["id"]
    assert new_id != closed and records[1]["id"] == records[2]["id"] == new_id
    assert show(mail_desk, new_id)["linked_to"] == closed
    assert mail_desk.scalar("SELECT count(*) FROM events WHERE kind = 'message_in'") == 2


def test_a_long_references_header_still_threads_on_the_newest_ancestor(mail_desk):
    [record] = ingest(mail_desk, MAIL / "html_only.eml").json()
    refs = " ".join(f"<old-{n}@lists.example>" for n in range(300)) + " <order-88213.shipped@acme.example>"
    reply = (f"From: billing@acme.example\r\nSubject: Re: shipped\r\nMessage-ID: <long-refs@acme.example>\r\n"
             f"References: {refs}\r\n\r\nUpdate.\r\n").encode()
    [again] = ingest(mail_desk, "-", input=reply).json()
    assert (again["id"], again["action"]) == (record["id"], "appended")
