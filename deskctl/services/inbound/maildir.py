"""Mail in by the batch: `ingest email` (a file, an mbox, a Maildir) and the `mail-poll`
job (SPEC §11) share this loop.

Messages are stored a batch at a time (EMAIL_BATCH; mail-poll: POLL_BATCH), one
transaction each, COMMITTED here (like the notify job, this service commits as it goes:
a crash loses at most the batch in hand, and a rerun reports the committed ones as
`duplicate`). Only then is each Maildir file
that was handled (stored, duplicate or quarantined) renamed from new/NAME to
cur/NAME:2,S. A crash between the commit and the rename leaves the file in new/; the
next run reads it again and finds its Message-ID: `duplicate`, never stored twice.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path

from deskctl.services.inbound import intake

# An mbox or Maildir is committed every EMAIL_BATCH messages (or EMAIL_BATCH_BYTES of raw
# mail, whichever comes first): a failure loses at most the uncommitted ones.
EMAIL_BATCH = 100
EMAIL_BATCH_BYTES = 32 << 20
# mail-poll takes bigger batches: it runs alone in the background, and fewer, larger
# transactions cost 10 to 20% less CPU per mail (bench: `mail-poll Maildir`). On SQLite
# the write lock is held only while a batch is stored (parsing comes before it).
POLL_BATCH = 500
INGEST_LOCK = "deskctl.ingest"
log = logging.getLogger("deskctl.jobs.mail-poll")

# (raw bytes or intake.Spilled, origin for the quarantine, Maildir file to move or None)
Source = tuple[bytes | intake.Spilled, str | None, Path | None]


def take_ingest_turn(session) -> None:
    """On PostgreSQL ingest transactions take turns (an advisory lock held until commit),
    as every writer does on SQLite (BEGIN IMMEDIATE). Without it two concurrent
    deliveries of one new contact or Message-ID both INSERT it; the second fails on the
    unique index inside psycopg's executemany pipeline, and although the retry then sees
    the row, psycopg reports the aborted pipeline on stderr ("error ignored terminating
    <psycopg.Pipeline ...>")."""
    from sqlalchemy import text

    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": INGEST_LOCK})


def maildir_messages(files: Iterable[tuple[str, Path]], settings, *, move: bool,
                     unreadable=None) -> Iterator[Source]:
    """The messages of `intake.maildir_files(...)`, read one at a time in bounded memory.
    `move`: each comes with its file, to be moved to cur/ once committed.
    `unreadable(path, error)`: called for a file that cannot be read, which is then left
    where it is; without it the error is raised."""
    for key, path in files:
        try:
            raw = intake.read_path(path, settings)
        except FileNotFoundError:  # another run (mail-poll, ingest --move) took it first
            continue
        except OSError as exc:
            if unreadable is None:
                raise
            unreadable(path, exc)
            continue
        yield raw, key, path if move else None


def batches(sources: Iterable[Source], count: int | None = None) -> Iterator[list[Source]]:
    """Messages in groups of `count` (default EMAIL_BATCH) or EMAIL_BATCH_BYTES of raw mail."""
    count = count or EMAIL_BATCH
    batch: list[Source] = []
    size = 0
    for item in sources:
        batch.append(item)
        size += len(item[0]) if isinstance(item[0], bytes) else 0
        if len(batch) >= count or size >= EMAIL_BATCH_BYTES:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def ingest_emails(session, sources: Iterable[Source], *, now, settings, group_id: int | None = None,
                  on_quarantine=None, batch_size: int | None = None) -> Iterator[dict]:
    """Store `sources` a batch at a time, committing each batch on `session`, and yield
    each ingest result (SPEC §7) once it is committed; a Maildir file is moved to cur/
    right after its batch commits. `now` is a datetime or a callable returning one (the
    command's clock moves between batches). `on_quarantine(result, origin)` is called for
    each quarantined message. `batch_size`: mails per transaction (default EMAIL_BATCH)."""
    from sqlalchemy.exc import IntegrityError

    from deskctl.services.inbound import email

    for batch in batches(sources, batch_size):
        messages = [(raw, origin) for raw, origin, _path in batch]
        for attempt in (1, 2):
            try:
                take_ingest_turn(session)
                results = email.ingest_batch(session, messages, now=now() if callable(now) else now,
                                             settings=settings, group_id=group_id)
                session.commit()
                break
            except IntegrityError:
                # A concurrent delivery stored the same Message-ID (or contact) first: the
                # second attempt sees it and reports `duplicate`.
                session.rollback()
                if attempt == 2:
                    raise
        session.expunge_all()  # memory stays flat over a 10,000-message Maildir
        for result, (_raw, origin, path) in zip(results, batch, strict=True):
            if result["action"] == "quarantined" and on_quarantine is not None:
                on_quarantine(result, origin)
            if path is not None:
                mark_seen(path)
            yield result


def mark_seen(path: Path) -> None:
    """new/NAME → cur/NAME:2,S (other flags kept). Not fsynced: a rename lost in a crash
    leaves the file in new/, and the next run reads it as a `duplicate`."""
    try:
        os.rename(path, path.parent.parent / "cur" / intake.seen_name(path.name))
    except FileNotFoundError:  # a concurrent run moved it first
        pass


def poll(session, *, now: datetime, settings) -> dict:
    """The `mail-poll` job: every message in `mail.maildir`/new, stored a batch at a time
    and moved to cur/. Counts: stored (created + appended), created, appended,
    duplicate, quarantined, and unreadable: files that could not be read (a directory, no
    permission), left in new/ and logged, so that one of them does not hold back the
    others; they are tried again on the next run."""
    from deskctl.errors import ConfigError

    root = settings.mail.maildir
    if root is None:
        raise ConfigError(settings.source, "mail.maildir", "is not set: mail-poll has no Maildir to read")
    counts = {"stored": 0, "created": 0, "appended": 0, "duplicate": 0, "quarantined": 0, "unreadable": 0}

    def unreadable(path, exc):
        counts["unreadable"] += 1
        log.warning("mail-poll: cannot read %s, left in new/: %s", path, exc.strerror or exc)

    files = intake.maildir_files(root, new_only=True)
    messages = maildir_messages(files, settings, move=True, unreadable=unreadable)
    for result in ingest_emails(session, messages, now=now, settings=settings, batch_size=POLL_BATCH):
        action = result["action"]
        counts[action] = counts.get(action, 0) + 1
        if action in ("created", "appended"):
            counts["stored"] += 1
    return counts
