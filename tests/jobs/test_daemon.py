"""The daemon: catch-up after downtime runs once (from job_runs), `daemon --once`,
schedules from config, and SIGTERM during a job (a real subprocess) exits 0 with the
job finished and recorded."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from deskctl.app import App
from deskctl.jobs import daemon, registry, runner
from deskctl.models import JobRun

TICKS: list[datetime] = []


def tick_job(session, *, now, settings):
    TICKS.append(now)
    return {"ticks": 1}


@pytest.fixture
def only_tick_jobs(monkeypatch):
    """The registry holds just two test jobs: `hourly` (every 1h) and `nightly` (cron)."""
    TICKS.clear()
    jobs = {
        "hourly": registry.JobSpec("hourly", "tests.jobs.test_daemon:tick_job", "", default_every="1h"),
        "nightly": registry.JobSpec("nightly", "tests.jobs.test_daemon:tick_job", "", default_cron="0 2 * * *"),
    }
    monkeypatch.setattr(registry, "JOBS", jobs)


def record_run(desk, job, scheduled_for, outcome="ok"):
    with desk.session() as s:
        s.add(JobRun(job=job, scheduled_for=scheduled_for, started_at=scheduled_for, finished_at=scheduled_for,
                     outcome=outcome, counts={}))


def runs(desk, job):
    """Through the ORM: aware UTC datetimes on both engines."""
    from sqlalchemy import select

    with desk.session() as s:
        return [{"outcome": r.outcome, "scheduled_for": r.scheduled_for}
                for r in s.scalars(select(JobRun).where(JobRun.job == job).order_by(JobRun.id))]


# -- the catch-up rule -------------------------------------------------------------------------

def test_is_due_and_previous_fire_time():
    tz = "Europe/Paris"
    hourly = runner.trigger_for(runner.Schedule("h", True, timedelta(hours=1), None), tz)
    nightly = runner.trigger_for(runner.Schedule("n", True, None, "0 2 * * *"), tz)
    now = datetime(2026, 11, 20, 10, 30, tzinfo=UTC)
    assert runner.is_due(hourly, None, now)
    assert not runner.is_due(hourly, datetime(2026, 11, 20, 10, 0, tzinfo=UTC), now)
    assert runner.is_due(hourly, datetime(2026, 11, 20, 9, 0, tzinfo=UTC), now)
    assert runner.previous_fire_time(hourly, now) == datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    # 02:00 Paris = 01:00 UTC in November
    assert runner.previous_fire_time(nightly, now) == datetime(2026, 11, 20, 1, 0, tzinfo=UTC)
    assert not runner.is_due(nightly, datetime(2026, 11, 20, 1, 0, tzinfo=UTC), now)
    assert runner.is_due(nightly, datetime(2026, 11, 18, 1, 0, tzinfo=UTC), now)
    assert runner.trigger_for(runner.Schedule("off", False, timedelta(minutes=5), None), tz) is None


def test_once_catches_up_a_missed_run_once(desk, only_tick_jobs):
    now = datetime(2026, 11, 20, 10, 30, tzinfo=UTC)
    record_run(desk, "hourly", now - timedelta(hours=5))  # the daemon was down for hours
    record_run(desk, "nightly", datetime(2026, 11, 20, 2, 0, tzinfo=UTC))  # ran last night (UTC): not due
    app = App(db_url=desk.url)
    results = daemon.run_once(app, now)
    assert [(r.job, r.outcome) for r in results] == [("hourly", "ok")]
    # one run for the five missed hours, for the latest missed fire time
    assert runs(desk, "hourly")[-1]["scheduled_for"] == datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    assert daemon.run_once(app, now) == []
    assert daemon.run_once(app, now + timedelta(minutes=29)) == []
    assert [r.job for r in daemon.run_once(app, now + timedelta(minutes=30))] == ["hourly"]
    assert len(TICKS) == 2
    app.close()


def test_daemon_once_command(desk, only_tick_jobs):
    desk.now = "2026-11-20T10:30:00+00:00"
    result = desk.run("daemon", "--once")
    assert result.exit_code == 0, result
    assert result.stdout == "" and result.stderr == ""  # quiet for cron when all is well
    assert [r["outcome"] for r in runs(desk, "hourly")] == ["ok"]
    again = desk.run("daemon", "--once")
    assert again.exit_code == 0
    assert len(TICKS) == 2


def test_daemon_once_failure_exits_non_zero(desk, only_tick_jobs, monkeypatch):
    monkeypatch.setitem(registry.JOBS, "broken", registry.JobSpec(
        "broken", "tests.jobs.test_runner:failing_job", "", default_every="1m"))
    desk.now = "2026-11-20T10:30:00+00:00"
    result = desk.run("daemon", "--once")
    assert result.exit_code == 1
    assert "job broken failed: RuntimeError: disk full" in result.stderr
    assert [r["outcome"] for r in runs(desk, "broken")] == ["failed"]
    assert [r["outcome"] for r in runs(desk, "hourly")] == ["ok"]  # the others still ran


def test_daemon_catches_up_once_at_start_then_follows_the_schedule(desk, only_tick_jobs):
    real_now = datetime.now(UTC)
    record_run(desk, "hourly", real_now - timedelta(hours=3))  # missed while down
    record_run(desk, "nightly", runner.previous_fire_time(
        runner.trigger_for(runner.Schedule("n", True, None, "0 2 * * *"), "UTC"), real_now))  # not missed
    app = App(db_url=desk.url)
    stop = threading.Event()
    thread = threading.Thread(target=daemon.serve, args=(app,), kwargs={"stop": stop, "install_signals": False})
    thread.start()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(runs(desk, "hourly")) < 2:
        time.sleep(0.2)
    time.sleep(1.5)  # would a second catch-up happen? (it must not)
    stop.set()
    thread.join(20)
    assert not thread.is_alive()
    assert [r["outcome"] for r in runs(desk, "hourly")] == ["ok", "ok"]
    assert len(runs(desk, "nightly")) == 1
    assert len(TICKS) == 1
    app.close()


# -- SIGTERM in a real process ------------------------------------------------------------------

SLOW_DAEMON = """
import sys, time
from pathlib import Path

