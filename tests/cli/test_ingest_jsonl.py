"""`deskctl ingest jsonl` (SPEC §7): threads by (channel, thread), de-duplication by id,
bad lines quarantined with their line number while good ones are kept, exit 65."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from sqlalchemy import text

NOW = "2026-11-23T12:00:00+00:00"
SPEC_LINE = ('{"channel": "chat", "thread": "chat-8812", "id": "m-1", "at": "2026-11-20T10:02:00Z", '
             '"from": {"name": "Léa Dubois", "email": "lea@example.fr", "phone": null, "handle": null}, '
             '"text": "Bonjour...", "subject": null, "group": null, "priority": null, "attachments": []}')


@pytest.fixture
def jdesk(seeded):
    seeded.now = NOW
    return seeded


def line(**fields) -> str:
    base = {"channel": "chat", "thread": "t-1", "id": "x", "from": {"name": "Léa", "email": "lea@example.fr"},
            "text": "hello"}
    base.update(fields)
    return json.dumps(base, ensure_ascii=False)


def ingest(desk, content: str, *args, fmt="json"):
    return desk.run("ingest", "jsonl", "-", *args, input=content.encode("utf-8"), fmt=fmt)


def loads(value):
    return value if isinstance(value, (dict, list)) else json.loads(value)


def test_spec_example_creates_then_appends_then_duplicates(jdesk):
    content = "\n".join([SPEC_LINE, line(thread="chat-8812", id="m-2", text="Encore moi", at="2026-11-20T10:05:00Z"),
                         SPEC_LINE]) + "\n"
    result = ingest(jdesk, content)
    assert result.exit_code == 0, result
    records = result.json()
    assert [(r["line"], r["action"]) for r in records] == [(1, "created"), (2, "appended"), (3, "duplicate")]
    assert len({r["id"] for r in records}) == 1
    cid = records[0]["id"]
    [conv] = jdesk.rows("SELECT channel, thread_key, status, subject, first_inbound_at, last_inbound_at "
                        "FROM conversations")
    assert (conv["channel"], conv["thread_key"], conv["status"]) == ("chat", "chat-8812", "new")
    assert conv["subject"] == "Bonjour..."
    assert str(conv["first_inbound_at"]).startswith("2026-11-20 10:02:00")
    assert str(conv["last_inbound_at"]).startswith("2026-11-20 10:05:00")
    msgs = jdesk.rows("SELECT external_id, channel, text, author_name FROM messages ORDER BY id")
    assert [(m["external_id"], m["channel"], m["text"]) for m in msgs] == [
        ("m-1", "chat", "Bonjour..."), ("m-2", "chat", "Encore moi")]
    assert msgs[0]["author_name"] == "Léa Dubois"
    kinds = [r["kind"] for r in jdesk.rows("SELECT kind FROM events WHERE conversation_id = :c ORDER BY id", c=cid)]
    assert kinds == ["created", "message_in", "message_in"]
    created = loads(jdesk.scalar("SELECT data FROM events WHERE kind = 'created'"))
    assert created == {"channel": "chat", "source": "jsonl"}

    again = ingest(jdesk, content)
    assert [r["action"] for r in again.json()] == ["duplicate"] * 3
    assert jdesk.scalar("SELECT count(*) FROM messages") == 2


def test_bad_lines_are_quarantined_with_their_line_number_and_good_ones_kept(jdesk):
    lines = [
        line(id="ok-1"),
        "",  # blank lines are skipped but counted
        "{not json",
        line(id="no-from", **{"from": {}}),
        line(id="fax", channel="fax"),
        line(id="prio", priority="whenever"),
        line(id="grp", group="nope"),
        line(id="ok-2", thread="t-2", priority="high", group="support", subject="Shipping"),
        "[1, 2]",
    ]
    result = ingest(jdesk, "\n".join(lines) + "\n")
    assert result.exit_code == 65, result
    records = result.json()
    assert [(r["line"], r["action"]) for r in records] == [
        (1, "created"), (3, "quarantined"), (4, "quarantined"), (5, "quarantined"), (6, "quarantined"),
        (7, "quarantined"), (8, "created"), (9, "quarantined")]
    held = jdesk.rows("SELECT id, line_no, reason, raw, source FROM quarantine ORDER BY line_no")
    assert [h["line_no"] for h in held] == [3, 4, 5, 6, 7, 9]
    assert bytes(held[0]["raw"]) == b"{not json" and held[0]["source"] == "jsonl"
    reasons = [h["reason"] for h in held]
    assert reasons[0].startswith("invalid JSON")
    assert "no email, phone or handle" in reasons[1]
    assert "unknown channel 'fax'" in reasons[2]
    assert "unknown priority" in reasons[3]
    assert "unknown group 'nope'" in reasons[4]
    assert reasons[5] == "not a JSON object"
    assert {r["quarantine_id"] for r in records if r["action"] == "quarantined"} == {h["id"] for h in held}
    assert "line 3: quarantined" in result.stderr and "6 line(s) quarantined" in result.stderr
    [conv] = jdesk.rows("SELECT c.priority, c.subject, g.name AS grp FROM conversations c "
                        "JOIN groups g ON g.id = c.group_id")
    assert conv == {"priority": "high", "subject": "Shipping", "grp": "support"}
    assert jdesk.scalar("SELECT count(*) FROM messages") == 2


def test_tsv_prints_line_id_action(jdesk):
    result = ingest(jdesk, line(id="a") + "\n" + line(id="a") + "\n", fmt="tsv")
    assert result.exit_code == 0
    rows = [r.split("\t") for r in result.stdout.splitlines()]
    assert rows[0][:3] == ["line", "id", "action"]
    assert [r[:3] for r in rows[1:]] == [["1", "1", "created"], ["2", "1", "duplicate"]]


def test_same_thread_on_another_channel_is_another_conversation(jdesk):
    records = ingest(jdesk, line(id="1", channel="chat", thread="42") + "\n" +
                     line(id="2", channel="sms", thread="42", **{"from": {"phone": "+33600000001"}}) + "\n").json()
    assert [r["action"] for r in records] == ["created", "created"]
    assert records[0]["id"] != records[1]["id"]


def test_contact_reply_to_pending_reopens_and_to_closed_opens_a_linked_conversation(jdesk):
    [first] = ingest(jdesk, line(id="1") + "\n").json()
    cid = first["id"]
    with jdesk.engine.begin() as conn:
        conn.execute(text("UPDATE conversations SET status = 'pending', boomerang_at = created_at WHERE id = :c"),
                     {"c": cid})
    [second] = ingest(jdesk, line(id="2") + "\n").json()
    assert (second["id"], second["action"]) == (cid, "appended")
    [row] = jdesk.rows("SELECT status, boomerang_at, version FROM conversations")
    assert row["status"] == "new" and row["boomerang_at"] is None and row["version"] >= 2
    reopened = jdesk.rows("SELECT data FROM events WHERE kind = 'reopened'")
    assert [loads(r["data"]) for r in reopened] == [{"previous_status": "pending", "cause": "contact_reply"}]

    with jdesk.engine.begin() as conn:
        conn.execute(text("UPDATE conversations SET status = 'closed' WHERE id = :c"), {"c": cid})
    records = ingest(jdesk, line(id="3") + "\n" + line(id="4") + "\n").json()
    assert [r["action"] for r in records] == ["created", "appended"]
    new_id = records[0]["id"]
    assert new_id != cid and records[1]["id"] == new_id
    [conv] = jdesk.json("show", new_id)
    assert conv["linked_to"] == cid and conv["status"] == "new"
    [later] = ingest(jdesk, line(id="5") + "\n").json()
    assert later["id"] == new_id  # the thread now continues in the newest conversation


def test_contacts_matched_by_email_phone_and_handle_across_batches(jdesk, monkeypatch):
    from deskctl.commands import ingest as command

    monkeypatch.setattr(command, "JSONL_BATCH", 2)
    jdesk.ok("ingest", "email", "-", input=b"From: Lea <lea@example.fr>\r\nMessage-ID: <e1@example.fr>\r\n"
                                            b"Subject: hi\r\n\r\nhello\r\n")
    content = "\n".join([
        line(id="1", thread="c1", **{"from": {"name": "Léa", "email": "LEA@example.fr"}}),
        line(id="2", channel="sms", thread="s1", **{"from": {"phone": "+33611111111"}}),
        line(id="3", channel="social", thread="tw1", **{"from": {"name": "Zoé", "handle": "@zoe"}}),
        line(id="4", channel="social", thread="tw2", **{"from": {"handle": "@zoe"}}),
        line(id="5", channel="sms", thread="s2", **{"from": {"phone": "+33611111111"}}),
        line(id="1", thread="c1"),  # a duplicate in a later batch
    ]) + "\n"
    records = ingest(jdesk, content).json()
    assert [r["action"] for r in records] == ["created"] * 5 + ["duplicate"]
    contacts = jdesk.rows("SELECT name, email, phone FROM contacts ORDER BY id")
    assert contacts == [{"name": "Lea", "email": "lea@example.fr", "phone": None},
                        {"name": "", "email": None, "phone": "+33611111111"},
                        {"name": "Zoé", "email": None, "phone": None}]
    authors = [r["author_contact_id"] for r in jdesk.rows(
        "SELECT author_contact_id FROM messages WHERE channel <> 'email' ORDER BY id")]
    assert authors[0] == 1 and authors[1] == authors[4] and authors[2] == authors[3]


def test_within_batch_duplicates_and_thread_continuation(jdesk, monkeypatch):
    from deskctl.commands import ingest as command

    monkeypatch.setattr(command, "JSONL_BATCH", 3)
    content = "\n".join(line(id=str(i % 4), thread=f"t{i % 2}") for i in range(8)) + "\n"
    records = ingest(jdesk, content).json()
    assert [r["action"] for r in records] == ["created", "created", "appended", "appended"] + ["duplicate"] * 4
    assert [r["id"] for r in records[4:]] == [r["id"] for r in records[:4]]
    assert jdesk.scalar("SELECT count(*) FROM conversations") == 2
    assert jdesk.scalar("SELECT count(*) FROM events WHERE kind = 'message_in'") == 4


def test_attachments_are_stored_content_addressed(jdesk, tmp_path):
    data = b"\x89PNG fake image bytes" * 50
    record = ingest(jdesk, line(id="a1", text="", attachments=[
        {"filename": "photo.png", "data": base64.b64encode(data).decode()}]) + "\n").json()[0]
    assert record["action"] == "created"
    digest = hashlib.sha256(data).hexdigest()
    [att] = jdesk.rows("SELECT filename, content_type, size, sha256 FROM attachments")
    assert att == {"filename": "photo.png", "content_type": "image/png", "size": len(data), "sha256": digest}
    assert (tmp_path / "data" / "deskctl" / "attachments" / digest[:2] / digest).read_bytes() == data
    bad = ingest(jdesk, line(id="a2", attachments=[{"filename": "x", "data": "***"}]) + "\n")
    assert bad.exit_code == 65 and "not valid base64" in bad.json()[0]["reason"]


def test_from_a_file_and_usage_errors(jdesk, tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text(SPEC_LINE + "\n", encoding="utf-8")
    assert jdesk.json("ingest", "jsonl", path)[0]["action"] == "created"
    before = jdesk.dump()
    # An MTA gateway exits only 0, 65 or 75 (SPEC §9): a usage error is "retry later".
    assert jdesk.run("ingest", "jsonl", tmp_path / "missing.jsonl").exit_code == 75
    assert jdesk.run("ingest", "jsonl").exit_code == 75
    assert jdesk.dump() == before


def test_an_empty_input_is_fine(jdesk):
    result = ingest(jdesk, "\n\n")
    assert result.exit_code == 0 and result.json() == []


def test_ids_format_lists_conversations_only(jdesk):
    result = ingest(jdesk, line(id="a") + "\n{bad\n" + line(id="b", thread="t-2") + "\n", fmt="ids")
    assert result.exit_code == 65
    assert result.stdout.split() == ["1", "2"]
