"""One entry point for every job run (SPEC §5): the daemon, `deskctl jobs run NAME`
(cron) and `deskctl daemon --once` all call `run_job`.

A run: take the job's lock (PostgreSQL: `pg_try_advisory_xact_lock` held by a dedicated
connection for the whole run; SQLite: a lease row in `job_locks`), record a `job_runs`
row (`running`), run the job in its own transaction, then record the outcome (`ok` with
its counts, or `failed` with the error: never swallowed). When another runner holds the
lock the run is recorded `skipped` and nothing else happens.

Also here: schedules from config as APScheduler triggers, and the catch-up rule shared
by the daemon's start and `daemon --once` ("due" = a fire time has passed since the
last recorded run, so a run missed while nothing was running happens once).
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select, text, update

from deskctl.jobs import registry
from deskctl.models import JobLock, JobRun

log = logging.getLogger("deskctl.jobs")

# SQLite lease: a run longer than this could be started again by another process.
LEASE = timedelta(hours=1)
EPOCH = datetime(2000, 1, 3, tzinfo=UTC)  # a Monday at midnight: interval runs land on round times


@dataclass
class RunResult:
    id: int | None
    job: str
    scheduled_for: datetime
    started_at: datetime
    finished_at: datetime | None
    outcome: str  # ok | failed | skipped
    counts: dict
    error: str | None
    exception: BaseException | None = field(default=None, repr=False, compare=False)

    def record(self) -> dict:
        """The job-run record of SPEC §7."""
        return {"id": self.id, "job": self.job, "scheduled_for": self.scheduled_for,
                "started_at": self.started_at, "finished_at": self.finished_at, "outcome": self.outcome,
                "counts": self.counts, "error": self.error}


def run_record(row: JobRun) -> dict:
    return {"id": row.id, "job": row.job, "scheduled_for": row.scheduled_for, "started_at": row.started_at,
            "finished_at": row.finished_at, "outcome": row.outcome, "counts": row.counts or {},
            "error": row.error}


def run_job(app, name: str, *, now: datetime | None = None, scheduled_for: datetime | None = None,
            if_due=None) -> RunResult:
    """Run job `name` once, as of `now` (default: the app clock). Never raises for a
    failing job: the result says `failed` and carries the exception.

    `if_due` (a trigger): for scheduled runs, re-check under the lock that the job is
    still due, so two daemons firing the same slot one after the other run it once."""
    registry.get(name)  # unknown name: usage error before anything is recorded
    app.ensure_schema()
    now = now or app.now()
    scheduled_for = scheduled_for or now
    with job_lock(app, name) as held:
        if not held:
            log.info("job %s skipped: another runner is running it", name)
            return _record_skipped(app, name, scheduled_for, "another runner holds this job's lock")
        if if_due is not None:
            with app.read() as session:
                last = last_scheduled(session, name, now)
            if not is_due(if_due, last, now):
                log.info("job %s skipped: already run for %s", name, last)
                return _record_skipped(app, name, scheduled_for, "already run for this time by another runner")
        started = app.now()
        with app.transaction() as session:
            # Holding the lock, no other run of this job is alive: a `running` row left
            # behind is a run whose process died (kill -9, power loss).
            session.execute(update(JobRun).where(JobRun.job == name, JobRun.outcome == "running").values(
                outcome="failed", error="interrupted: the process running it stopped before it finished"))
            row = JobRun(job=name, scheduled_for=scheduled_for, started_at=started, outcome="running", counts={})
            session.add(row)
            session.flush()
            run_id = row.id
        outcome, counts, error, exception = "ok", {}, None, None
        try:
            run = registry.load(name)
            with app.transaction() as session:
                counts = _clean_counts(run(session, now=now, settings=app.settings))
        except BaseException as exc:  # recorded, then re-raised if it is not an ordinary failure
            outcome, error, exception = "failed", _describe(exc), exc
            log.error("job %s failed: %s", name, error)
            if not isinstance(exc, registry.JobUnavailable):  # the daemon's journal gets the traceback
                log.info("job %s traceback", name, exc_info=exc)
        finished = app.now()
        with app.transaction() as session:
            session.execute(update(JobRun).where(JobRun.id == run_id).values(
                finished_at=finished, outcome=outcome, counts=counts, error=error))
        if exception is not None and not isinstance(exception, Exception):
            raise exception  # KeyboardInterrupt / SystemExit: recorded, still honoured
        if outcome == "ok":
            log.info("job %s ok: %s", name, counts)
        return RunResult(run_id, name, scheduled_for, started, finished, outcome, counts, error, exception)


def _clean_counts(counts) -> dict:
    if counts is None:
        return {}
    if not isinstance(counts, dict):
        return {"result": str(counts)}
    return {str(k): (v if isinstance(v, (int, float, str, bool)) or v is None else str(v))
            for k, v in counts.items()}


def _describe(exc: BaseException) -> str:
    message = str(exc).strip()
    if hasattr(exc, "format_message"):
        message = exc.format_message()
    first = message.splitlines()[0] if message else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def _record_skipped(app, name: str, scheduled_for: datetime, why: str) -> RunResult:
    at = app.now()
    with app.transaction() as session:
        row = JobRun(job=name, scheduled_for=scheduled_for, started_at=at, finished_at=at, outcome="skipped",
                     counts={}, error=why)
        session.add(row)
        session.flush()
        run_id = row.id
    return RunResult(run_id, name, scheduled_for, at, at, "skipped", {}, why)


@contextmanager
def job_lock(app, name: str):
    """Yields True when this process may run the job now."""
    if app.engine.dialect.name == "postgresql":
        # The lock lives in a transaction of its own connection, so jobs that commit as
        # they go (notify) keep it until the run is over; it is released by the rollback.
        with app.engine.connect() as conn:
            with conn.begin():
                held = conn.execute(text("SELECT pg_try_advisory_xact_lock(hashtext(:key))"),
                                    {"key": f"deskctl:job:{name}"}).scalar()
                yield bool(held)
        return
    holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    # Leases are about live processes, so they use the wall clock, not DESKCTL_NOW.
    wall = datetime.now(UTC)
    with app.transaction() as session:  # BEGIN IMMEDIATE: lease checks are serialised
        lease = session.get(JobLock, name)
        if lease is not None and lease.expires_at > wall and _alive(lease.holder):
            held = False
        else:
            if lease is None:
                session.add(JobLock(job=name, holder=holder, expires_at=wall + LEASE))
            else:
                lease.holder, lease.expires_at = holder, wall + LEASE
            held = True
    try:
        yield held
    finally:
        if held:
            with app.transaction() as session:
                session.execute(delete(JobLock).where(JobLock.job == name, JobLock.holder == holder))


def _alive(holder: str) -> bool:
    """Whether a lease holder ("host:pid:nonce") may still be running. Only a holder on
    this host can be checked; one elsewhere is trusted until its lease expires."""
    host, _, rest = holder.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return True
    pid = int(pid_text)
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


# -- schedules -------------------------------------------------------------------------

@dataclass(frozen=True)
class Schedule:
    name: str
    enabled: bool
    every: timedelta | None
    cron: str | None

    def describe(self) -> str:
        if not self.enabled:
            return "off"
        if self.cron:
            return f"cron {self.cron}"
        seconds = int(self.every.total_seconds())
        parts = []
        for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
            if seconds >= size:
                parts.append(f"{seconds // size}{unit}")
                seconds %= size
        return f"every {''.join(parts) or '0s'}"


def schedule_for(name: str, settings) -> Schedule:
    job = settings.jobs.get(name)
    if job is not None:
        return Schedule(name, job.enabled, job.every, job.cron)
    spec = registry.get(name)
    every = None
    if spec.default_every:
        from deskctl.timeparse import parse_duration

        every = parse_duration(spec.default_every)
    return Schedule(name, True, every, spec.default_cron)


def trigger_for(schedule: Schedule, tz: str):
    """The APScheduler trigger of a schedule (None when off)."""
    if not schedule.enabled:
        return None
    if schedule.cron:
        from apscheduler.triggers.cron import CronTrigger

        return CronTrigger.from_crontab(schedule.cron, timezone=tz)
    from apscheduler.triggers.interval import IntervalTrigger

    return IntervalTrigger(seconds=max(int(schedule.every.total_seconds()), 1), start_date=EPOCH, timezone=tz)


def previous_fire_time(trigger, now: datetime) -> datetime | None:
    """The latest fire time at or before `now`."""
    for window in (timedelta(hours=1), timedelta(days=2), timedelta(days=32), timedelta(days=400)):
        fire = trigger.get_next_fire_time(None, now - window)
        last = None
        steps = 0
        while fire is not None and fire <= now and steps < 10_000:
            last = fire
            fire = trigger.get_next_fire_time(fire, fire + timedelta(microseconds=1))
            steps += 1
        if last is not None:
            return last.astimezone(UTC)
    return None


def next_fire_time(trigger, after: datetime) -> datetime | None:
    fire = trigger.get_next_fire_time(None, after)
    return fire.astimezone(UTC) if fire is not None else None


def last_scheduled(session, name: str, now: datetime) -> datetime | None:
    """scheduled_for of the job's last finished run (ok or failed) as of `now`. A `running`
    row does not count: if that run is alive, the new one will find the lock held and be
    skipped; if its process died, its work was rolled back and is due again. A run for a
    time after `now` (`jobs run --now T --force-future`) does not count either: it must
    never stop the schedule until the clock catches up with it (SPEC §9)."""
    return session.scalar(select(JobRun.scheduled_for)
                          .where(JobRun.job == name, JobRun.outcome.in_(("ok", "failed")),
                                 JobRun.scheduled_for <= now)
                          .order_by(JobRun.scheduled_for.desc()).limit(1))


def is_due(trigger, last: datetime | None, now: datetime) -> bool:
    """A fire time has passed since the last run (or the job never ran)."""
    if trigger is None:
        return False
    if last is None:
        return True
    fire = trigger.get_next_fire_time(last, last)  # strictly after `last`
    return fire is not None and fire <= now


def overview(session, settings, now: datetime) -> list[dict]:
    """`jobs list`: each job's schedule, last run and outcome, and next run (`now` when due)."""
    rows = []
    for name in registry.names():
        schedule = schedule_for(name, settings)
        trigger = trigger_for(schedule, settings.timezone)
        last = session.scalars(select(JobRun).where(JobRun.job == name)
                               .order_by(JobRun.started_at.desc(), JobRun.id.desc()).limit(1)).first()
        next_run = None
        if trigger is not None:
            next_run = now if is_due(trigger, last_scheduled(session, name, now), now) else next_fire_time(trigger, now)
        description = registry.get(name).description
        if not registry.available(name):
            description += " [not installed]"
        rows.append({"job": name, "schedule": schedule.describe(), "last_run": last.started_at if last else None,
                     "outcome": last.outcome if last else None, "next_run": next_run,
                     "description": description})
    return rows


def history(session, *, name: str | None = None, outcomes=(), limit: int) -> list[dict]:
    """`jobs history`: past run records, newest first, of one job and/or some outcomes."""
    stmt = select(JobRun).order_by(JobRun.started_at.desc(), JobRun.id.desc()).limit(limit)
    if name:
        stmt = stmt.where(JobRun.job == name)
    if outcomes:
        stmt = stmt.where(JobRun.outcome.in_(outcomes))
    return [run_record(r) for r in session.scalars(stmt)]


def due_jobs(app, now: datetime) -> list[tuple[str, datetime, object]]:
    """(job, the missed fire time to run it for, its trigger) for every enabled job that is due."""
    out = []
    with app.read() as session:
        for name in registry.names():
            trigger = trigger_for(schedule_for(name, app.settings), app.settings.timezone)
            if is_due(trigger, last_scheduled(session, name, now), now):
                out.append((name, previous_fire_time(trigger, now) or now, trigger))
    return out
