"""`deskctl daemon`: APScheduler 3.x as a clock, the database as the truth (SPEC §5).

- Schedules come from config (`jobs.<name>.every` / `.cron`, in `timezone`); jobs live
  in a MemoryJobStore, so nothing is pickled and no job store is shared.
- `coalesce=True`, `max_instances=1`: a job never overlaps itself in one daemon; across
  daemons the runner's database lock makes the second one record `skipped`.
- Catch-up: at start, a job whose next fire time after its last recorded run
  (`job_runs.scheduled_for`) has already passed runs once, immediately (APScheduler
  alone would drop that run: re-adding a job recomputes its next run time from now).
- SIGTERM/SIGINT only set an Event; the main thread then shuts the scheduler down with
  `wait=True`, so a running job finishes (and is recorded) before the process exits 0.
- `--once`: run each due job once, in registry order, and exit (for cron, or tests);
  exit 1 if one failed.
"""

from __future__ import annotations

import logging
import signal
import threading
from datetime import UTC, datetime

from deskctl.jobs import registry, runner

log = logging.getLogger("deskctl.daemon")


def run_once(app, now: datetime | None = None) -> list[runner.RunResult]:
    now = now or app.now()
    results = []
    for name, scheduled_for, trigger in runner.due_jobs(app, now):
        if not registry.available(name):
            log.warning("job %s is not available; skipped", name)
            continue
        results.append(runner.run_job(app, name, now=now, scheduled_for=scheduled_for, if_due=trigger))
    return results


def _fire(app, name: str, trigger) -> None:
    """What APScheduler calls: one recorded run, never an exception into the scheduler."""
    now = app.now()
    scheduled_for = runner.previous_fire_time(trigger, now) or now
    try:
        runner.run_job(app, name, now=now, scheduled_for=scheduled_for, if_due=trigger)
    except Exception:  # the run could not even be recorded (database down): log, keep going
        log.exception("job %s could not run", name)


def serve(app, *, stop: threading.Event | None = None, install_signals: bool = True) -> int:
    """Run the scheduler until SIGTERM/SIGINT (or `stop` is set); returns the exit code."""
    from apscheduler.executors.pool import ThreadPoolExecutor
    from apscheduler.schedulers.background import BackgroundScheduler

    settings = app.settings
    app.ensure_schema()
    stop = stop or threading.Event()
    now = app.now()

    planned = []
    with app.read() as session:
        for name in registry.names():
            schedule = runner.schedule_for(name, settings)
            trigger = runner.trigger_for(schedule, settings.timezone)
            if trigger is None:
                log.info("job %s is off", name)
                continue
            if not registry.available(name):
                log.warning("job %s is not available (its module is not installed); not scheduled", name)
                continue
            due = runner.is_due(trigger, runner.last_scheduled(session, name, now), now)
            planned.append((name, schedule, trigger, due))

    scheduler = BackgroundScheduler(
        timezone=settings.timezone,
        executors={"default": ThreadPoolExecutor(max(len(planned), 1))},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 300},
    )
    for name, schedule, trigger, due in planned:
        extra = {}
        if due:  # missed while no daemon ran: once, now (APScheduler runs on the wall clock)
            extra["next_run_time"] = datetime.now(UTC)
        scheduler.add_job(_fire, trigger, args=(app, name, trigger), id=name, name=name, **extra)
        log.info("job %s scheduled: %s%s", name, schedule.describe(), " (catching up now)" if due else "")

    previous = {}
    if install_signals:
        def handler(signum, _frame):
            log.info("signal %s: finishing the running jobs, then exiting", signum)
            stop.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, handler)

    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    scheduler.start()
    log.info("daemon started: %d job(s)", len(planned))
    try:
        while not stop.wait(0.5):
            pass
    finally:
        scheduler.shutdown(wait=True)
        for sig, old in previous.items():
            signal.signal(sig, old)
        log.info("daemon stopped")
    return 0
