"""`deskctl daemon [--once]` and `deskctl jobs list|run|history` (SPEC §5)."""

from __future__ import annotations

import logging
import sys

import click
from sqlalchemy import select

from deskctl import clock, term
from deskctl.commands import _complete
from deskctl.commands._options import LIMIT, emit, output_options
from deskctl.errors import INTERNAL, DeskError, Forbidden, UsageError
from deskctl.jobs import access, registry, runner
from deskctl.jobs import daemon as daemon_module
from deskctl.models import JobRun
from deskctl.output import Column, notice


def _columns(kind: str):
    if kind == "run":
        return [Column("id", "int"), Column("job"), Column("scheduled_for", "datetime"),
                Column("started_at", "datetime"), Column("finished_at", "datetime"), Column("outcome"),
                Column("counts"), Column("error")]
    return [Column("job"), Column("schedule"), Column("last_run", "datetime"), Column("outcome"),
            Column("next_run", "datetime"), Column("description")]


def _setup_logging(app, *, quiet: bool = False) -> None:
    """Log lines on stderr: job outcomes at INFO for the daemon (its journal), only
    warnings and errors when `quiet` (cron would mail every line)."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=logging.DEBUG if app.verbose else logging.WARNING, stream=sys.stderr,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not app.verbose:  # libraries (alembic, apscheduler) only warn
        for name in ("deskctl.jobs", "deskctl.daemon", "deskctl.notify"):
            logging.getLogger(name).setLevel(logging.WARNING if quiet else logging.INFO)


@click.command()
@click.option("--once", is_flag=True, help="Run every job that is due once, then exit (for cron).")
@click.pass_obj
def daemon(app, once):
    """Run the scheduler: every job of `deskctl jobs list` on its configured schedule.
    SIGTERM/SIGINT let the running job finish, then exit 0. A run missed while the daemon
    was down runs once at start."""

    if once:
        interactive = term.is_tty(sys.stderr)
        _setup_logging(app, quiet=not interactive)
        results = daemon_module.run_once(app)
        failed = [r for r in results if r.outcome == "failed"]
        for r in failed:
            click.echo(f"deskctl: job {r.job} failed: {r.error}", err=True)
        if interactive or app.verbose:
            notice(f"ran {len(results)} job(s): "
                   + (", ".join(f"{r.job} {r.outcome}" for r in results) or "none due"))
        if failed:
            raise click.exceptions.Exit(_exit_code(failed[0]))
        return
    _setup_logging(app)
    raise click.exceptions.Exit(daemon_module.serve(app))


@click.group()
def jobs():
    """Scheduled jobs: list them, run one now (for cron), show past runs."""


@jobs.command("list")
@output_options
@click.pass_obj
def list_jobs(app):
    """Each job's schedule, last run and outcome, and next run."""

    now = app.now()
    settings = app.settings
    rows = []
    with app.read() as session:
        for name in registry.names():
            schedule = runner.schedule_for(name, settings)
            trigger = runner.trigger_for(schedule, settings.timezone)
            last = session.scalars(select(JobRun).where(JobRun.job == name)
                                   .order_by(JobRun.started_at.desc(), JobRun.id.desc()).limit(1)).first()
            next_run = None
            if trigger is not None:
                if runner.is_due(trigger, runner.last_scheduled(session, name, now), now):
                    next_run = now
                else:
                    next_run = runner.next_fire_time(trigger, now)
            description = registry.get(name).description
            if not registry.available(name):
                description += " [not installed]"
            rows.append({"job": name, "schedule": schedule.describe(), "last_run": last.started_at if last else None,
                         "outcome": last.outcome if last else None, "next_run": next_run,
                         "description": description})
    emit(app, rows, _columns("list"), id_key="job")


@jobs.command("run")
@click.argument("name", shell_complete=_complete.job_names)
@click.option("--now", "now_text", metavar="T",
              help="Run as of this ISO 8601 time with offset (only where config has clock.override).")
@click.option("--force-future", is_flag=True, help="Allow a --now later than the desk's current time.")
@output_options
@click.pass_obj
def run_job(app, name, now_text, force_future):
    """Run job NAME once now, recorded like a scheduled run (for cron). Needs the admin role,
    or no --as when run as the desk's service account. Exits non-zero when the job fails;
    a run skipped because another runner holds the job exits 0."""

    registry.get(name)
    with app.read() as session:
        access.check_may_run_jobs(app, session)
    now = _run_time(app, now_text, force_future) if now_text else None
    if app.verbose:
        _setup_logging(app)
    else:  # the error line below is enough; tracebacks with -v
        logging.getLogger("deskctl.jobs").addHandler(logging.NullHandler())
    schedule = runner.schedule_for(name, app.settings)
    if not schedule.enabled:
        notice(f"note: {name} is off in the configuration; running it anyway")
    result = runner.run_job(app, name, now=now)
    emit(app, [result.record()], _columns("run"))
    if result.outcome == "skipped":
        notice(f"{name} skipped: another runner is running it")
    elif result.outcome == "failed":
        click.echo(f"deskctl: job {name} failed: {result.error}", err=True)
        raise click.exceptions.Exit(_exit_code(result))


def _run_time(app, text: str, force_future: bool):
    """--now T: only on desks whose clock may be overridden (5), a valid instant (2), and
    not after the desk's current time unless --force-future (2) (SPEC §13)."""
    if not app.settings.clock_override:
        raise Forbidden("--now is refused: this desk's clock cannot be overridden "
                        "(clock.override is for test, demo and replay desks)")
    try:
        when = clock.parse_instant(text)
    except ValueError as exc:
        raise UsageError(f"--now: {exc}") from None
    current = app.now()
    if when > current and not force_future:
        raise UsageError(f"--now {text} is later than the desk's current time ({current.isoformat()}); "
                         "pass --force-future to run a job as of the future")
    return when


def _exit_code(result) -> int:
    exc = result.exception
    return exc.exit_code if isinstance(exc, DeskError) else INTERNAL


@jobs.command("history")
@click.argument("name", required=False, shell_complete=_complete.job_names)
@click.option("--limit", type=LIMIT, default=50, show_default=True,
              help="At most N runs.")
@click.option("--outcome", type=click.Choice(["ok", "failed", "skipped", "running"]), multiple=True,
              help="Only runs with this outcome (repeatable).")
@output_options
@click.pass_obj
def history(app, name, limit, outcome):
    """Past runs, newest first: scheduled time, start, end, outcome, counts, error."""

    if name:
        registry.get(name)
    with app.read() as session:
        stmt = select(JobRun).order_by(JobRun.started_at.desc(), JobRun.id.desc()).limit(limit)
        if name:
            stmt = stmt.where(JobRun.job == name)
        if outcome:
            stmt = stmt.where(JobRun.outcome.in_(outcome))
        rows = [runner.run_record(r) for r in session.scalars(stmt)]
    count = emit(app, rows, _columns("run"))
    if count == 0:
        notice("no job runs recorded")
