"""Daemon faults: `kill -9` and restart the daemon across a simulated 3 days
(`DESKCTL_NOW` stepping); two daemons side by side on PostgreSQL; the database going
away under a running daemon.

After the kills: every boomerang returned exactly once, every SLA breach recorded exactly
once, exactly one complete export per day, `db check` clean.
Default: a step every 12 hours (7 daemons killed); DESKCTL_STRESS=1: every 2 hours (37).
"""

from __future__ import annotations

import random
import signal
import socket
import subprocess
import threading
import time
from datetime import timedelta

import pytest

from tests.factories import T0
from tests.reliability.conftest import (
    bulk_conversations,
    deskctl_argv,
    run_deskctl,
    size,
    subprocess_env,
)

STEP_HOURS = size(12, 2)
DAYS = 3
CONFIG = """\
timezone: UTC
clock: {{override: true}}  # a replay desk: the daemon runs at DESKCTL_NOW steps
export_dir: {export_dir}
sla:
  warning: 0.75
  policies:
    - name: default
      first_response: 2h
      next_response: 4h
      resolution: 3d
      hours: 24x7
jobs:
  sla-sweep: {{every: {every}}}
  boomerang: {{every: {every}}}
  notify: {{every: {every}}}
  auto-close: {{every: 1h, after: 4d}}
  nightly-export: {{cron: "0 2 * * *", reports: [volume, sla]}}
"""


def _configure(desk, every="1m"):
    export_dir = desk.tmp_path / "exports"
    path = desk.tmp_path / "deskctl.yaml"
    path.write_text(CONFIG.format(export_dir=export_dir, every=every))
    return path, export_dir


def _arrange(desk, config, n_boomerang, n_sla):
    from sqlalchemy import text
    from sqlalchemy.orm import Session

    from deskctl.config import load_settings
    from deskctl.services.sla import deadlines as sla
    rng = random.Random(20)
    boomerangs = bulk_conversations(desk, n_boomerang, assignee="alice", status="pending")
    with desk.engine.begin() as conn:
        for cid in boomerangs:
            at = T0 + timedelta(minutes=rng.randint(30, DAYS * 24 * 60 - 60))
            conn.execute(text("UPDATE conversations SET boomerang_at = :at, pending_since = :since WHERE id = :id"),
                         {"at": at, "since": T0, "id": cid})
    slas = bulk_conversations(desk, n_sla, start=T0)
    with desk.engine.begin() as conn:  # arrivals spread over the first two days
        for cid in slas:
            at = T0 + timedelta(minutes=rng.randint(0, 2 * 24 * 60))
            conn.execute(text("UPDATE conversations SET created_at = :at, updated_at = :at, first_inbound_at = :at, "
                              "last_inbound_at = :at WHERE id = :id"), {"at": at, "id": cid})
    settings = load_settings(str(config), desk.url)
    with Session(desk.engine) as session:
        sla.refresh(session, slas, now=T0, settings=settings)
        session.commit()
    return boomerangs, slas


def _daemon(desk, config, now, *, once=False):
    argv = deskctl_argv("daemon", *(["--once"] if once else []))
    return subprocess.Popen(argv, env=subprocess_env(desk, DESKCTL_CONFIG=config, DESKCTL_NOW=now.isoformat()),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=desk.tmp_path)


def _check_exports(export_dir, days):
    complete = sorted(p.name for p in export_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert complete == [d.isoformat() for d in days], complete
    names = None
    for day in complete:
        files = sorted(f.name for f in (export_dir / day).iterdir())
        names = names or files
        assert files == names and files, (day, files)  # each day's set whole
    return complete


@pytest.mark.usefixtures("seeded")  # the directory of seed_directory
def test_kill_9_and_restart_across_three_days_does_every_job_exactly_once(desk):
    config, export_dir = _configure(desk)
    boomerangs, slas = _arrange(desk, config, size(60, 500), size(60, 500))
    rng = random.Random(9)
    kills = restarts = 0
    t = T0
    end = T0 + timedelta(days=DAYS)
    while t <= end:
        runs_before = desk.scalar("SELECT count(*) FROM job_runs")
        proc = _daemon(desk, config, t)
        # kill at a random moment once it has begun working (start-up alone is slow here)
        waited = time.monotonic() + 30
        while desk.scalar("SELECT count(*) FROM job_runs") == runs_before and time.monotonic() < waited:
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 0.6))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.communicate(timeout=60)
        # restart at the same simulated time: whatever is due runs now
        again = _daemon(desk, config, t, once=True)
        out, err = again.communicate(timeout=600)
        restarts += 1
        assert again.returncode == 0, err.decode()[-2000:]
        assert b"Traceback" not in err
        t += timedelta(hours=STEP_HOURS)
    returned = desk.rows("SELECT conversation_id, count(*) AS n FROM events WHERE kind = 'boomerang_returned' "
                         "GROUP BY conversation_id")
    assert {r["conversation_id"]: r["n"] for r in returned} == dict.fromkeys(boomerangs, 1)
    assert desk.scalar("SELECT count(*) FROM conversations WHERE boomerang_at IS NOT NULL") == 0
    breached = desk.rows("SELECT conversation_id, data FROM events WHERE kind = 'sla_breached'")
    per_target = {}
    for r in breached:
        data = r["data"] if isinstance(r["data"], dict) else __import__("json").loads(r["data"])
        key = (r["conversation_id"], data.get("target"))
        per_target[key] = per_target.get(key, 0) + 1
    assert per_target and set(per_target.values()) == {1}, {k: v for k, v in per_target.items() if v != 1}
    # (the boomerang conversations, unanswered too, breach as well)
    assert set(slas) <= {cid for cid, target in per_target if target == "first_response"}
    # the first start catches up the export of the day before T0; then one per day
    days = [(T0 + timedelta(days=i)).date() for i in range(-1, DAYS)]
    _check_exports(export_dir, days)
    check = run_deskctl(desk, "db", "check", "--format", "json", DESKCTL_CONFIG=config)
    assert check.returncode == 0, check.stdout + check.stderr
    stale = desk.scalar("SELECT count(*) FROM job_runs WHERE outcome = 'running'")
    errors = {r["error"] for r in desk.rows("SELECT error FROM job_runs WHERE outcome = 'failed'")}
    assert all(e.startswith("interrupted") for e in errors), errors  # failed only by our kills
    runs = {r["outcome"]: r["n"] for r in desk.rows("SELECT outcome, count(*) AS n FROM job_runs GROUP BY outcome")}
    print(f"{desk.engine_name}: {kills} kill -9, {restarts} restarts, {len(boomerangs)} boomerangs, "
          f"{len(per_target)} breaches, {len(days)} exports, job runs {runs} ({stale} left 'running' by a kill)")


