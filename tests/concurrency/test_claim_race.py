"""Separate processes racing on the same conversations: nothing is handed out twice,
every loser exits 4 (SPEC §3), and no update is lost.

Each worker is a tests/concurrency/worker.py process: the `deskctl` entry point once per
call, each call with its own App, engine, connection and transaction, as separate command
runs would. A third test runs real `python -m deskctl` processes.
"""

from __future__ import annotations

from collections import Counter

import pytest

from tests.concurrency import worker
from tests.factories import make_conversation
from tests.reliability.conftest import size


def _run_workers(desk, handles, verb, ids=()):
    if verb == "claim":
        steps = [{"cli": ["claim", str(cid), "--format", "ids"]} for cid in ids]
    else:  # next, until nothing is waiting
        steps = [{"cli": ["next", "--format", "ids"], "repeat": 200, "until": 3}]
    results = worker.run(desk, {h: (h, steps) for h in handles}, DESKCTL_FORMAT="ids")
    if verb == "claim":
        return {h: [{"id": cid, "code": c["code"], "err": c["err"]} for cid, c in zip(ids, calls, strict=True)]
                for h, calls in results.items()}
    return {h: [{"id": int(c["out"]) if c["code"] == 0 else None, "code": c["code"], "err": c["err"]}
                for c in calls] for h, calls in results.items()}


@pytest.mark.slow
def test_claim_race_each_conversation_claimed_exactly_once(seeded):
    """PostgreSQL: 8 processes x 50 claims on the same 50 conversations (SQLite: 4
    processes x 40, its writers are serialised anyway); 200 and 100 under
    DESKCTL_STRESS=1 (`make stress`)."""
    workers, n = (8, size(50, 200)) if seeded.engine_name == "postgresql" else (4, size(40, 100))
    ids = [make_conversation(seeded, with_message=False) for _ in range(n)]
    handles = worker.agents(seeded, "racer", workers)
    results = _run_workers(seeded, handles, "claim", ids)

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


def test_next_race_never_hands_out_the_same_conversation(seeded):
    ids = {make_conversation(seeded, with_message=False) for _ in range(40)}
    handles = worker.agents(seeded, "racer", 4)
    results = _run_workers(seeded, handles, "next")
    got = [c["id"] for calls in results.values() for c in calls if c["code"] == 0]
    assert sorted(got) == sorted(ids)  # each exactly once
    for calls in results.values():
        assert all(c["code"] in (0, 3) for c in calls), calls
    assert seeded.scalar("SELECT count(*) FROM conversations WHERE assignee_id IS NULL") == 0


def test_bulk_claim_race_between_real_processes_is_all_or_nothing(seeded):
    """Real `python -m deskctl` processes claiming the same 30 conversations at once:
    exactly one gets all of them, every other one exits 4 with nothing changed."""
    ids = [make_conversation(seeded, with_message=False) for _ in range(30)]
    handles = worker.agents(seeded, "racer", 4)
    procs = [(h, worker.deskctl(seeded, "claim", *ids, user=h, DESKCTL_FORMAT="ids")) for h in handles]
    codes = {}
    for handle, proc in procs:
        proc.communicate(timeout=300)
        codes[handle] = proc.returncode
    assert sorted(codes.values()) == [0, 4, 4, 4], codes
    [winner] = [h for h, code in codes.items() if code == 0]
    rows = seeded.rows("SELECT DISTINCT u.handle FROM conversations c JOIN users u ON u.id = c.assignee_id")
    assert rows == [{"handle": winner}]
    assert seeded.scalar("SELECT count(*) FROM events WHERE kind = 'claimed'") == 30
