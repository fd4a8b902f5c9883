"""The jobs the scheduler knows (SPEC §5): name → where its `run` lives.

Every job is a module-level `run(session, *, now, settings) -> dict` of counts. Targets
are import paths, loaded only when a job runs, so `deskctl --help` and `jobs list` stay
fast and a job whose module is not installed yet (or fails to import) is reported as
unavailable rather than breaking the others. `register` adds a job the same way the
built-ins are added (for extensions and tests).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module


@dataclass(frozen=True)
class JobSpec:
    name: str
    target: str  # "module:function"
    description: str
    # Used when config has no schedule for the job (jobs registered outside config.JOB_NAMES).
    default_every: str | None = None
    default_cron: str | None = None


JOBS: dict[str, JobSpec] = {}


def register(name: str, target: str, description: str = "", *, every: str | None = None,
             cron: str | None = None) -> JobSpec:
    spec = JobSpec(name, target, description, every, cron)
    JOBS[name] = spec
    return spec


register("sla-sweep", "deskctl.jobs.sla_sweep:run",
         "record SLA warnings and breaches that have come due", every="1m")
register("boomerang", "deskctl.jobs.boomerang:run",
         "return conversations whose boomerang time has passed to new", every="1m")
register("auto-close", "deskctl.jobs.auto_close:run",
         "close resolved conversations untouched for `after`", every="1h")
register("auto-unassign", "deskctl.jobs.auto_unassign:run",
         "return unanswered claims to their group (off unless `after` is set)", every="5m")
register("notify", "deskctl.jobs.notify:run", "deliver the outbox: mail, notifications, channel replies",
         every="1m")
register("nightly-export", "deskctl.jobs.nightly_export:run",
         "write yesterday's reports as CSV and JSON files", cron="0 2 * * *")
register("route", "deskctl.jobs.route:run", "offer or assign waiting conversations to available agents", every="30s")
register("retention", "deskctl.jobs.retention:run",
         "erase the content of conversations closed longer ago than retention.closed_after", cron="30 3 * * *")
register("mail-poll", "deskctl.jobs.mail_poll:run",
         "ingest the Maildir's new/ (mail.maildir) and move each handled mail to cur/", every="1m")


class JobUnavailable(Exception):
    """The job's module cannot be imported (not installed, or broken)."""


def names() -> list[str]:
    return list(JOBS)


def get(name: str) -> JobSpec:
    from deskctl.errors import UsageError

    spec = JOBS.get(name)
    if spec is None:
        raise UsageError(f"unknown job {name!r} (choose from {', '.join(JOBS)})")
    return spec


def load(name: str) -> Callable:
    """The job's `run` function; JobUnavailable when its module is missing."""
    spec = get(name)
    module_name, _, attribute = spec.target.partition(":")
    try:
        module = import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise JobUnavailable(f"job {name!r} is not available: module {module_name} is not installed") from exc
        raise
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise JobUnavailable(f"job {name!r} is not available: {spec.target} not found") from None


def available(name: str) -> bool:
    import importlib.util

    module_name = get(name).target.partition(":")[0]
    try:
        return importlib.util.find_spec(module_name) is not None
    except ModuleNotFoundError:
        return False
