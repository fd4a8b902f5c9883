"""The job runner: job_runs records, `jobs run/list/history`, DESKCTL_NOW and --now,
failures recorded and exiting non-zero, and the per-job lock (advisory lock on
PostgreSQL, lease row on SQLite): two runners in parallel never both run."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from deskctl.app import App
from deskctl.jobs import registry, runner
from tests.factories import T0, make_conversation

CALLS: list[str] = []


def slow_job(session, *, now, settings):
    CALLS.append("start")
    time.sleep(1.5)
    CALLS.append("end")
    return {"slept": 1}


def failing_job(session, *, now, settings):
    from sqlalchemy import text

    session.execute(text("UPDATE users SET name = 'changed'"))
    raise RuntimeError("disk full\nsecond line")


def config_failing_job(session, *, now, settings):
    from deskctl.errors import ConfigError

    raise ConfigError("x.yaml", "jobs.foo", "bad")


@pytest.fixture
def test_jobs(monkeypatch):
    CALLS.clear()
    monkeypatch.setitem(registry.JOBS, "test-slow", registry.JobSpec(
        "test-slow", "tests.jobs.test_runner:slow_job", "sleeps", "1m"))
    monkeypatch.setitem(registry.JOBS, "test-fail", registry.JobSpec(
        "test-fail", "tests.jobs.test_runner:failing_job", "fails", "1m"))
    monkeypatch.setitem(registry.JOBS, "test-config", registry.JobSpec(
        "test-config", "tests.jobs.test_runner:config_failing_job", "fails", "1m"))
    monkeypatch.setitem(registry.JOBS, "test-missing", registry.JobSpec(
        "test-missing", "tests.jobs.no_such_module:run", "missing", "1m"))


def runs(desk, job=None):
    sql = "SELECT job, outcome, error, scheduled_for FROM job_runs"
    if job:
        return desk.rows(sql + " WHERE job = :j ORDER BY id", j=job)
    return desk.rows(sql + " ORDER BY id")


def test_jobs_run_records_a_run_and_uses_deskctl_now(seeded):
    cid = make_conversation(seeded, status="pending", boomerang_at=T0 + timedelta(hours=1))
    seeded.now = (T0 + timedelta(hours=2)).isoformat()
    [record] = seeded.json("jobs", "run", "boomerang")
    assert record["job"] == "boomerang" and record["outcome"] == "ok" and record["error"] is None
    assert record["counts"] == {"returned": 1, "cleared": 0, "notifications": 0}
    assert record["scheduled_for"] == "2026-11-20T11:00:00+00:00"
    assert record["started_at"] == "2026-11-20T11:00:00+00:00" and record["finished_at"]
    assert seeded.scalar("SELECT status FROM conversations WHERE id = :i", i=cid) == "new"
    # again: nothing left to do, still recorded
    [again] = seeded.json("jobs", "run", "boomerang")
    assert again["counts"]["returned"] == 0
    history = seeded.json("jobs", "history", "boomerang")
    assert [h["id"] for h in history] == [again["id"], record["id"]]
    assert set(history[0]) == {"id", "job", "scheduled_for", "started_at", "finished_at", "outcome", "counts",
                               "error"}


def test_jobs_run_now_option(seeded):
    make_conversation(seeded, status="pending", boomerang_at=T0 + timedelta(hours=1))
    [early] = seeded.json("jobs", "run", "boomerang", "--now", "2026-11-20T09:30:00Z")
    assert early["counts"]["returned"] == 0 and early["scheduled_for"] == "2026-11-20T09:30:00+00:00"
    [late] = seeded.json("jobs", "run", "boomerang", "--now", "2026-11-20T10:00:00+00:00")
    assert late["counts"]["returned"] == 1
    for bad in ("yesterday-ish", "0001-01-01", "9999-12-31T23:59:59", "2026-11-20T10:00:00+25:00"):
        assert seeded.run("jobs", "run", "boomerang", "--now", bad).exit_code == 2, bad
    assert seeded.run("jobs", "history", "--limit", "99999999999999999999").exit_code == 2


def test_unknown_job_is_a_usage_error(seeded):
    before = seeded.dump()
    result = seeded.run("jobs", "run", "nope")
    assert result.exit_code == 2 and "unknown job 'nope'" in result.stderr
    assert seeded.run("jobs", "history", "nope").exit_code == 2
    assert seeded.dump() == before


def test_failing_job_is_recorded_failed_and_exits_non_zero(seeded, test_jobs):
    result = seeded.run("jobs", "run", "test-fail", fmt="json")
    assert result.exit_code == 1
    [record] = result.json()
    assert record["outcome"] == "failed" and record["error"] == "RuntimeError: disk full"
    assert "job test-fail failed: RuntimeError: disk full" in result.stderr
    # its changes were rolled back, the run is recorded
    assert seeded.scalar("SELECT count(*) FROM users WHERE name = 'changed'") == 0
    [row] = runs(seeded, "test-fail")
    assert row["outcome"] == "failed" and row["error"] == "RuntimeError: disk full"
    # a domain error keeps its exit code
    assert seeded.run("jobs", "run", "test-config").exit_code == 78
    missing = seeded.run("jobs", "run", "test-missing", fmt="json")
    assert missing.exit_code == 1 and "not installed" in missing.json()[0]["error"]


def test_jobs_list_shows_schedule_last_run_and_next_run(seeded):
    seeded.now = "2026-11-20T10:00:30+00:00"
    seeded.ok("jobs", "run", "sla-sweep")
    rows = {r["job"]: r for r in seeded.json("jobs", "list")}
    assert list(rows) == ["sla-sweep", "boomerang", "auto-close", "auto-unassign", "notify", "nightly-export",
                          "route", "retention", "mail-poll"]
    assert rows["sla-sweep"]["schedule"] == "every 1m"
    assert rows["sla-sweep"]["outcome"] == "ok"
    assert rows["sla-sweep"]["last_run"] == "2026-11-20T10:00:30+00:00"
    assert rows["sla-sweep"]["next_run"] == "2026-11-20T10:01:00+00:00"
    assert rows["boomerang"]["last_run"] is None and rows["boomerang"]["next_run"] == "2026-11-20T10:00:30+00:00"
    assert rows["auto-unassign"]["schedule"] == "off" and rows["auto-unassign"]["next_run"] is None
    assert rows["nightly-export"]["schedule"] == "cron 0 2 * * *"
    assert rows["mail-poll"]["schedule"] == "off" and rows["mail-poll"]["next_run"] is None  # no mail.maildir


def test_history_filters_and_limits(seeded, test_jobs):
    seeded.ok("jobs", "run", "sla-sweep")
    seeded.run("jobs", "run", "test-fail")
    seeded.ok("jobs", "run", "sla-sweep")
    assert [r["job"] for r in seeded.json("jobs", "history")] == ["sla-sweep", "test-fail", "sla-sweep"]
    assert [r["outcome"] for r in seeded.json("jobs", "history", "--outcome", "failed")] == ["failed"]
    assert len(seeded.json("jobs", "history", "--limit", "1")) == 1
    empty = seeded.run("jobs", "history", "notify", fmt="json")
    assert empty.exit_code == 0 and empty.json() == [] and "no job runs" in empty.stderr


def _app(desk) -> App:
    return App(db_url=desk.url)


def test_two_runners_in_parallel_never_both_run(desk, test_jobs):
    """Two processes' worth of runners (separate engines) start the same job at once."""
    apps = [_app(desk), _app(desk)]
    barrier = threading.Barrier(2)
    results = []

    def go(app):
        barrier.wait()
        results.append(runner.run_job(app, "test-slow"))

    threads = [threading.Thread(target=go, args=(a,)) for a in apps]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(r.outcome for r in results) == ["ok", "skipped"]
    assert CALLS == ["start", "end"]
    assert sorted(r["outcome"] for r in runs(desk, "test-slow")) == ["ok", "skipped"]
    # the lock is released afterwards: the next run goes ahead
    assert runner.run_job(apps[0], "test-slow").outcome == "ok"
    for a in apps:
        a.close()


