"""`deskctl db backup FILE`: a consistent copy of a SQLite desk while others write (SPEC §12).

SQLite's online backup API copies the database page by page. It is run as one step
(`pages=-1`): the copy is then read within one read transaction, a snapshot that writers
in WAL mode do not block and cannot change half-way (a stepwise backup restarts each
time another connection writes). The copy is written beside FILE under a temporary name,
made a self-contained file (rollback journal, no -wal), checked, then renamed.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from deskctl.db.engine import normalize_url, redact
from deskctl.errors import ConfigError, Conflict, TempFail, UsageError
from deskctl.services.files import fsync_directory, move_into_place, write_error


@dataclass(frozen=True)
class BackupResult:
    source: str
    target: str
    size: int


def sqlite_source(url: str) -> Path:
    """The database file a SQLite URL names; PostgreSQL and anything else is exit 2."""
    parsed = make_url(normalize_url(url))
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        raise UsageError("db backup copies SQLite desks only; on PostgreSQL use pg_dump "
                         "(e.g. pg_dump --format=custom --file=desk.dump DBNAME)")
    if backend != "sqlite" or not parsed.database or parsed.database == ":memory:":
        raise UsageError(f"db backup needs a SQLite database file, not {redact(url)}")
    path = Path(parsed.database).expanduser()
    if not path.is_file():
        raise ConfigError(None, "database.url", f"no SQLite database at {path}")
    return path


def backup_sqlite(engine, source: Path, target: str, *, force: bool = False) -> BackupResult:
    """Copy the desk `engine` opens to `target`. An existing target is a conflict (exit 4)
    unless `force`; a target in a missing directory, or the database itself, is exit 2."""
    path = Path(target)
    if path.is_dir():
        raise UsageError(f"backup target {target} is a directory; give a file name")
    if not path.parent.is_dir():
        raise UsageError(f"backup target directory {path.parent} does not exist")
    if path.exists():
        if path.samefile(source):
            raise UsageError(f"backup target {target} is the database itself")
        if not force:
            raise Conflict(f"backup target {target} exists; replacing it was not asked for", option="force")
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise write_error(exc, str(path.parent)) from None
    os.close(fd)
    try:
        _copy(engine, tmp)
        try:
            move_into_place(tmp, path, replace=force)
        except FileExistsError:
            raise Conflict(f"backup target {target} exists; replacing it was not asked for", option="force") from None
        fsync_directory(path.parent)
    except OSError as exc:
        raise write_error(exc, str(path.parent)) from None
    except sqlite3.OperationalError as exc:  # e.g. "database or disk is full"
        raise TempFail(f"backup to {target} failed: {exc}; safe to retry") from None
    finally:
        for leftover in (tmp, tmp + "-journal", tmp + "-wal", tmp + "-shm"):
            if os.path.exists(leftover):
                os.unlink(leftover)
    return BackupResult(str(source), str(path), path.stat().st_size)


def _copy(engine, tmp: str) -> None:
    destination = sqlite3.connect(tmp, isolation_level=None)
    try:
        with engine.connect() as connection:
            # The driver's own sqlite3 connection: no SQLAlchemy transaction is open on it.
            connection.connection.driver_connection.backup(destination, pages=-1)
        destination.execute("PRAGMA journal_mode=DELETE")
        verdict = destination.execute("PRAGMA quick_check").fetchone()[0]
        if verdict != "ok":
            raise Conflict(f"the copy failed its integrity check ({verdict}); nothing was written")
    finally:
        destination.close()
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
