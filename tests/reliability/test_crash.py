"""Crash mid-bulk: `kill -9` a bulk transfer at random moments. Afterwards every
conversation is either wholly moved (assignee, its `transferred` event, its note) or
wholly untouched, and `deskctl db check` reports clean.

Each round moves every conversation between alice and bob (`transfer --from alice
--to user:bob`, then back); a killed round must leave all of them on one side.
Default: 1,000 conversations, 4 kills; DESKCTL_STRESS=1: 20,000 conversations, 50 kills.

Crash mid-poll (SPEC §11): `kill -9` of `deskctl jobs run mail-poll` at random moments
over a real Maildir; then a clean run, and every mail is stored exactly once and every
file is in cur/. Batches of 50 mails (instead of 500), so that kills land between
batches and between a commit and its renames. Default: 400 mails, 5 kills;
DESKCTL_STRESS=1: 5,000 mails, 30 kills.
"""

from __future__ import annotations

import mailbox
import os
import random
import subprocess
import time

import pytest

from tests.reliability.conftest import (
    bulk_conversations,
    deskctl_argv,
    run_deskctl,
    size,
    subprocess_env,
)

N = size(1000, 20000)
KILLS = size(4, 50)


def _state(desk, ids):
    owners = {r["handle"]: r["n"] for r in desk.rows(
        "SELECT u.handle, count(*) AS n FROM conversations c JOIN users u ON u.id = c.assignee_id "
        "GROUP BY u.handle")}
    moves = {r["n"] for r in desk.rows(
        "SELECT c.id, count(e.id) AS n FROM conversations c LEFT JOIN events e "
        "ON e.conversation_id = c.id AND e.kind = 'transferred' GROUP BY c.id")}
    notes = desk.scalar("SELECT count(*) FROM notes")
    orphan_notes = desk.scalar("SELECT count(*) FROM notes WHERE event_id IS NULL")
    return owners, moves, notes, orphan_notes


def _check(desk, ids, completed):
    owners, moves, notes, orphan_notes = _state(desk, ids)
    side = "alice" if completed % 2 == 0 else "bob"
    assert owners == {side: len(ids)}, (completed, owners)  # never split between the two
    assert moves == {completed}, (completed, moves)  # each conversation: one event per completed move
    assert notes == completed * len(ids) and orphan_notes == 0, (notes, orphan_notes)
    check = run_deskctl(desk, "db", "check", "--format", "json")
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.usefixtures("seeded")  # the directory of seed_directory
def test_kill_9_during_bulk_transfer_leaves_each_conversation_moved_or_untouched(desk, tmp_path):
    ids = bulk_conversations(desk, N, assignee="alice", status="open")
    rng = random.Random(8)
    completed = 0

    def start():
        src, dst = ("alice", "bob") if completed % 2 == 0 else ("bob", "alice")
        argv = deskctl_argv("transfer", "--from", src, "--to", f"user:{dst}", "--message", "crash test",
                            "--no-keep-informed", "--format", "ids")
        return subprocess.Popen(argv, env=subprocess_env(desk), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, cwd=tmp_path)

    # one full run to learn how long a bulk transfer takes here
    began = time.monotonic()
    proc = start()
    _, err = proc.communicate(timeout=1800)
    assert proc.returncode == 0, err.decode()[-2000:]
    duration = time.monotonic() - began
    completed += 1
    _check(desk, ids, completed)

    killed = finished_anyway = 0
    for _ in range(KILLS):
        proc = start()
        time.sleep(rng.uniform(0.05, 1.1) * duration)
        if proc.poll() is None:
            proc.kill()
            killed += 1
        proc.communicate(timeout=600)
        if proc.returncode == 0:
            completed += 1
            finished_anyway += 1
        else:
            # killed: either it committed just before dying, or nothing changed
            owners, *_ = _state(desk, ids)
            if owners == {("bob" if completed % 2 == 0 else "alice"): len(ids)}:
                completed += 1
        _check(desk, ids, completed)
    print(f"{desk.engine_name}: {N} conversations, {KILLS} rounds, {killed} killed mid-run, "
          f"{finished_anyway} finished before the kill, {completed} moves committed, one run {duration:.1f}s")
    assert killed > 0


MAILS = size(400, 5000)
POLL_KILLS = size(5, 30)