def test_lock_held_means_skipped(desk, test_jobs):
    app = _app(desk)
    with runner.job_lock(app, "test-slow") as held:
        assert held
        result = runner.run_job(_app(desk), "test-slow")
        assert result.outcome == "skipped"
    assert CALLS == []
    assert runner.run_job(app, "test-slow").outcome == "ok"
    app.close()


def test_expired_sqlite_lease_is_taken_over(desk, test_jobs):
    if desk.engine_name != "sqlite":
        pytest.skip("leases are the SQLite mechanism")
    from deskctl.models import JobLock

    with desk.session() as s:
        s.add(JobLock(job="test-slow", holder="dead-host:1", expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    app = _app(desk)
    assert runner.run_job(app, "test-slow").outcome == "ok"
    assert desk.scalar("SELECT count(*) FROM job_locks") == 0
    with desk.session() as s:
        s.add(JobLock(job="test-slow", holder="live-host:1", expires_at=datetime.now(UTC) + timedelta(minutes=5)))
    assert runner.run_job(app, "test-slow").outcome == "skipped"
    app.close()


def test_lease_of_a_dead_local_process_is_taken_over(desk, test_jobs):
    if desk.engine_name != "sqlite":
        pytest.skip("leases are the SQLite mechanism")
    import socket
    import subprocess
    import sys

    from deskctl.models import JobLock

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with desk.session() as s:
        s.add(JobLock(job="test-slow", holder=f"{socket.gethostname()}:{dead.pid}:x",
                      expires_at=datetime.now(UTC) + timedelta(minutes=30)))
    app = _app(desk)
    assert runner.run_job(app, "test-slow").outcome == "ok"
    app.close()


def test_run_left_running_by_a_dead_process_is_failed_and_due_again(desk, test_jobs):
    from deskctl.models import JobRun

    killed_at = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    with desk.session() as s:
        s.add(JobRun(job="test-slow", scheduled_for=killed_at, started_at=killed_at, outcome="running", counts={}))
    app = _app(desk)
    with app.read() as session:
        assert runner.last_scheduled(session, "test-slow", datetime.now(UTC)) is None  # its work was rolled back: still due
    result = runner.run_job(app, "test-slow", now=killed_at + timedelta(seconds=5))
    assert result.outcome == "ok"
    rows = runs(desk, "test-slow")
    assert [r["outcome"] for r in rows] == ["failed", "ok"]
    assert rows[0]["error"].startswith("interrupted")
    app.close()
