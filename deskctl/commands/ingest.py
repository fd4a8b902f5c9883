"""`deskctl ingest email|jsonl` and `deskctl ingest quarantine ...` (SPEC §4, §7).

Email runs one transaction per message (an mbox is not all-or-nothing: every message
that could be stored is kept even when another one is quarantined or the database
goes away mid-way; a rerun skips what is already in as `duplicate`). JSON lines are
committed in batches. Exit 65 when anything was quarantined, 75 when the database is
unreachable or locked (the root maps OperationalError), so an MTA retries later.
"""

from __future__ import annotations

import click

from deskctl.commands._options import LIMIT, emit, output_options

JSONL_BATCH = 1000
# An mbox or Maildir is committed every EMAIL_BATCH messages: a failure loses at most
# the uncommitted ones, and a rerun skips the rest as duplicates.
EMAIL_BATCH = 100
EMAIL_BATCH_BYTES = 32 << 20


def _email_columns():
    from deskctl.output import Column

    return [Column("message_id"), Column("id", "int"), Column("action"), Column("quarantine_id", "int"),
            Column("reason")]


def _jsonl_columns():
    from deskctl.output import Column

    return [Column("line", "int"), Column("id", "int"), Column("action"), Column("external_id"),
            Column("quarantine_id", "int"), Column("reason")]


@click.group()
def ingest():
    """Bring messages in: email (RFC 5322, mbox, Maildir) and JSON lines."""


def _read_input(path: str) -> bytes:
    stream = click.open_file(path, "rb")
    try:
        return stream.read()
    finally:
        if path != "-":
            stream.close()


def _email_sources(file_, mbox, maildir):
    """(raw bytes, origin) for every message to ingest, read lazily."""
    import mailbox
    import os
    import re

    from_quoted = re.compile(rb"(?m)^>(>*From )")
    if file_ is not None:
        yield _read_input(file_), None if file_ == "-" else os.path.basename(file_)
    if mbox is not None:
        box = mailbox.mbox(mbox, create=False)
        try:
            for n, key in enumerate(box.iterkeys(), 1):
                # mboxrd: a body line "From ..." was stored as ">From ..."; undo one level.
                yield from_quoted.sub(rb"\1", box.get_bytes(key)), f"{os.path.basename(mbox)}#{n}"
        finally:
            box.close()
    if maildir is not None:
        box = mailbox.Maildir(maildir, factory=None, create=False)
        for key in sorted(box.iterkeys()):  # delivery order: keys start with the time
            yield box.get_bytes(key), key


def _mbox_path(value):
    """`--mbox -`: spool stdin to a temporary file (mailbox needs a seekable file)."""
    if value != "-":
        return value, None
    import tempfile

    spool = tempfile.NamedTemporaryFile(prefix="deskctl-mbox-", suffix=".mbox", delete=False)
    with spool:
        stdin = click.open_file("-", "rb")
        while chunk := stdin.read(1 << 20):
            spool.write(chunk)
    return spool.name, spool.name


@ingest.command("email")
@click.argument("file_", metavar="[FILE|-]", required=False)
@click.option("--mbox", metavar="F", type=click.Path(allow_dash=True, dir_okay=False),
              help="An mbox file of many messages (`-`: read it from stdin).")
@click.option("--maildir", metavar="D", type=click.Path(exists=True, file_okay=False),
              help="A Maildir (cur/ and new/ are read, nothing is moved).")
@click.option("--group", "group_name", metavar="G", help="Group (queue) for new conversations.")
@output_options
@click.pass_obj
def email(app, file_, mbox, maildir, group_name):
    """Ingest RFC 5322 messages: one FILE, `-` for one message on stdin (an MTA pipe),
    --mbox F or --maildir D.

    Prints one result per message (message_id, id, action). Exit 65 if any message was
    quarantined (the others are kept), 75 if the database is unavailable: retry later."""
    import os

    from deskctl.errors import UsageError

    if (file_ is not None) + (mbox is not None) + (maildir is not None) != 1:
        raise UsageError("give exactly one of FILE, - (stdin), --mbox F or --maildir D")
    if mbox is not None and mbox != "-" and not os.path.isfile(mbox):
        raise UsageError(f"--mbox: no such file: {mbox}")
    if file_ is not None and file_ != "-" and not os.path.isfile(file_):
        raise UsageError(f"no such file: {file_}")
    group_id = _group_id(app, group_name)
    mbox_path, spool = _mbox_path(mbox) if mbox is not None else (None, None)
    counts: dict[str, int] = {}
    try:
        results = _ingest_emails(app, _email_sources(file_, mbox_path, maildir), group_id, counts)
        emit(app, _with_ids(app, results), _email_columns(), id_key="id")
    finally:
        if spool:
            os.unlink(spool)
    _finish(counts, "message")


