"""The bulk engine works a chunk of targets at a time (issue 16); with chunks of 3, small
desks cross chunk boundaries: every failure is still listed and nothing changes, the
records keep their order, and notifications are what one batch would send."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.factories import T0, make_conversation


@pytest.fixture
def small_chunks(monkeypatch):
    from deskctl.services.conversations import lifecycle

    monkeypatch.setattr(lifecycle, "CHUNK", 3)


def test_every_failure_of_every_chunk_is_listed_and_nothing_changes(seeded, small_chunks):
    ids = [make_conversation(seeded, status="closed" if i in (1, 6) else "open", assignee="alice",
                             with_message=False) for i in range(8)]
    given = [ids[7], ids[6], 999_999, ids[5], ids[7], ids[4], ids[3], ids[2], ids[1], ids[0]]
    before = seeded.dump()
    result = seeded.run("resolve", *given, as_="root")
    assert result.exit_code == 4  # the first failure's: a conflict
    assert result.stderr.splitlines() == [
        f"deskctl: #{ids[6]}: is closed: cannot resolve it (reopen it first)",
        "deskctl: #999999: conversation not found: #999999",
        f"deskctl: #{ids[1]}: is closed: cannot resolve it (reopen it first)",
        "deskctl: 3 target(s) failed; nothing was changed",
    ]
    assert seeded.dump() == before


def test_records_keep_the_given_order_and_limit_across_chunks(seeded, small_chunks):
    ids = [make_conversation(seeded, status="open", assignee="alice", with_message=False,
                             created_at=T0 - timedelta(hours=i)) for i in range(7)]
    given = [ids[2], ids[5], ids[2], ids[0], ids[6], ids[1], ids[3]]
    dry = seeded.run("resolve", *given, "--limit", "5", "--dry-run", as_="root", fmt="jsonl")
    done = seeded.run("resolve", *given, "--limit", "5", as_="root", fmt="jsonl")
    assert dry.exit_code == done.exit_code == 0
    assert dry.stdout == done.stdout
    assert [r["id"] for r in done.jsonl()] == [ids[2], ids[5], ids[0], ids[6], ids[1]]
    assert {r["status"] for r in done.jsonl()} == {"resolved"}
    assert {r["previous_status"] for r in done.jsonl()} == {"open"}
    assert seeded.scalar("SELECT count(*) FROM conversations WHERE status = 'resolved'") == 5
    # A filter in --sort order: the oldest first here, newest first with -created.
    result = seeded.run("reopen", "--status", "resolved", "--sort", "-created", "--limit", "4", as_="root",
                        fmt="ids")
    assert [int(i) for i in result.stdout.split()] == [ids[0], ids[1], ids[2], ids[5]]


def test_notifications_across_chunks_are_those_of_one_batch(seeded, small_chunks, monkeypatch):
    from deskctl.services.outbound import notifications

    monkeypatch.setattr(notifications, "EACH_MAX", 4)
    ids = [make_conversation(seeded, status="open", assignee="alice", watchers=("bob",), with_message=False)
           for _ in range(7)]
    seeded.ok("transfer", "--from", "alice", "--to", "user:carol", "--no-keep-informed", "--yes", as_="root")
    sent = seeded.rows("SELECT recipient, subject, body, conversation_id FROM outbox "
                       "WHERE dedupe_key LIKE 'transferred:%' ORDER BY id")
    listed = ", ".join(f"#{i}" for i in ids)
    assert sent == [
        {"recipient": "carol@desk.example", "subject": "7 conversations were transferred to you by root",
         "body": f"7 conversations were transferred to you by root: {listed}", "conversation_id": None},
        {"recipient": "bob@desk.example", "subject": "7 conversations you watch were transferred by root",
         "body": f"7 conversations you watch were transferred by root: {listed}", "conversation_id": None},
    ]
