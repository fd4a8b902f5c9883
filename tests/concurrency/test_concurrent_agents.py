"""Concurrent agents: many processes run `claim`, `next` and `transfer` (single and bulk)
on the same conversations at once. Afterwards every conversation has one consistent
owner, replaying its audit trail gives exactly its final row, every call that succeeded
left its events and every failure was a clean exit (4 for a lost race, 3 for `next` with
nothing waiting) — never 1, never a deadlock trace.

PostgreSQL: 6 processes on 150 conversations by default, 16 on 1,000 with DESKCTL_STRESS=1.
SQLite: 4 processes (writers queue on the busy timeout, WAL).

Each worker is a tests/concurrency/worker.py process calling the `deskctl` entry point once
per operation (its own App, engine and transaction each time, as separate runs would), so
interpreter start-up is paid once per worker; its random plan is drawn here, from a fixed seed.
"""

from __future__ import annotations

import json
import random
from collections import Counter, defaultdict

from deskctl.services.keeping.integrity import run_checks
from tests.concurrency import worker
from tests.reliability.conftest import bulk_conversations, size


def _plan(seed: int, ops: int, first: int, last: int, others: list[str]) -> list[tuple[str, list[str]]]:
    """(op, args) for one agent: claims, nexts, single and bulk transfers at random."""
    rng = random.Random(seed)
    plan = []
    for _ in range(ops):
        roll = rng.random()
        cid = str(rng.randint(first, last))
        if roll < 0.35:
            op, args = "claim", ["claim", cid]
        elif roll < 0.6:
            op, args = "next", ["next", "--group", "billing"]
        elif roll < 0.92:
            to = rng.choice(["user:" + rng.choice(others), "group:billing", "group:support"])
            args = ["transfer", cid, "--to", to] + (["--message", "over to you"] if rng.random() < 0.3 else [])
            op = "transfer"
        else:
            op = "bulk"
            args = ["transfer", "--from", rng.choice(others), "--to", "group:billing", "--limit", "5"]
        plan.append((op, args))
    return plan


EXPECTED = {"claim": {0, 4}, "next": {0, 3}, "transfer": {0, 4}, "bulk": {0, 4}}


def _replay(events, group_names):
    """Final (status, assignee, group) from the audit trail alone."""
    state = {"status": "new", "assignee": None, "group": "billing"}
    mismatches = []
    for e in events:
        data = e["data"] if isinstance(e["data"], dict) else json.loads(e["data"])
        if e["kind"] in ("claimed", "stolen"):
            state.update(status="open", assignee=e["actor"])
        elif e["kind"] == "transferred":
            if data.get("from_user") != state["assignee"]:
                mismatches.append((e["id"], "from_user", data.get("from_user"), state["assignee"]))
            if data.get("to_user"):
                state.update(status="new", assignee=data["to_user"])
            else:
                state.update(status="new", assignee=None, group=data["to_group"])
        elif e["kind"] == "released":
            state.update(status="new", assignee=None)
    return state, mismatches


def _run(desk, workers, conversations, ops):
    ids = bulk_conversations(desk, conversations)
    handles = worker.agents(desk, "agent", workers, groups=("billing", "support"))
    plans = {handle: _plan(1000 + i, ops, ids[0], ids[-1], [h for h in handles if h != handle])
             for i, handle in enumerate(handles)}
    results = worker.run(desk, {handle: (handle, [{"cli": args + ["--format", "jsonl"]} for _, args in plan])
                                for handle, plan in plans.items()}, timeout=1800)

    calls = []
    for handle, plan in plans.items():
        assert len(results[handle]) == len(plan)
        for (op, args), c in zip(plan, results[handle], strict=True):
            records = [json.loads(line) for line in c["out"].splitlines() if line.strip()] if c["code"] == 0 else []
            calls.append({"op": op, "args": args, "code": c["code"], "records": records, "err": c["err"],
                          "actor": handle})
    assert len(calls) == workers * ops
    for c in calls:
        assert c["code"] in EXPECTED[c["op"]], c
        assert "Traceback" not in c["err"] and "deadlock" not in c["err"].lower(), c

    # one consistent owner, and the audit trail replays to the final row
    rows = {r["id"]: r for r in desk.rows(
        "SELECT c.id, c.status, u.handle AS assignee, g.name AS grp FROM conversations c "
        "LEFT JOIN users u ON u.id = c.assignee_id LEFT JOIN groups g ON g.id = c.group_id")}
    events = defaultdict(list)
    for e in desk.rows("SELECT id, conversation_id, actor, kind, data FROM events ORDER BY id"):
        events[e["conversation_id"]].append(e)
    mismatches = []
    for cid in ids:
        row = rows[cid]
        assert not (row["status"] == "open" and row["assignee"] is None), row
        state, bad = _replay(events[cid], None)
        mismatches += bad
        if (state["status"], state["assignee"], state["group"]) != (row["status"], row["assignee"], row["grp"]):
            mismatches.append((cid, state, row))
    assert mismatches == []

    # every success left exactly its events, every failure left none
    claimed = Counter((e["conversation_id"], e["actor"]) for es in events.values() for e in es
                      if e["kind"] == "claimed")
    reported = Counter((r["id"], c["actor"]) for c in calls if c["op"] in ("claim", "next") and c["code"] == 0
                       for r in c["records"] if r["previous_status"] != "open" or r["previous_assignee"] != c["actor"])
    assert claimed == reported
    transferred = Counter((e["conversation_id"], e["actor"]) for es in events.values() for e in es
                          if e["kind"] == "transferred")
    moved = Counter((r["id"], c["actor"]) for c in calls if c["op"] in ("transfer", "bulk") and c["code"] == 0
                    for r in c["records"])
    assert transferred == moved
    with desk.session() as session:
        assert [c for c in run_checks(session) if c["problems"]] == []
    return Counter((c["op"], c["code"]) for c in calls)


def test_concurrent_claim_next_transfer_keep_one_owner_and_a_true_audit_trail(seeded):
    if seeded.engine_name == "postgresql":
        workers, conversations, ops = size(6, 16), size(150, 1000), size(30, 250)
    else:
        workers, conversations, ops = 4, size(80, 1000), size(25, 250)
    outcome = _run(seeded, workers, conversations, ops)
    print(f"{seeded.engine_name}: {workers} processes, {conversations} conversations, outcomes {dict(outcome)}")
    assert outcome[("claim", 0)] + outcome[("next", 0)] > 0
    assert outcome[("transfer", 0)] > 0
