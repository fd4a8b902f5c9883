"""Spool mode (SPEC §11): `ingest email -` only writes the message into `mail.maildir`,
and the `mail-poll` job stores it on its next run.

Maildir delivery: a unique name in tmp/, the bytes written and fsynced, the file renamed
into new/ and new/ fsynced; so a message in new/ is always whole, and once this returns
(exit 0) it survives a crash. This module imports nothing of the database layer: the
mail server's cost per message is a Python start-up and a file write.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

CHUNK = 1 << 20


def unique_name() -> str:
    """A Maildir file name: SECONDS.M<microseconds>P<pid>R<random>.HOST (the usual form:
    names sort in delivery order, and pid plus 64 random bits keep them unique)."""
    now = time.time()
    host = os.uname().nodename.replace("/", r"\057").replace(":", r"\072")
    return f"{int(now)}.M{int(now % 1 * 1_000_000):06d}P{os.getpid()}R{os.urandom(8).hex()}.{host}"


def spool(stream, maildir: Path) -> Path:
    """Copy `stream` (binary) into maildir/new; returns the file's path there. Any
    OSError leaves nothing in new/ (and removes the partial file from tmp/)."""
    name = unique_name()
    tmp = Path(maildir) / "tmp" / name
    target = Path(maildir) / "new" / name
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    try:
        try:
            while chunk := stream.read(CHUNK):
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    folder = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(folder)  # the rename itself is durable
    finally:
        os.close(folder)
    return target
