"""Files the desk writes for a user (saved attachments, backups): finished under a
temporary name beside the target, then moved into place in one step."""

from __future__ import annotations

import os
from pathlib import Path

from deskctl.errors import DeskError, TempFail, UsageError


def move_into_place(tmp: str, path: Path, *, replace: bool) -> None:
    """Rename the finished `tmp` to `path`. Without `replace` an existing `path` is kept
    and FileExistsError raised: a hard link never replaces, so a file created since any
    earlier check is safe too (a file system without hard links falls back to rename)."""
    if replace:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError:
        os.replace(tmp, path)
        return
    os.unlink(tmp)


def default_file_mode() -> int:
    """What `open()` would create (0666 less the umask): mkstemp's 0600 suits its own
    temporary files, not documents a user saves."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def fsync_directory(directory: Path) -> None:
    """Make a rename in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_error(exc: OSError, where: str) -> DeskError:
    """An OS error while writing a user's file, as a one-line error: a path the user can
    fix is a usage error (2); a full disk or an I/O error is worth a retry (75)."""
    reason = exc.strerror or str(exc)
    if isinstance(exc, (PermissionError, IsADirectoryError, NotADirectoryError, FileNotFoundError)):
        return UsageError(f"cannot write in {where}: {reason}")
    return TempFail(f"cannot write in {where}: {reason}; safe to retry")