def _with_ids(app, results):
    """`--format ids` lists conversations: a quarantined input has none, so it is left
    out there (it is still counted, reported on stderr and in the exit code)."""
    if app.output_format() != "ids":
        return results
    return (r for r in results if r["id"] is not None)


def _group_id(app, group_name):
    if not group_name:
        return None
    from deskctl.services.queries import group_id_by_name

    with app.read() as session:
        return group_id_by_name(session, group_name)


def _email_batches(sources):
    """Messages in groups of EMAIL_BATCH (or EMAIL_BATCH_BYTES of raw mail, whichever
    comes first): one transaction each."""
    batch, size = [], 0
    for raw, origin in sources:
        batch.append((raw, origin))
        size += len(raw)
        if len(batch) >= EMAIL_BATCH or size >= EMAIL_BATCH_BYTES:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def _ingest_emails(app, sources, group_id, counts):
    from sqlalchemy.exc import IntegrityError

    from deskctl.output import warn
    from deskctl.services import ingest_email

    settings = app.settings
    for batch in _email_batches(sources):
        for attempt in (1, 2):
            try:
                with app.transaction() as session:
                    results = ingest_email.ingest_batch(session, batch, now=app.now(), settings=settings,
                                                        group_id=group_id)
                break
            except IntegrityError:
                # A concurrent delivery stored the same Message-ID (or contact) first: the
                # second attempt sees it and reports `duplicate`.
                if attempt == 2:
                    raise
        # Printed only once committed: a result on stdout is a stored fact.
        for result, (_raw, origin) in zip(results, batch, strict=True):
            counts[result["action"]] = counts.get(result["action"], 0) + 1
            if result["action"] == "quarantined":
                where = result["message_id"] or origin or "stdin"
                warn(f"quarantined {where} as #{result['quarantine_id']}: {result['reason']}")
            yield result


def _finish(counts, noun):
    from deskctl.errors import DataError
    from deskctl.output import notice

    summary = ", ".join(f"{n} {a}" for a, n in sorted(counts.items())) or "nothing"
    total = sum(counts.values())
    notice(f"ingested {total} {noun}{'s' if total != 1 else ''}: {summary}")
    if counts.get("quarantined"):
        raise DataError(f"{counts['quarantined']} {noun}(s) quarantined; the others were kept "
                        "(see: deskctl ingest quarantine list)")


@ingest.command("jsonl")
@click.argument("file_", metavar="FILE|-")
@output_options
@click.pass_obj
def jsonl(app, file_):
    """Ingest chat, SMS, social and web messages, one JSON object a line (SPEC §7).

    Prints one result per line (line, id, action). Bad lines are quarantined with their
    line number and the good ones kept; exit 65 if any line was bad."""
    import os

    from deskctl.errors import UsageError

    if file_ != "-" and not os.path.isfile(file_):
        raise UsageError(f"no such file: {file_}")
    counts: dict[str, int] = {}
    emit(app, _with_ids(app, _ingest_lines(app, file_, counts)), _jsonl_columns(), id_key="id")
    _finish(counts, "line")


def _ingest_lines(app, file_, counts):
    import os

    from deskctl.output import warn
    from deskctl.services import ingest_jsonl

    settings = app.settings
    origin = None if file_ == "-" else os.path.basename(file_)
    stream = click.open_file(file_, "rb")
    try:
        for batch in ingest_jsonl.batches(stream, JSONL_BATCH):
            with app.transaction() as session:
                results = ingest_jsonl.ingest_batch(session, batch, now=app.now(), settings=settings,
                                                    filename=origin)
            for result in results:
                counts[result["action"]] = counts.get(result["action"], 0) + 1
                if result["action"] == "quarantined":
                    warn(f"line {result['line']}: quarantined as #{result['quarantine_id']}: {result['reason']}")
                yield result
    finally:
        if file_ != "-":
            stream.close()


# -- quarantine ------------------------------------------------------------------------
def _quarantine_columns():
    from deskctl.output import Column

    return [Column("id", "int"), Column("source"), Column("status"), Column("filename"), Column("line", "int"),
            Column("size", "int"), Column("created_at", "datetime"), Column("reason")]


@ingest.group("quarantine")
def quarantine():
    """Inputs that could not be ingested: list, show, retry, drop (supervisor or admin)."""


def _supervisor(app, session, what):
    from deskctl.services.permissions import require_supervisor

    require_supervisor(app.actor(session), what)


@quarantine.command("list")
@click.option("--status", "status", default="held", show_default=True, metavar="S",
              help="held, retried, dropped or all (comma list).")