import deskctl.jobs.sla_sweep as sweep_job

marker = Path(sys.argv[1])
original = sweep_job.run


def slow(session, *, now, settings):
    marker.write_text("started")
    time.sleep(3)
    counts = original(session, now=now, settings=settings)
    marker.write_text("finished")
    return counts


sweep_job.run = slow
from deskctl.cli import main

sys.argv = ["deskctl", "daemon"]
main()
"""


def test_sigterm_during_a_job_finishes_it_and_exits_0(desk, tmp_path):
    config = tmp_path / "deskctl.yaml"
    config.write_text(textwrap.dedent("""
        jobs:
          boomerang: null
          auto-close: null
          notify: null
          nightly-export: null
          route: null
    """))
    script = tmp_path / "slow_daemon.py"
    script.write_text(SLOW_DAEMON)
    marker = tmp_path / "marker"
    env = {**os.environ, "DESKCTL_DATABASE_URL": desk.url, "DESKCTL_CONFIG": str(config),
           "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen([sys.executable, str(script), str(marker)], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not marker.exists():
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.1)
        assert marker.read_text() == "started"
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert marker.read_text() == "finished"
    [run] = desk.rows("SELECT job, outcome, finished_at FROM job_runs")
    assert run["job"] == "sla-sweep" and run["outcome"] == "ok" and run["finished_at"] is not None
    assert "Traceback" not in stderr


def test_a_slot_already_run_by_another_runner_is_skipped_under_the_lock(desk, only_tick_jobs):
    """Runner B decided `hourly` was due, but runner A ran it in the meantime."""
    now = datetime(2026, 11, 20, 10, 30, tzinfo=UTC)
    app_a, app_b = App(db_url=desk.url), App(db_url=desk.url)
    [(name, slot, trigger)] = [d for d in runner.due_jobs(app_b, now) if d[0] == "hourly"]
    assert daemon.run_once(app_a, now)[0].outcome == "ok"
    late = runner.run_job(app_b, name, now=now, scheduled_for=slot, if_due=trigger)
    assert late.outcome == "skipped" and "already run" in late.error
    assert len([t for t in TICKS]) == 2  # hourly + nightly by A, nothing by B
    app_a.close()
    app_b.close()
