"""Separate processes routing the same backlog at once (SPEC §10): no conversation is
given to two agents, no agent goes over capacity, and no pass fails (no deadlock).

Each worker (tests/concurrency/worker.py) is its own Python process running routing
passes, each in its own App, engine and transaction, as concurrent `route` job runs (cron
and daemon) and `availability set available` would; the job runner's own lock is bypassed
on purpose, so the passes really overlap and only the database guards them. A second test races
real `deskctl availability set available` processes against `deskctl next`.
"""

from __future__ import annotations

from collections import Counter

from tests.concurrency import worker
from tests.factories import make_conversation

CAPACITY = 3


def _config(desk, mode):
    path = desk.tmp_path / "route-race.yaml"
    path.write_text(f"routing: {{mode: {mode}, capacity: {{default: {CAPACITY}}}}}\n")
    return path


def _agents(desk, n, state="available"):
    handles = worker.agents(desk, "router", n, state=state)
    # alice and carol (billing too) stay out of the count
    for other in ("alice", "carol"):
        desk.ok("availability", "set", "away", "--user", other, as_="carol")
    return handles


def _check(desk, handles, conversations):
    routed = desk.rows("SELECT conversation_id FROM events WHERE kind = 'routed'")
    assert max(Counter(r["conversation_id"] for r in routed).values()) == 1  # never twice
    loads = Counter(r["handle"] for r in desk.rows(
        "SELECT u.handle FROM conversations c JOIN users u ON u.id = c.assignee_id WHERE c.status = 'open'"))
    assert set(loads) <= set(handles)
    assert max(loads.values()) <= CAPACITY, loads
    assert desk.scalar("SELECT count(*) FROM conversations WHERE status = 'open'") == len(routed)
    return loads


def test_concurrent_route_passes_never_double_assign_nor_exceed_capacity(seeded):
    workers, agents, waiting, passes = (
        (6, 12, 60, 12) if seeded.engine_name == "postgresql" else (3, 6, 30, 6))
    handles = _agents(seeded, agents, state="away")
    ids = [make_conversation(seeded, with_message=False) for _ in range(waiting)]
    config = _config(seeded, "assign")
    # everyone available at once, behind routing's back, so the passes start on a full backlog
    from sqlalchemy import text

    with seeded.engine.begin() as conn:
        conn.execute(text("UPDATE users SET availability = 'available' WHERE handle LIKE 'router%'"))
    passes_of = worker.run(seeded, {f"route{n}": ("root", [{"route": True, "repeat": passes}])
                                    for n in range(workers)}, timeout=600, DESKCTL_CONFIG=config, DESKCTL_FORMAT="ids")
    total = 0
    for results in passes_of.values():
        assert all(r["ok"] for r in results), [r for r in results if not r["ok"]]
        total += sum(r["counts"]["routed"] for r in results)
    loads = _check(seeded, handles, ids)
    assert total == sum(loads.values()) == min(waiting, agents * CAPACITY)
    assert set(loads.values()) == {CAPACITY}


def _check_routers(desk):
    return Counter(r["handle"] for r in desk.rows(
        "SELECT u.handle FROM conversations c JOIN users u ON u.id = c.assignee_id "
        "WHERE c.status = 'open' AND u.handle LIKE 'router%'"))


def test_agents_becoming_available_race_next_without_double_assignment(seeded):
    """Real `python -m deskctl availability set available` processes (each routes at
    once) racing `python -m deskctl next` by an agent already available."""
    handles = _agents(seeded, 4, state="away")
    ids = [make_conversation(seeded, with_message=False) for _ in range(30)]
    config = _config(seeded, "assign")
    seeded.ok("availability", "set", "available", as_="alice")
    procs = [worker.deskctl(seeded, "availability", "set", "available", user=h, DESKCTL_CONFIG=config,
                            DESKCTL_FORMAT="ids") for h in handles]
    nexts = [worker.deskctl(seeded, "next", user="alice", DESKCTL_CONFIG=config, DESKCTL_FORMAT="ids")
             for _ in range(3)]
    for proc in procs + nexts:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode in (0, 3), err.decode()[-2000:]
    for proc in procs:
        assert proc.returncode == 0
    claimed = seeded.rows("SELECT conversation_id FROM events WHERE kind IN ('routed', 'claimed')")
    assert max(Counter(r["conversation_id"] for r in claimed).values()) == 1
    assert len(claimed) == seeded.scalar("SELECT count(*) FROM conversations WHERE status = 'open'")
    routed = _check_routers(seeded)
    # alice pulled her own with `next` (pulling is not capped); routers got at most capacity
    assert routed and max(routed.values()) <= CAPACITY
    # what the race left (rows another transaction held) goes at the next job run
    seeded.ok("jobs", "run", "route", env={"DESKCTL_CONFIG": str(config)})
    loads = _check_routers(seeded)
    assert loads == {h: CAPACITY for h in handles}
    assert len(ids) == 30
