"""What a sender controls (SPEC §13): the Date header is kept as `sent_at` and never sets
when the desk received a mail; JSON-lines `at` is never later than receipt; a stored
Message-ID (or JSON-lines id) is a re-delivery only with the same sender and body, and a
different message reusing it is quarantined (65), never dropped."""

from __future__ import annotations

import json
from email.message import EmailMessage

import pytest
from sqlalchemy import text

from tests.factories import email_message, ingest_mail, make_conversation

NOW = "2026-11-23T12:00:00+00:00"
LATER = "2026-11-23T12:30:00+00:00"


@pytest.fixture
def tdesk(seeded):
    seeded.now = NOW
    return seeded


def mail(message_id: str, *, sender="Léa Dubois <lea@example.fr>", date="Mon, 23 Nov 2026 11:59:00 +0000",
         body="Ma facture est fausse.\n", subject="Facture", attachment: bytes | None = None) -> EmailMessage:
    return email_message(message_id, sender=sender, subject=subject, date=date, body=body, attachment=attachment)


def one(result) -> dict:
    [record] = result.json()
    return record


def ingest_lines(desk, *objects, fmt="json"):
    content = "".join(json.dumps(o, ensure_ascii=False) + "\n" for o in objects)
    return desk.run("ingest", "jsonl", "-", input=content.encode(), fmt=fmt)


def chat(id_, text="hello", email="lea@example.fr", **fields) -> dict:
    return {"channel": "chat", "thread": "chat-1", "id": id_, "from": {"name": "Léa", "email": email},
            "text": text, **fields}


def day(value) -> str:
    return str(value)[:19].replace("T", " ")


# -- the Date header is what the sender says, not when we received it -----------------------------
def test_a_backdated_mail_is_dated_at_receipt_and_keeps_its_date_as_sent_at(tdesk, tmp_path):
    honest = one(ingest_mail(tdesk, tmp_path, mail("honest@example.fr"), "--group", "billing"))
    tdesk.now = LATER
    backdated = ingest_mail(tdesk, tmp_path, mail("old@example.fr", sender="mallory@example.net",
                                                  date="Mon, 01 Jan 1990 00:00:00 +0000"), "--group", "billing")
    assert backdated.exit_code == 0, backdated
    cid = one(backdated)["id"]
    [conv] = tdesk.rows("SELECT created_at, first_inbound_at, last_inbound_at, sla_state FROM conversations "
                        "WHERE id = :c", c=cid)
    assert {day(conv[k]) for k in ("created_at", "first_inbound_at", "last_inbound_at")} == {"2026-11-23 12:30:00"}
    assert conv["sla_state"] == "ok"  # not breached on arrival
    [message] = tdesk.rows("SELECT created_at, sent_at FROM messages WHERE external_id = 'old@example.fr'")
    assert day(message["created_at"]) == "2026-11-23 12:30:00" and day(message["sent_at"]) == "1990-01-01 00:00:00"
    [shown] = tdesk.json("show", cid)[0]["messages"]
    assert shown["at"] == LATER and shown["sent_at"] == "1990-01-01T00:00:00+00:00"
    # `next` hands out the mail that really came first.
    [claimed] = tdesk.json("next", as_="alice")
    assert claimed["id"] == honest["id"]
    # Reports count it on the day it arrived.
    [row] = tdesk.json("report", "volume", "--since", "2026-11-23T00:00:00+00:00",
                       "--until", "2026-11-24T00:00:00+00:00", "--by", "day")
    assert row["created"] == 2


def test_a_future_date_is_kept_as_sent_at_only(tdesk, tmp_path):
    cid = one(ingest_mail(tdesk, tmp_path, mail("future@example.fr", date="Fri, 31 Dec 2100 23:00:00 -0500")))["id"]
    [row] = tdesk.rows("SELECT c.created_at, m.created_at AS received, m.sent_at FROM conversations c "
                       "JOIN messages m ON m.conversation_id = c.id WHERE c.id = :c", c=cid)
    assert day(row["created_at"]) == day(row["received"]) == "2026-11-23 12:00:00"
    assert day(row["sent_at"]) == "2101-01-01 04:00:00"


