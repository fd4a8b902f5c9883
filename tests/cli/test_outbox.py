"""`deskctl outbox list|show|retry|drop` (SPEC §11): the four statuses users see, filters,
formats, atomic retry and drop, and the supervisor/admin rule."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest
from sqlalchemy import update

from deskctl.models import Outbox
from deskctl.services.outbound import notifications
from tests.factories import T0, make_conversation


def enqueue(desk, key, *, kind="notification", recipient="alice@desk.example", status="queued", attempts=0,
            channel="email", raw=None, conversation_id=None, created=T0) -> int:
    with desk.session() as session:
        notifications.enqueue(session, kind=kind, dedupe_key=key, recipient=recipient, subject=f"about {key}",
                              body=f"body of {key}", now=created, conversation_id=conversation_id, raw=raw)
        session.execute(update(Outbox).where(Outbox.dedupe_key == key)
                        .values(status=status, attempts=attempts, channel=channel,
                                sent_at=created if status == "sent" else None))
        return session.query(Outbox.id).filter(Outbox.dedupe_key == key).scalar()


@pytest.fixture
def box(seeded):
    seeded.now = (T0 + timedelta(hours=1)).isoformat()
    cid = make_conversation(seeded, channel="chat")
    payload = json.dumps({"id": 0, "channel": "chat", "text": "hi"}).encode()
    seeded.ids = {
        "queued": enqueue(seeded, "n-queued"),
        "retrying": enqueue(seeded, "n-retrying", status="retrying", attempts=2),
        "sent": enqueue(seeded, "n-sent", status="sent", attempts=1),
        "failed": enqueue(seeded, "n-failed", status="failed", attempts=8),
        "chat": enqueue(seeded, "message:1", kind="message", channel="chat", recipient="lea42", raw=payload,
                        conversation_id=cid),
    }
    return seeded


def listing(desk, *args, as_="carol"):
    result = desk.run("outbox", "list", *args, as_=as_, fmt="json")
    assert result.exit_code == 0, result
    return result.json()


def test_list_shows_the_spec_record_newest_first(box):
    rows = listing(box)
    assert [r["id"] for r in rows] == sorted(box.ids.values(), reverse=True)
    for row in rows:
        assert set(row) >= {"id", "conversation_id", "channel", "to", "status", "attempts", "next_attempt_at",
                            "last_error", "created_at", "sent_at"}
    by_id = {r["id"]: r for r in rows}
    assert {name: by_id[i]["status"] for name, i in box.ids.items()} == {
        "queued": "queued", "retrying": "retrying", "sent": "sent", "failed": "failed", "chat": "queued"}
    assert by_id[box.ids["chat"]]["channel"] == "chat" and by_id[box.ids["chat"]]["to"] == "lea42"
    assert by_id[box.ids["sent"]]["next_attempt_at"] is None
    assert by_id[box.ids["queued"]]["next_attempt_at"] == T0.isoformat()


def test_filters_by_status_and_channel(box):
    assert {r["id"] for r in listing(box, "--status", "queued,retrying")} == {
        box.ids["queued"], box.ids["retrying"], box.ids["chat"]}
    assert [r["id"] for r in listing(box, "--status", "failed", "--status", "sent")] == [
        box.ids["failed"], box.ids["sent"]]
    assert [r["id"] for r in listing(box, "--channel", "chat")] == [box.ids["chat"]]
    assert listing(box, "--channel", "sms") == []
    assert len(listing(box, "--limit", "2")) == 2
    for bad in (("--status", "sending"), ("--status", "pending"), ("--channel", "fax"), ("--status", "")):
        result = box.run("outbox", "list", *bad, as_="carol")
        assert result.exit_code == 2 and result.stdout == "", bad


def test_rows_being_delivered_show_as_queued_or_retrying(box):
    with box.session() as session:
        session.execute(update(Outbox).where(Outbox.id == box.ids["queued"]).values(status="sending", attempts=1,
                                                                                  claimed_at=T0))
        session.execute(update(Outbox).where(Outbox.id == box.ids["retrying"]).values(status="sending",
                                                                                    attempts=3, claimed_at=T0))
    assert {r["id"] for r in listing(box, "--status", "queued")} == {box.ids["queued"], box.ids["chat"]}
    assert [r["id"] for r in listing(box, "--status", "retrying")] == [box.ids["retrying"]]
    before = box.dump()
    for verb in ("retry", "drop"):
        result = box.run("outbox", verb, box.ids["queued"], as_="carol")
        assert result.exit_code == 4 and "being delivered right now" in result.stderr
    assert box.dump() == before


def test_machine_formats(box):
    result = box.run("outbox", "list", "--status", "failed", as_="carol", fmt="csv")
    [row] = list(csv.DictReader(io.StringIO(result.stdout)))
    assert row["id"] == str(box.ids["failed"]) and row["status"] == "failed" and row["attempts"] == "8"
    tsv = box.run("outbox", "list", as_="carol", fmt="tsv").stdout.splitlines()
    assert tsv[0].split("\t")[:10] == ["id", "conversation_id", "channel", "to", "status", "attempts",
                                       "next_attempt_at", "last_error", "created_at", "sent_at"]
    ids = box.run("outbox", "list", "--channel", "chat", as_="carol", fmt="ids").stdout.split()
    assert ids == [str(box.ids["chat"])]
    table = box.run("outbox", "list", as_="carol", fmt="table")
    assert table.exit_code == 0 and "retrying" in table.stdout


def test_show_gives_the_text_and_the_connector_json(box):
    [shown] = box.json("outbox", "show", box.ids["chat"], as_="carol")
    assert shown["payload"] == {"id": 0, "channel": "chat", "text": "hi"}
    assert shown["text"] == "body of message:1" and shown["kind"] == "message"
    [mail] = box.json("outbox", "show", box.ids["queued"], as_="root")
    assert mail["payload"] is None and mail["subject"] == "about n-queued"
    assert box.run("outbox", "show", 999, as_="carol").exit_code == 3
    assert box.run("outbox", "show", "abc", as_="carol").exit_code == 2


def test_retry_failed_starts_over_and_waiting_rows_skip_their_backoff(box):
    now = T0 + timedelta(hours=1)
    rows = box.json("outbox", "retry", box.ids["failed"], box.ids["retrying"], as_="carol")
    by_id = {r["id"]: r for r in rows}
    assert (by_id[box.ids["failed"]]["status"], by_id[box.ids["failed"]]["attempts"]) == ("queued", 0)
    assert (by_id[box.ids["retrying"]]["status"], by_id[box.ids["retrying"]]["attempts"]) == ("retrying", 2)
    assert {r["next_attempt_at"] for r in rows} == {now.isoformat()}
    result = box.run("outbox", "retry", "--failed", as_="carol", fmt="json")
    assert result.exit_code == 0 and result.json() == [] and "no failed rows" in result.stderr


def test_retry_and_drop_are_atomic_with_one_line_per_bad_id(box):
    before = box.dump()
    result = box.run("outbox", "retry", box.ids["failed"], 999, box.ids["sent"], as_="carol")
    # The exit code is the first failing id's (as for bulk verbs on conversations).
    assert result.exit_code == 4 and result.stdout == ""
    assert result.stderr.splitlines() == [
        f"deskctl: outbox {box.ids['sent']}: already sent at {T0.isoformat()}",
        "deskctl: outbox 999: not found",
        "deskctl: 2 target(s) failed; nothing was changed"]
    assert box.run("outbox", "retry", box.ids["sent"], as_="carol").exit_code == 4
    assert box.run("outbox", "drop", box.ids["queued"], 998, as_="carol").exit_code == 3
    assert box.run("outbox", "retry", as_="carol").exit_code == 2
    assert box.run("outbox", "retry", box.ids["failed"], "--failed", as_="carol").exit_code == 2
    assert box.run("outbox", "drop", as_="carol").exit_code == 2
    assert box.run("outbox", "drop", "-3", as_="carol").exit_code == 2
    assert box.dump() == before


def test_drop_deletes_and_prints_what_was_dropped(box):
    rows = box.json("outbox", "drop", box.ids["chat"], box.ids["sent"], as_="root")
    assert sorted(r["id"] for r in rows) == sorted([box.ids["chat"], box.ids["sent"]])
    assert {r["status"] for r in rows} == {"queued", "sent"}
    assert box.scalar("SELECT count(*) FROM outbox") == 3


def test_only_supervisors_and_admins(box):
    before = box.dump()
    for args in (("list",), ("show", box.ids["chat"]), ("retry", box.ids["failed"]), ("retry", "--failed"),
                 ("drop", box.ids["chat"])):
        result = box.run("outbox", *args, as_="alice")
        assert result.exit_code == 5, (args, result)
        assert result.stdout == "" and "supervisors and admins" in result.stderr
    assert box.dump() == before
    assert listing(box, as_="root") and listing(box, as_="carol")


def test_de_duplication_keys_hold_whatever_the_status(box):
    """Enqueueing an occurrence again (a job rerun) never adds a row, retrying or failed alike."""
    for key in ("n-retrying", "n-failed", "n-sent"):
        with box.session() as session:
            assert notifications.enqueue(session, kind="notification", dedupe_key=key, recipient="x@desk.example",
                                         subject="again", now=T0) is False
    assert box.scalar("SELECT count(*) FROM outbox") == 5
