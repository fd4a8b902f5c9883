"""Separate processes racing on the same conversations: nothing is handed out twice,
every loser exits 4 (SPEC §3), and no update is lost.

Each worker is its own Python process that runs the `deskctl` entry point (the same
`deskctl.cli:main` that `python -m deskctl` runs) once per call, each call with its own
App, engine, connection and transaction, exactly as separate command runs would; only
the interpreter start-up is shared, so 8 x 200 calls fit in a test run. A second test
runs real `python -m deskctl` processes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter

import pytest

from tests.factories import make_conversation

DRIVER = r"""
import contextlib, io, json, os, sys
from deskctl.cli import cli

verb, out_path = sys.argv[1], sys.argv[2]
ids = [int(x) for x in sys.argv[3:]]
results = []

def call(args):
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(io.StringIO()) as err:
        try:
            cli.main(args, prog_name="deskctl")
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return code, sink.getvalue().strip(), err.getvalue().strip()

if verb == "claim":
    for cid in ids:
        code, out, err = call(["claim", str(cid), "--format", "ids"])
        results.append({"id": cid, "code": code, "err": err[-200:]})
else:  # next, until nothing is waiting
    for _ in range(200):
        code, out, err = call(["next", "--format", "ids"])
        results.append({"id": int(out) if code == 0 else None, "code": code, "err": err[-200:]})
        if code == 3:
            break
with open(out_path, "w") as fh:
    json.dump(results, fh)
"""


def _env(desk, handle):
    env = dict(os.environ)
    env.update(DESKCTL_DATABASE_URL=desk.url, DESKCTL_USER=handle, DESKCTL_FORMAT="ids")
    env.pop("DESKCTL_NOW", None)
    return env


def _agents(desk, n):
    handles = [f"racer{i}" for i in range(n)]
    for handle in handles:
        desk.ok("user", "add", handle, "--location", "paris", "--group", "billing")
        desk.ok("availability", "set", "available", as_=handle)
    return handles


def _run_workers(desk, tmp_path, handles, verb, ids=()):
    procs = []
    for handle in handles:
        out = tmp_path / f"{handle}.json"
        procs.append((handle, out, subprocess.Popen(
            [sys.executable, "-c", DRIVER, verb, str(out), *map(str, ids)],
            env=_env(desk, handle), stdout=subprocess.PIPE, stderr=subprocess.PIPE)))
    results = {}
    for handle, out, proc in procs:
        _, err = proc.communicate(timeout=900)
        assert proc.returncode == 0, err.decode()[-2000:]
        results[handle] = json.loads(out.read_text())
    return results


@pytest.mark.slow
def test_claim_race_each_conversation_claimed_exactly_once(seeded, tmp_path):
    """PostgreSQL: 8 processes x 200 claims on the same 200 conversations (SQLite: 4
    processes x 100, its writers are serialised anyway)."""
    workers, n = (8, 200) if seeded.engine_name == "postgresql" else (4, 100)
    ids = [make_conversation(seeded, with_message=False) for _ in range(n)]
    handles = _agents(seeded, workers)
    results = _run_workers(seeded, tmp_path, handles, "claim", ids)

    winners: dict[int, list[str]] = {cid: [] for cid in ids}
    for handle, calls in results.items():
        assert len(calls) == n
        for call in calls:
            assert call["code"] in (0, 4), call
            if call["code"] == 0:
                winners[call["id"]].append(handle)
            else:
                assert "claimed by" in call["err"] or "changed by someone else" in call["err"], call
    assert all(len(w) == 1 for w in winners.values()), {k: v for k, v in winners.items() if len(v) != 1}
    rows = seeded.rows("SELECT c.id, u.handle, c.status, c.version FROM conversations c "
                       "JOIN users u ON u.id = c.assignee_id")
    assert {r["id"]: r["handle"] for r in rows} == {cid: w[0] for cid, w in winners.items()}
    assert {(r["status"], r["version"]) for r in rows} == {("open", 2)}
    claimed = seeded.rows("SELECT conversation_id, actor FROM events WHERE kind = 'claimed'")
    assert Counter(r["conversation_id"] for r in claimed) == Counter(ids)
    assert {r["conversation_id"]: r["actor"] for r in claimed} == {cid: w[0] for cid, w in winners.items()}
    losers = sum(1 for calls in results.values() for c in calls if c["code"] == 4)
    assert losers == workers * n - n


def test_next_race_never_hands_out_the_same_conversation(seeded, tmp_path):
    ids = {make_conversation(seeded, with_message=False) for _ in range(40)}
    handles = _agents(seeded, 4)
    results = _run_workers(seeded, tmp_path, handles, "next")
    got = [c["id"] for calls in results.values() for c in calls if c["code"] == 0]
    assert sorted(got) == sorted(ids)  # each exactly once
    for calls in results.values():
        assert all(c["code"] in (0, 3) for c in calls), calls
    assert seeded.scalar("SELECT count(*) FROM conversations WHERE assignee_id IS NULL") == 0


def test_bulk_claim_race_between_real_processes_is_all_or_nothing(seeded, tmp_path):
    """Real `python -m deskctl` processes claiming the same 30 conversations at once:
    exactly one gets all of them, every other one exits 4 with nothing changed."""
    ids = [make_conversation(seeded, with_message=False) for _ in range(30)]
    handles = _agents(seeded, 4)
    procs = [(h, subprocess.Popen([sys.executable, "-m", "deskctl", "claim", *map(str, ids)],
                                  env=_env(seeded, h), stdout=subprocess.PIPE, stderr=subprocess.PIPE))
             for h in handles]
    codes = {}
    for handle, proc in procs:
        proc.communicate(timeout=300)
        codes[handle] = proc.returncode
    assert sorted(codes.values()) == [0, 4, 4, 4], codes
    [winner] = [h for h, code in codes.items() if code == 0]
    rows = seeded.rows("SELECT DISTINCT u.handle FROM conversations c JOIN users u ON u.id = c.assignee_id")
    assert rows == [{"handle": winner}]
    assert seeded.scalar("SELECT count(*) FROM events WHERE kind = 'claimed'") == 30