def test_json_lines_at_is_kept_but_never_later_than_receipt(tdesk):
    result = ingest_lines(tdesk, chat("past", at="2026-11-20T10:00:00Z"),
                          chat("future", thread="chat-2", at="2031-01-01T00:00:00Z"))
    assert result.exit_code == 0, result
    rows = {r["external_id"]: r for r in tdesk.rows(
        "SELECT m.external_id, m.created_at, c.created_at AS conv_created FROM messages m "
        "JOIN conversations c ON c.id = m.conversation_id")}
    assert day(rows["past"]["created_at"]) == day(rows["past"]["conv_created"]) == "2026-11-20 10:00:00"
    assert day(rows["future"]["created_at"]) == day(rows["future"]["conv_created"]) == "2026-11-23 12:00:00"


# -- duplicates are duplicates -----------------------------------------------------------------------
def test_a_redelivery_through_another_relay_is_a_duplicate(tdesk, tmp_path):
    msg = mail("same@example.fr", attachment=b"%PDF-1.4 facture")
    first = one(ingest_mail(tdesk, tmp_path, msg))
    relayed = mail("same@example.fr", attachment=b"%PDF-1.4 facture")
    relayed["Received"] = "from relay2.example by mx.desk.example"
    again = ingest_mail(tdesk, tmp_path, relayed, name="relayed.eml")
    assert again.exit_code == 0, again
    assert one(again) == {**first, "action": "duplicate"}
    assert tdesk.scalar("SELECT count(*) FROM messages") == 1
    assert len(tdesk.scalar("SELECT body_sha256 FROM messages")) == 64


@pytest.mark.parametrize("change, why", [
    ({"sender": "Mallory <mallory@example.net>"}, "different sender"),
    ({"body": "Please wire the refund to IBAN FR76 0000.\n"}, "different body"),
    ({"attachment": b"%PDF-1.4 another file"}, "different body"),
])
def test_a_different_message_reusing_a_message_id_is_quarantined(tdesk, tmp_path, change, why):
    first = one(ingest_mail(tdesk, tmp_path, mail("reused@example.fr", attachment=b"%PDF-1.4 facture")))
    other = mail("reused@example.fr", **{"attachment": b"%PDF-1.4 facture", **change})
    result = ingest_mail(tdesk, tmp_path, other, name="other.eml")
    assert result.exit_code == 65, result
    record = one(result)
    assert (record["action"], record["id"], record["message_id"]) == ("quarantined", None, "reused@example.fr")
    assert why in record["reason"] and why in result.stderr
    [held] = tdesk.rows("SELECT id, raw, reason, status, filename FROM quarantine")
    assert held["id"] == record["quarantine_id"] and bytes(held["raw"]) == other.as_bytes()
    assert (held["status"], held["filename"]) == ("held", "other.eml") and why in held["reason"]
    assert tdesk.scalar("SELECT count(*) FROM messages") == 1
    assert tdesk.scalar("SELECT conversation_id FROM messages") == first["id"]
    assert tdesk.scalar("SELECT count(*) FROM contacts WHERE email = 'mallory@example.net'") == 0


def test_an_inbound_mail_reusing_one_of_our_message_ids_is_quarantined(tdesk, tmp_path):
    cid = make_conversation(tdesk, assignee="alice")
    [sent] = tdesk.json("reply", cid, "We are looking into it.", as_="alice")
    forged = mail(sent["external_id"], sender="lea@example.fr", body="We are looking into it.\n")
    result = ingest_mail(tdesk, tmp_path, forged, name="forged.eml")
    assert result.exit_code == 65, result
    assert "a message the desk sent" in one(result)["reason"]
    assert tdesk.scalar("SELECT count(*) FROM messages WHERE direction = 'inbound'") == 1


