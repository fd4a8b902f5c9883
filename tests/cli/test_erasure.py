"""`deskctl contact forget` and the `retention` job (SPEC §12): after erasure no table
(and on SQLite no byte of the database file) and no attachment file still holds the
contact's address or a sentence of their messages; counts and events stay."""

from __future__ import annotations

import json
import sqlite3
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest

from tests.factories import T0

EMAIL = "lea.secret@example.fr"
SENTENCE = "the purple elephant ate invoice 4242"
NOW = "2026-11-23T12:00:00+00:00"


@pytest.fixture
def desk_with_lea(seeded, tmp_path):
    seeded.now = NOW
    mail = EmailMessage()
    mail["From"] = f"Léa Secret <{EMAIL}>"
    mail["To"] = "support@example.com"
    mail["Subject"] = "Invoice 4242 for Léa Secret"
    mail["Message-ID"] = "<lea-1@example.fr>"
    mail.set_content(f"Hello,\n{SENTENCE}.\nLéa")
    mail.add_alternative(f"<p>{SENTENCE}</p>", subtype="html")
    mail.add_attachment(f"scan: {SENTENCE}".encode(), maintype="application", subtype="octet-stream",
                        filename="lea-scan.bin")
    path = tmp_path / "lea.eml"
    path.write_bytes(mail.as_bytes())
    [record] = seeded.json("ingest", "email", path, "--group", "billing")
    cid = record["id"]
    seeded.ok("note", cid, f"Called Léa at home about {SENTENCE}", as_="alice")
    seeded.ok("reply", cid, f"Dear Léa, about {SENTENCE}: refunded.", as_="alice")
    seeded.ok("close", cid, "--tag", "refund", "--note", f"closing: {SENTENCE}", as_="alice")
    bad = seeded.run("ingest", "jsonl", "-", input=f'{{"from": "{EMAIL}", "text": "{SENTENCE}\n', fmt="json")
    assert bad.exit_code == 65, bad
    seeded.lea_conversation = cid
    return seeded


def leaks(desk) -> list[str]:
    """Every table cell that still holds the address or the sentence."""
    found = []
    for table, rows in desk.dump():
        for row in rows:
            for cell in row:
                if isinstance(cell, (bytes, memoryview)):
                    text = bytes(cell).decode("utf-8", "replace")
                elif isinstance(cell, str):
                    text = cell
                else:
                    text = json.dumps(cell, ensure_ascii=False, default=str)
                lowered = text.lower()
                if EMAIL in lowered or "purple elephant" in lowered:
                    found.append(f"{table}: {text[:80]}")
    return found


def attachment_files(desk) -> list[Path]:
    root = desk.tmp_path / "data" / "deskctl" / "attachments"
    return [p for p in root.rglob("*") if p.is_file()]


def test_forget_erases_every_trace_and_keeps_the_counts(desk_with_lea):
    desk = desk_with_lea
    cid = desk.lea_conversation
    assert leaks(desk) and attachment_files(desk)
    before_volume = desk.json("report", "volume", "--since", "30d", "--by", "day")
    events_before = desk.scalar("SELECT count(*) FROM events WHERE conversation_id = :c", c=cid)

    result = desk.run("contact", "forget", EMAIL, "--yes", fmt="json")
    assert result.exit_code == 0, result
    [record] = result.json()
    assert record["conversations"] == 1 and record["messages"] == 2 and record["attachments"] == 1
    assert record["quarantined"] == 1 and record["files"] == 1

    assert leaks(desk) == []
    assert attachment_files(desk) == []
    assert desk.json("report", "volume", "--since", "30d", "--by", "day") == before_volume
    assert desk.scalar("SELECT count(*) FROM events WHERE conversation_id = :c", c=cid) == events_before + 1
    assert desk.scalar("SELECT count(*) FROM events WHERE kind = 'erased' AND conversation_id = :c", c=cid) == 1
    [shown] = desk.json("show", cid)
    assert shown["subject"] == "[erased]" and shown["status"] == "closed"
    if desk.engine_name == "sqlite":
        desk.close()
        path = desk.url.removeprefix("sqlite:///")
        for suffix in ("", "-wal"):
            if Path(path + suffix).exists():
                data = Path(path + suffix).read_bytes().lower()
                # the words alone too: the search index stores words, not sentences
                assert EMAIL.encode() not in data and b"purple" not in data and b"elephant" not in data, suffix


