"""The `nightly-export` job (SPEC §5): yesterday's reports as CSV and JSON files.

Layout: `<export_dir>/<YYYY-MM-DD>/<kind>.csv` and `<kind>.json`, the date being yesterday
in the configured timezone, for each report in `jobs.nightly-export.reports` plus
`conversations` (one row per conversation resolved or closed that day). The rows are
exactly those of `deskctl report KIND --since DAY --until DAY+1 --by KEY --format csv|json`
with the keys of EXPORT_BY (agents by agent, tags by tag, backlog by group, others by day).

Atomic: every file is written under a temporary name, synced, set to mode 0640 and
renamed; the files are written into a hidden temporary directory that is renamed to the
day's name only when complete. So the day directory is complete or absent, and a run
for a day that already has its complete directory changes nothing (counts: skipped=1).
A day path that is anything else (a file, a symlink, a directory missing a file) fails
the run with the reason, so that day is never taken as exported (SPEC §13).
Read-only on the database.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

FILE_MODE = 0o640
DIR_MODE = 0o750
EXPORT_BY = {"volume": "day", "sla": "day", "agents": "agent", "tags": "tag", "csat": "day",
             "backlog": "group", "conversations": "day"}
FORMATS = ("csv", "json")
_KINDS = {"int": "int", "float": "float", "duration": "duration", "str": "str", "date": "str",
          "datetime": "datetime", "list": "list"}


def export_kinds(settings) -> list[str]:
    job = settings.jobs.get("nightly-export")
    configured = list(job.reports) if job is not None else []
    return list(dict.fromkeys([*configured, "conversations"]))


def run(session, *, now: datetime, settings) -> dict:
    from deskctl.services.reports import kinds as reports
    zone = ZoneInfo(settings.timezone)
    today = now.astimezone(zone).date()
    day = today - timedelta(days=1)
    since, until = reports.local_midnight(day, zone), reports.local_midnight(today, zone)
    root = Path(settings.export_dir)
    final = root / day.isoformat()
    counts: dict = {"day": day.isoformat(), "written": 0, "skipped": 0, "files": 0}
    expected = expected_files(settings)
    if os.path.lexists(final):
        check_complete(final, expected)
        counts["skipped"] = 1
        return counts
    root.mkdir(parents=True, exist_ok=True)
    prefix = f".{day.isoformat()}.tmp-"
    for stale in root.glob(prefix + "*"):  # left behind by a run that crashed
        shutil.rmtree(stale, ignore_errors=True)
    work = Path(tempfile.mkdtemp(prefix=prefix, dir=root))
    try:
        for kind in export_kinds(settings):
            for fmt in FORMATS:
                columns, rows = reports.run_report(session, kind, since=since, until=until, by=EXPORT_BY[kind],
                                                   settings=settings, now=now)
                written = _write_file(work / f"{kind}.{fmt}", rows, columns, fmt, settings.timezone)
                counts["files"] += 1
            counts[kind] = written
        os.chmod(work, DIR_MODE)
        _fsync_dir(work)
        try:
            os.rename(work, final)
        except OSError:
            if not os.path.lexists(final):
                raise
            shutil.rmtree(work, ignore_errors=True)  # another run finished first
            check_complete(final, expected)
            return {"day": day.isoformat(), "written": 0, "skipped": 1, "files": 0}
        _fsync_dir(root)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    counts["written"] = 1
    return counts


def expected_files(settings) -> list[str]:
    """The file names of one day's complete export."""
    return [f"{kind}.{fmt}" for kind in export_kinds(settings) for fmt in FORMATS]


def check_complete(path: Path, expected: list[str]) -> None:
    """A day path that exists must be a complete export directory: a real directory (not
    a symlink) holding every expected file as a regular file. Anything else fails the run
    (SPEC §13), so the day is never recorded as done while its files are missing."""
    from deskctl.errors import Conflict

    if path.is_symlink() or not path.is_dir():
        kind = "a symlink" if path.is_symlink() else "a file" if path.is_file() else "not a directory"
        raise Conflict(f"export path {path} exists but is {kind}, not a complete export; "
                       "move it away and rerun the export")
    missing = [name for name in expected if not (path / name).is_file() or (path / name).is_symlink()]
    if missing:
        raise Conflict(f"export directory {path} is not a complete export (missing {', '.join(missing)}); "
                       "move it away and rerun the export")


def _write_file(path: Path, rows, columns, fmt: str, tz: str) -> int:
    """Render rows to `path` atomically (temporary name, fsync, mode 0640, rename)."""
    from deskctl.output import Column, render

    out_columns = [Column(c.name, _KINDS[c.kind]) for c in columns]
    partial = path.with_name(f".{path.name}.part")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
        count = render(rows, out_columns, fmt, tz=tz, out=out, id_key=columns[0].name)
        out.flush()
        os.fsync(out.fileno())
    os.chmod(partial, FILE_MODE)  # whatever the umask
    os.rename(partial, path)
    return count


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