@pytest.mark.postgres_only
@pytest.mark.usefixtures("seeded")  # the directory of seed_directory
def test_two_daemons_side_by_side_never_run_a_job_twice(desk):
    if desk.engine_name != "postgresql":
        pytest.skip("PostgreSQL: database-level job locks between daemons")
    config, export_dir = _configure(desk)
    boomerangs, slas = _arrange(desk, config, size(1500, 5000), size(200, 1000))
    now = T0 + timedelta(days=DAYS)
    procs = [_daemon(desk, config, now, once=True) for _ in range(2)]
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err.decode()[-2000:]
    rows = desk.rows("SELECT job, scheduled_for, outcome, count(*) AS n FROM job_runs "
                     "GROUP BY job, scheduled_for, outcome")
    ok = {}
    skipped = 0
    for r in rows:
        if r["outcome"] == "ok":
            ok[(r["job"], r["scheduled_for"])] = ok.get((r["job"], r["scheduled_for"]), 0) + r["n"]
        elif r["outcome"] == "skipped":
            skipped += r["n"]
        else:
            raise AssertionError(r)
    assert ok and set(ok.values()) == {1}, ok
    returned = desk.rows("SELECT conversation_id, count(*) AS n FROM events WHERE kind = 'boomerang_returned' "
                         "GROUP BY conversation_id")
    assert {r["conversation_id"]: r["n"] for r in returned} == dict.fromkeys(boomerangs, 1)
    dupes = desk.scalar("SELECT count(*) FROM (SELECT conversation_id, kind, data FROM events WHERE kind = "
                        "'sla_breached' GROUP BY conversation_id, kind, data HAVING count(*) > 1) d")
    assert dupes == 0
    assert len([p for p in export_dir.iterdir() if not p.name.startswith(".")]) == 1
    print(f"two daemons: {len(ok)} runs ok once each, {skipped} skipped records")


class _Proxy:
    """A TCP proxy to PostgreSQL that can be cut (the database 'goes down')."""

    def __init__(self, target=("127.0.0.1", 5432)):
        self.target = target
        self.server = socket.socket()
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.server.listen(64)
        self.up = True
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            if not self.up:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a, b):
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.close()
                except OSError:
                    pass

    def cut(self):
        self.up = False
        for s in self.conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass
        self.conns.clear()

    def restore(self):
        self.up = True

    def close(self):
        self.cut()
        self.server.close()


@pytest.mark.usefixtures("seeded")  # the directory of seed_directory
def test_database_down_under_a_running_daemon_is_survived(desk):
    if desk.engine_name != "postgresql":
        pytest.skip("needs a network database to cut")
    config, _ = _configure(desk, every="1s")
    proxy = _Proxy()
    try:
        url = desk.url.replace("@127.0.0.1:5432/", f"@127.0.0.1:{proxy.port}/")
        assert url != desk.url
        env = subprocess_env(desk, DESKCTL_CONFIG=config, DESKCTL_DATABASE_URL=url)
        log = open(desk.tmp_path / "daemon.log", "wb")  # a pipe nobody reads would block the daemon
        proc = subprocess.Popen(deskctl_argv("-v", "daemon"), env=env, stdout=log, stderr=log, cwd=desk.tmp_path)

        def ok_runs():
            return desk.scalar("SELECT count(*) FROM job_runs WHERE job = 'boomerang' AND outcome = 'ok'")

        deadline = time.monotonic() + 60
        while ok_runs() < 2 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert ok_runs() >= 2
        proxy.cut()
        time.sleep(4)  # several runs while the database is away
        assert proc.poll() is None, (desk.tmp_path / "daemon.log").read_text()[-3000:]
        before = ok_runs()
        proxy.restore()
        deadline = time.monotonic() + 60
        while ok_runs() <= before and time.monotonic() < deadline:
            time.sleep(0.5)
        if ok_runs() <= before:
            proc.kill()
            proc.wait()
            raise AssertionError("the daemon did not recover when the database came back: "
                                 + (desk.tmp_path / "daemon.log").read_text()[-3000:])
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        log.close()
        assert proc.returncode == 0, (desk.tmp_path / "daemon.log").read_text()[-3000:]
        assert "daemon stopped" in (desk.tmp_path / "daemon.log").read_text()
        stuck = desk.scalar("SELECT count(*) FROM job_runs WHERE outcome = 'running'")
        print(f"database cut for 4 s: daemon alive, recovered, {stuck} run(s) left 'running'")
    finally:
        proxy.close()