@click.option("--source", type=click.Choice(["email", "jsonl"]), help="Only this source.")
@click.option("--limit", type=LIMIT, help="At most N entries.")
@output_options
@click.pass_obj
def quarantine_list(app, status, source, limit):
    """Quarantined inputs, oldest first (default: the ones still held)."""
    from deskctl.errors import UsageError
    from deskctl.output import notice
    from deskctl.services import quarantine as service

    statuses = service.STATUSES if status == "all" else tuple(s.strip() for s in status.split(",") if s.strip())
    unknown = [s for s in statuses if s not in service.STATUSES]
    if unknown or not statuses:
        raise UsageError(f"--status: unknown value {', '.join(unknown) or status!r} "
                         f"(choose from {', '.join(service.STATUSES)} or all)")
    with app.read() as session:
        _supervisor(app, session, "ingest quarantine list")
        count = emit(app, service.list_rows(session, status=statuses, source=source, limit=limit),
                     _quarantine_columns())
    if not count:
        notice("nothing in quarantine")


@quarantine.command("show")
@click.argument("quarantine_id", type=int, metavar="ID")
@click.option("--raw", is_flag=True, help="Write the raw bytes to stdout, exactly as received.")
@output_options
@click.pass_obj
def quarantine_show(app, quarantine_id, raw):
    """One quarantined input with its reason and raw text (`--raw`: the bytes only, to
    save, fix and `retry --file`)."""
    from deskctl.services import quarantine as service

    with app.read() as session:
        _supervisor(app, session, "ingest quarantine show")
        row = service.get(session, quarantine_id)
        if raw:
            out = click.open_file("-", "wb")
            out.write(row.raw or b"")
            out.flush()
            return
        record = service.record(row, raw=True)
    from deskctl.output import Column

    emit(app, [record], [*_quarantine_columns(), Column("raw")])


@quarantine.command("retry")
@click.argument("ids", type=int, nargs=-1, required=True, metavar="ID...")
@click.option("--file", "file_", type=click.Path(exists=True, dir_okay=False, allow_dash=True), metavar="F",
              help="Use these (fixed) bytes instead of the stored ones (one ID only).")
@click.option("--group", "group_name", metavar="G", help="Group for new conversations (email).")
@output_options
@click.pass_obj
def quarantine_retry(app, ids, file_, group_name):
    """Feed held inputs through the ingest again (after fixing the cause). A success
    marks the entry `retried`; a failure keeps it held with the new reason (exit 65)."""
    from deskctl.errors import UsageError
    from deskctl.services import quarantine as service

    if file_ is not None and len(ids) != 1:
        raise UsageError("--file replaces the bytes of one entry: give exactly one ID")
    replacement = _read_input(file_) if file_ is not None else None
    group_id = _group_id(app, group_name)
    with app.read() as session:
        _supervisor(app, session, "ingest quarantine retry")
        service.get_many(session, list(ids), held_only=True)  # all exist and are held, else nothing happens
    counts: dict[str, int] = {}

    def results():
        for qid in ids:
            with app.transaction() as session:
                result = service_retry(session, qid, replacement, group_id)
            counts[result["action"]] = counts.get(result["action"], 0) + 1
            yield result

    def service_retry(session, qid, data, gid):
        from deskctl.services import ingest_jsonl
        from deskctl.services.ingest_email import ingest_message

        row = service.get(session, qid)
        raw = data if data is not None else row.raw
        now = app.now()
        if row.source == "email":
            result = ingest_message(session, raw, now=now, settings=app.settings, group_id=gid,
                                    filename=row.filename, hold=False)
        else:
            [result] = ingest_jsonl.ingest_batch(session, [(row.line_no or 0, raw)], now=now,
                                                 settings=app.settings, filename=row.filename, hold=False)
        if result["action"] == "quarantined":
            service.mark(session, qid, status="held", reason=result["reason"])
            from deskctl.output import warn

            warn(f"#{qid} still unusable: {result['reason']}")
        else:
            service.mark(session, qid, status="retried")
            if data is not None:
                row.raw = data
        return {"quarantine_id": qid, "source": row.source, **{k: v for k, v in result.items()
                                                              if k != "quarantine_id"}}

    from deskctl.output import Column

    emit(app, results(), [Column("quarantine_id", "int"), Column("source"), Column("id", "int"),
                          Column("action"), Column("reason")], id_key="quarantine_id")
    _finish(counts, "entry")


@quarantine.command("drop")
@click.argument("ids", type=int, nargs=-1, required=True, metavar="ID...")
@output_options
@click.pass_obj
def quarantine_drop(app, ids):
    """Give up on held inputs: marked `dropped` (the bytes stay for the record)."""
    from deskctl.output import notice
    from deskctl.services import quarantine as service

    with app.transaction() as session:
        _supervisor(app, session, "ingest quarantine drop")
        records = service.drop(session, list(ids))
    emit(app, records, _quarantine_columns())
    notice(f"dropped {len(records)} quarantine entr{'y' if len(records) == 1 else 'ies'}")
