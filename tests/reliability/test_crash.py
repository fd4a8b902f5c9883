"""Crash mid-bulk: `kill -9` a bulk transfer at random moments. Afterwards every
conversation is either wholly moved (assignee, its `transferred` event, its note) or
wholly untouched, and `deskctl db check` reports clean.

Each round moves every conversation between alice and bob (`transfer --from alice
--to user:bob`, then back); a killed round must leave all of them on one side.
Default: 1,000 conversations, 4 kills; DESKCTL_STRESS=1: 20,000 conversations, 50 kills.
"""

from __future__ import annotations

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