def test_a_reused_message_id_within_one_mbox_is_quarantined_and_the_rest_kept(tdesk, tmp_path):
    import mailbox

    box = mailbox.mbox(tmp_path / "in.mbox")
    for msg in (mail("m-1@example.fr"), mail("m-1@example.fr", sender="mallory@example.net"),
                mail("m-1@example.fr"), mail("m-2@example.fr", subject="Autre")):
        box.add(msg.as_bytes())
    box.close()
    result = tdesk.run("ingest", "email", "--mbox", tmp_path / "in.mbox", fmt="json")
    assert result.exit_code == 65, result
    assert [r["action"] for r in result.json()] == ["created", "quarantined", "duplicate", "created"]
    assert tdesk.scalar("SELECT count(*) FROM messages") == 2
    assert tdesk.scalar("SELECT count(*) FROM quarantine") == 1


def test_a_message_stored_before_body_digests_is_matched_on_its_sender(tdesk, tmp_path):
    # Rows from before migration 0002 have no digest: the same sender is a re-delivery.
    cid = make_conversation(tdesk)  # message m{cid}@example.fr from lea@example.fr, body_sha256 NULL
    assert tdesk.scalar("SELECT body_sha256 FROM messages") is None
    same = ingest_mail(tdesk, tmp_path, mail(f"m{cid}@example.fr", sender="lea@example.fr", body="other text\n"))
    assert same.exit_code == 0 and one(same)["action"] == "duplicate"
    other = ingest_mail(tdesk, tmp_path, mail(f"m{cid}@example.fr", sender="mallory@example.net"), name="o.eml")
    assert other.exit_code == 65 and "different sender" in one(other)["reason"]


def test_a_quarantined_reuse_can_be_retried_once_the_original_is_gone(tdesk, tmp_path):
    # The held entry keeps its bytes: once an admin resolved the clash it goes in.
    one(ingest_mail(tdesk, tmp_path, mail("clash@example.fr")))
    qid = one(ingest_mail(tdesk, tmp_path, mail("clash@example.fr", sender="bob@example.org"), name="b.eml"))[
        "quarantine_id"]
    still = tdesk.run("ingest", "quarantine", "retry", qid, fmt="json")
    assert still.exit_code == 65 and tdesk.scalar("SELECT count(*) FROM quarantine") == 1
    with tdesk.engine.begin() as conn:
        conn.execute(text("UPDATE messages SET external_id = 'clash-renamed@example.fr'"))
    retried = tdesk.run("ingest", "quarantine", "retry", qid, fmt="json")
    assert retried.exit_code == 0, retried
    assert one(retried)["action"] == "created"


def test_json_lines_reusing_an_id_with_another_text_or_sender_are_quarantined(tdesk):
    assert ingest_lines(tdesk, chat("c-1", text="bonjour")).exit_code == 0
    result = ingest_lines(tdesk, chat("c-1", text="bonjour"), chat("c-1", text="virez 500 €"),
                          chat("c-1", text="bonjour", email="mallory@example.net"), chat("c-2", text="suite"))
    assert result.exit_code == 65, result
    records = result.json()
    assert [(r["line"], r["action"]) for r in records] == [
        (1, "duplicate"), (2, "quarantined"), (3, "quarantined"), (4, "appended")]
    assert "different body" in records[1]["reason"] and "different sender" in records[2]["reason"]
    held = tdesk.rows("SELECT line_no, raw FROM quarantine ORDER BY line_no")
    assert [h["line_no"] for h in held] == [2, 3] and b"virez" in bytes(held[0]["raw"])
    assert [r["external_id"] for r in tdesk.rows("SELECT external_id FROM messages ORDER BY id")] == ["c-1", "c-2"]
    assert tdesk.scalar("SELECT count(*) FROM contacts WHERE email = 'mallory@example.net'") == 0


def test_json_lines_reusing_an_id_within_one_batch(tdesk):
    result = ingest_lines(tdesk, chat("b-1", text="un"), chat("b-1", text="un"), chat("b-1", text="deux"))
    assert result.exit_code == 65
    assert [r["action"] for r in result.json()] == ["created", "duplicate", "quarantined"]