def _poll_mail(n: int, prefix: str) -> bytes:
    """Every fifth mail answers the one before it (threading is part of what must not
    be done twice); every fiftieth is unusable (quarantined, once)."""
    if n % 50 == 49:
        return f"garbage {prefix} {n}, no headers\n".encode()
    reply = f"In-Reply-To: <{prefix}{n - 1}@example.fr>\n" if n % 5 == 4 else ""
    return (f"From: Customer {n % 37} <c{n % 37}@example.fr>\nTo: support@example.com\n"
            f"Subject: {'Re: ' if reply else ''}Request {n}\nMessage-ID: <{prefix}{n}@example.fr>\n{reply}"
            f"Date: Mon, 23 Nov 2026 10:00:00 +0000\n\nHello {n}\n").encode()


def _poll_maildir(tmp_path, name: str, prefix: str):
    root = tmp_path / name
    box = mailbox.Maildir(root, create=True)
    for n in range(MAILS):
        box.add(_poll_mail(n, prefix))
    return root


@pytest.mark.usefixtures("seeded")  # the directory of seed_directory
def test_kill_9_during_mail_poll_stores_every_mail_exactly_once(desk, tmp_path):
    warm = _poll_maildir(tmp_path, "warm", "warm")
    root = _poll_maildir(tmp_path, "Maildir", "poll")
    small_batches = tmp_path / "batches"
    small_batches.mkdir()
    (small_batches / "sitecustomize.py").write_text(
        "import deskctl.services.inbound.maildir as maildir\nmaildir.POLL_BATCH = 50\n", encoding="utf-8")

    def start(maildir):
        config = tmp_path / f"{maildir.name}.yaml"
        config.write_text(f"mail: {{maildir: '{maildir}'}}\n", encoding="utf-8")
        argv = deskctl_argv("jobs", "run", "mail-poll", "--format", "json")
        env = subprocess_env(desk, DESKCTL_CONFIG=config, PYTHONPATH=small_batches)
        return subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp_path)

    # one full run over another Maildir of the same size, to learn how long a poll takes
    began = time.monotonic()
    proc = start(warm)
    _, err = proc.communicate(timeout=1800)
    assert proc.returncode == 0, err.decode()[-2000:]
    duration = time.monotonic() - began
    assert os.listdir(warm / "new") == []

    rng = random.Random(11)
    killed = 0
    for _ in range(POLL_KILLS):
        if not os.listdir(root / "new"):
            break
        proc = start(root)
        time.sleep(rng.uniform(0.1, 0.7) * duration)  # later rounds have less left to do
        if proc.poll() is None:
            proc.kill()
            killed += 1
        _, err = proc.communicate(timeout=600)
        assert proc.returncode in (0, -9), err.decode()[-2000:]
    left = len(os.listdir(root / "new"))
    proc = start(root)
    _, err = proc.communicate(timeout=1800)
    assert proc.returncode == 0, err.decode()[-2000:]

    assert os.listdir(root / "new") == [] and os.listdir(root / "tmp") == []
    moved = os.listdir(root / "cur")
    assert len(moved) == MAILS and all(name.endswith(":2,S") for name in moved)
    good = [n for n in range(MAILS) if n % 50 != 49]
    stored = desk.rows("SELECT external_id, count(*) AS n FROM messages WHERE external_id LIKE 'poll%' "
                       "GROUP BY external_id")
    assert {r["external_id"] for r in stored} == {f"poll{n}@example.fr" for n in good}
    assert {r["n"] for r in stored} == {1}  # never twice
    replies = sum(1 for n in good if n % 5 == 4)
    assert desk.scalar("SELECT count(DISTINCT conversation_id) FROM messages WHERE external_id LIKE 'poll%'") \
        == len(good) - replies
    assert desk.scalar("SELECT count(*) FROM events WHERE kind = 'message_in'") == 2 * len(good)  # both Maildirs
    bad = MAILS - len(good)
    assert desk.scalar("SELECT count(*) FROM quarantine") == 2 * bad  # each unusable mail held once
    runs = {r["outcome"] for r in desk.rows("SELECT outcome FROM job_runs WHERE job = 'mail-poll'")}
    assert "running" not in runs  # a killed run is recorded failed by the next one
    check = run_deskctl(desk, "db", "check", "--format", "json")
    assert check.returncode == 0, check.stdout + check.stderr
    import json

    reread = sum((c if isinstance(c, dict) else json.loads(c)).get("duplicate", 0)
                 for c in (r["counts"] for r in desk.rows("SELECT counts FROM job_runs WHERE outcome = 'ok'")))
    print(f"{desk.engine_name}: {MAILS} mails, {killed} polls killed mid-run, {left} left for the clean run, "
          f"{reread} re-read as duplicate (killed between a commit and its renames), one poll {duration:.1f}s")
    assert killed > 0