def test_forget_is_admin_only_and_needs_yes_off_a_terminal(desk_with_lea):
    desk = desk_with_lea
    before = desk.dump()
    denied = desk.run("contact", "forget", EMAIL, "--yes", as_="carol")
    assert denied.exit_code == 5 and denied.stdout == ""
    unconfirmed = desk.run("contact", "forget", EMAIL)
    assert unconfirmed.exit_code == 2 and "--yes" in unconfirmed.stderr
    assert desk.run("contact", "forget", "nobody@example.fr", "--yes").exit_code == 3
    assert desk.dump() == before


def test_retention_erases_old_closed_conversations_once(seeded, tmp_path):
    from tests.factories import make_conversation

    config = tmp_path / "retention.yaml"
    config.write_text("clock: {override: true}\nretention: {closed_after: 1y}\n")
    env = {"DESKCTL_CONFIG": str(config)}
    old = make_conversation(seeded, status="closed", subject=f"old {SENTENCE}", created_at=T0 - timedelta(days=800),
                            closed_at=T0 - timedelta(days=700), contact_email=EMAIL)
    recent = make_conversation(seeded, status="closed", subject="recent", created_at=T0 - timedelta(days=30),
                               closed_at=T0 - timedelta(days=20), contact_email="other@example.fr")
    still_open = make_conversation(seeded, status="open", subject="open", assignee="alice",
                                   created_at=T0 - timedelta(days=900), contact_email="third@example.fr")
    seeded.now = T0.isoformat()
    first = seeded.run("jobs", "run", "retention", env=env, fmt="json")
    assert first.exit_code == 0, first
    subjects = {r["id"]: r["subject"] for r in seeded.rows("SELECT id, subject FROM conversations")}
    assert subjects == {old: "[erased]", recent: "recent", still_open: "open"}
    assert seeded.scalar("SELECT text FROM messages WHERE conversation_id = :c", c=old) == "[erased]"
    seeded.now = (T0 + timedelta(minutes=1)).isoformat()
    again = seeded.run("jobs", "run", "retention", env=env, fmt="json")
    assert again.exit_code == 0, again
    assert seeded.scalar("SELECT count(*) FROM events WHERE kind = 'erased'") == 1


def test_retention_is_off_unless_closed_after_is_set(seeded):
    jobs = {j["job"]: j for j in seeded.json("jobs", "list")}
    assert jobs["retention"]["schedule"] == "off" and jobs["retention"]["next_run"] is None


def test_sqlite_file_is_scrubbed(desk_with_lea):
    """secure_delete: freed pages are zeroed, so the file holds no erased bytes."""
    desk = desk_with_lea
    if desk.engine_name != "sqlite":
        pytest.skip("SQLite file format")
    desk.ok("contact", "forget", EMAIL, "--yes")
    desk.close()
    path = desk.url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert EMAIL.encode() not in Path(path).read_bytes().lower()


def test_forget_removes_an_oversized_quarantined_mail_kept_on_disk(seeded, tmp_path):
    config = tmp_path / "small.yaml"
    config.write_text("clock: {override: true}\nlimits: {message_bytes: 2KB}\n")
    env = {"DESKCTL_CONFIG": str(config)}
    seeded.now = NOW
    mail = EmailMessage()
    mail["From"] = EMAIL
    mail["To"] = "support@example.com"
    mail["Subject"] = "Big one"
    mail.set_content(SENTENCE + "\n" + "x" * 10_000)
    path = tmp_path / "big.eml"
    path.write_bytes(mail.as_bytes())
    assert seeded.run("ingest", "email", path, env=env).exit_code == 65
    spilled = [p for p in (seeded.tmp_path / "data").rglob("*.raw")]
    assert len(spilled) == 1
    seeded.ok("contact", "add", "--email", EMAIL, "--name", "Léa Secret")
    [record] = seeded.json("contact", "forget", EMAIL, "--yes", env=env)
    assert record["quarantined"] == 1
    assert not spilled[0].exists()
    assert leaks(seeded) == []
