"""`deskctl ingest quarantine list/show/retry/drop`: nothing unparseable is lost, and it
can be fixed and fed through again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

MAIL = Path(__file__).resolve().parent.parent / "data" / "mail"
NOW = "2026-11-23T12:00:00+00:00"


@pytest.fixture
def qdesk(seeded):
    seeded.now = NOW
    return seeded


def quarantine_broken_email(desk) -> int:
    result = desk.run("ingest", "email", MAIL / "broken_boundary.eml", fmt="json")
    assert result.exit_code == 65
    return result.json()[0]["quarantine_id"]


def test_list_and_show(qdesk):
    qid = quarantine_broken_email(qdesk)
    bad_line = json.dumps({"channel": "chat", "thread": "t", "id": "1", "from": {"email": "a@b.example"},
                           "text": "x", "group": "nope"})
    assert qdesk.run("ingest", "jsonl", "-", input=f"\n{bad_line}\n").exit_code == 65
    rows = qdesk.json("ingest", "quarantine", "list")
    assert [(r["id"], r["source"], r["status"], r["line"]) for r in rows] == [
        (qid, "email", "held", None), (qid + 1, "jsonl", "held", 2)]
    assert rows[0]["filename"] == "broken_boundary.eml"
    assert rows[0]["size"] == len((MAIL / "broken_boundary.eml").read_bytes())
    assert [r["id"] for r in qdesk.json("ingest", "quarantine", "list", "--source", "jsonl")] == [qid + 1]

    [shown] = qdesk.json("ingest", "quarantine", "show", qid)
    assert "broken MIME structure" in shown["reason"] and "Devis pour 40 postes" in shown["raw"]
    raw = qdesk.run("ingest", "quarantine", "show", qid, "--raw")
    assert raw.exit_code == 0
    assert raw.raw.stdout_bytes == (MAIL / "broken_boundary.eml").read_bytes()


def test_the_same_bad_input_is_held_once(qdesk):
    first = quarantine_broken_email(qdesk)
    assert quarantine_broken_email(qdesk) == first
    assert qdesk.scalar("SELECT count(*) FROM quarantine") == 1


def test_retry_with_fixed_bytes_ingests_and_marks_retried(qdesk, tmp_path):
    qid = quarantine_broken_email(qdesk)
    fixed = (MAIL / "broken_boundary.eml").read_bytes().replace(
        b"----=_Part_1234_5678.1700000000000", b"----=_Part_9999_0000.1699999999999")
    path = tmp_path / "fixed.eml"
    path.write_bytes(fixed)
    result = qdesk.run("ingest", "quarantine", "retry", qid, "--file", path, "--group", "sales", fmt="json")
    assert result.exit_code == 0, result
    [record] = result.json()
    assert record["quarantine_id"] == qid and record["action"] == "created" and record["source"] == "email"
    [conv] = qdesk.json("show", record["id"])
    assert conv["subject"] == "Devis pour 40 postes" and conv["group"] == "sales"
    assert [a["filename"] for a in conv["messages"][0]["attachments"]] == ["besoins.xlsx"]
    [row] = qdesk.rows("SELECT status, raw FROM quarantine")
    assert row["status"] == "retried" and bytes(row["raw"]) == fixed
    assert qdesk.json("ingest", "quarantine", "list") == []
    assert [r["status"] for r in qdesk.json("ingest", "quarantine", "list", "--status", "all")] == ["retried"]
    # Handled entries cannot be retried or dropped again.
    assert qdesk.run("ingest", "quarantine", "retry", qid).exit_code == 4


def test_retry_after_fixing_the_cause(qdesk):
    bad = json.dumps({"channel": "chat", "thread": "t", "id": "m1", "from": {"email": "a@b.example"},
                      "text": "hello", "group": "vip"})
    result = qdesk.run("ingest", "jsonl", "-", input=bad + "\n", fmt="json")
    qid = result.json()[0]["quarantine_id"]
    still = qdesk.run("ingest", "quarantine", "retry", qid, fmt="json")
    assert still.exit_code == 65 and still.json()[0]["action"] == "quarantined"
    assert qdesk.scalar("SELECT status FROM quarantine") == "held"
    assert qdesk.scalar("SELECT count(*) FROM quarantine") == 1  # a failed retry adds no entry

    qdesk.ok("group", "add", "vip")
    ok = qdesk.run("ingest", "quarantine", "retry", qid, fmt="json")
    assert ok.exit_code == 0, ok
    [record] = ok.json()
    assert record["action"] == "created"
    assert qdesk.scalar("SELECT g.name FROM conversations c JOIN groups g ON g.id = c.group_id") == "vip"
    assert qdesk.scalar("SELECT status FROM quarantine") == "retried"


def test_drop(qdesk):
    qid = quarantine_broken_email(qdesk)
    [record] = qdesk.json("ingest", "quarantine", "drop", qid)
    assert record["status"] == "dropped"
    assert qdesk.scalar("SELECT status FROM quarantine") == "dropped"
    assert qdesk.scalar("SELECT count(*) FROM quarantine") == 1  # the bytes stay for the record
    again = qdesk.run("ingest", "quarantine", "drop", qid)
    assert again.exit_code == 4 and "already handled" in again.stderr


def test_unknown_ids_and_permissions_change_nothing(qdesk):
    qid = quarantine_broken_email(qdesk)
    before = qdesk.dump()
    missing = qdesk.run("ingest", "quarantine", "drop", qid, 999)
    assert missing.exit_code == 3 and "999" in missing.stderr
    assert qdesk.run("ingest", "quarantine", "show", 999).exit_code == 3
    assert qdesk.run("ingest", "quarantine", "retry", 999).exit_code == 3
    for args in (("list",), ("show", qid), ("retry", qid), ("drop", qid)):
        denied = qdesk.run("ingest", "quarantine", *args, as_="alice")
        assert denied.exit_code == 5, (args, denied)
    assert qdesk.run("ingest", "quarantine", "retry", qid, qid + 1, "--file", MAIL / "html_only.eml").exit_code == 2
    assert qdesk.dump() == before
    assert qdesk.run("ingest", "quarantine", "list", as_="carol", fmt="json").exit_code == 0


def test_list_rejects_an_unknown_status(qdesk):
    result = qdesk.run("ingest", "quarantine", "list", "--status", "held,lost", fmt="tsv")
    assert result.exit_code == 2 and result.stdout == "" and "lost" in result.stderr
