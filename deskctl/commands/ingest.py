"""`deskctl ingest email|jsonl` and `deskctl ingest quarantine ...` (SPEC §4, §7).

Email runs one transaction per message (an mbox is not all-or-nothing: every message
that could be stored is kept even when another one is quarantined or the database
goes away mid-way; a rerun skips what is already in as `duplicate`). JSON lines are
committed in batches. Exit 65 when anything was quarantined, 75 when the database is
unreachable or locked (the root maps OperationalError), so an MTA retries later.

The imports of the services stay inside the functions: `ingest email -` is the MTA's
gateway, and its spool mode (SPEC §11) must load no database code.
"""

from __future__ import annotations

from contextlib import contextmanager

import click

from deskctl.clitypes import CommaChoice
from deskctl.commands._options import LIMIT, emit, output_options
from deskctl.vocab import QUARANTINE_STATUSES

JSONL_BATCH = 1000


def _email_columns():
    from deskctl.output import Column

    return [Column("message_id"), Column("id", "int"), Column("action"), Column("quarantine_id", "int"),
            Column("reason")]


def _jsonl_columns():
    from deskctl.output import Column

    return [Column("line", "int"), Column("id", "int"), Column("action"), Column("external_id"),
            Column("quarantine_id", "int"), Column("reason")]


class _Gateway(click.Command):
    """A command a mail server pipes into (SPEC §9 "Ingest is an MTA gateway"): it exits
    only 0, 65 (this input is bad and is quarantined) or 75 (anything else: retry
    later). A usage error counts as "anything else" too: a typo in the MTA's pipe
    command (a bad --group) must defer the mail until someone fixes it, not bounce it.
    The cause still goes to stderr, which the mail server logs."""

    def parse_args(self, ctx, args):
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            raise _retry_later(f"usage error: {exc.format_message()}") from exc

    def invoke(self, ctx):
        from deskctl.errors import DataError, UsageError

        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, DataError, BrokenPipeError):
            raise
        except click.ClickException as exc:
            name = "usage error: " if isinstance(exc, (click.UsageError, UsageError)) else ""
            raise _retry_later(name + exc.format_message()) from exc
        except (click.Abort, KeyboardInterrupt) as exc:
            raise _retry_later("interrupted") from exc
        except Exception as exc:  # noqa: BLE001 - whatever it is, the mail must be retried
            from deskctl.cli import _translate

            translated = _translate(exc, ctx)
            if translated is not None:
                raise _retry_later(translated.format_message()) from exc
            if ctx.obj is not None and ctx.obj.verbose:
                import traceback

                traceback.print_exc()
            detail = str(exc).splitlines()[0] if str(exc) else ""
            raise _retry_later(f"internal error: {type(exc).__name__}: {detail} (rerun with -v for details)") from exc


def _retry_later(message: str):
    from deskctl.errors import TempFail

    return TempFail(f"{message} [exit 75: the mail server keeps the input and retries]")


@click.group()
def ingest():
    """Bring messages in: email (RFC 5322, mbox, Maildir) and JSON lines."""


@contextmanager
def _ingest_transaction(app):
    """One ingest transaction, taking its turn (maildir.take_ingest_turn)."""
    from deskctl.services.inbound.maildir import take_ingest_turn

    with app.transaction() as session:
        take_ingest_turn(session)
        yield session


def _read_input(path: str) -> bytes:
    stream = click.open_file(path, "rb")
    try:
        return stream.read()
    finally:
        if path != "-":
            stream.close()


def _email_sources(settings, file_, mbox, maildir, new_only):
    """(raw bytes or intake.Spilled, origin, Maildir file or None) for every message to
    ingest, read lazily and in bounded memory."""
    import os

    from deskctl.services.inbound import intake
    from deskctl.term import progress

    if file_ is not None:
        stream = click.open_file(file_, "rb")
        try:
            yield intake.read_one(stream, settings), None if file_ == "-" else os.path.basename(file_), None
        finally:
            if file_ != "-":
                stream.close()
    if mbox is not None:
        stream = click.open_file(mbox, "rb")
        name = "stdin" if mbox == "-" else os.path.basename(mbox)
        try:
            messages = intake.mbox_messages(stream, settings)
            for n, raw in enumerate(progress(messages, label="ingesting mbox"), 1):
                yield raw, f"{name}#{n}", None
        finally:
            if mbox != "-":
                stream.close()
    if maildir is not None:
        from deskctl.services.inbound.maildir import maildir_messages

        files = intake.maildir_files(maildir, new_only=new_only)
        yield from maildir_messages(progress(files, length=len(files), label="ingesting Maildir"), settings,
                                    move=new_only)


@ingest.command("email", cls=_Gateway)
@click.argument("file_", metavar="[FILE|-]", required=False)
@click.option("--mbox", metavar="F", type=click.Path(allow_dash=True, dir_okay=False),
              help="An mbox file of many messages (`-`: read it from stdin).")
@click.option("--maildir", metavar="D", type=click.Path(exists=True, file_okay=False),
              help="A Maildir (cur/ and new/ are read, nothing is moved; see --move).")
@click.option("--move", is_flag=True,
              help="With --maildir: read new/ only, and move each stored or quarantined message to cur/ "
                   "with the seen flag once committed (for cron).")
@click.option("--group", "group_name", metavar="G", help="Group (queue) for new conversations.")
@output_options
@click.pass_obj
def email(app, file_, mbox, maildir, move, group_name):
    """Ingest RFC 5322 messages: one FILE, `-` for one message on stdin (an MTA pipe),
    --mbox F or --maildir D.

    Prints one result per message (message_id, id, action). Exit 65 if any message was
    quarantined (the others are kept); any other failure exits 75 (temporary: the mail
    server retries), never a code that would bounce the mail.

    With `mail: {maildir: D, spool: true}` in config, `-` only writes the message into
    D/new (exit 0, or 75 if it cannot) and the mail-poll job stores it."""
    import os

    from deskctl.errors import UsageError

    if (file_ is not None) + (mbox is not None) + (maildir is not None) != 1:
        raise UsageError("give exactly one of FILE, - (stdin), --mbox F or --maildir D")
    if move and maildir is None:
        raise UsageError("--move works with --maildir only")
    if mbox is not None and mbox != "-" and not os.path.isfile(mbox):
        raise UsageError(f"--mbox: no such file: {mbox}")
    if file_ is not None and file_ != "-" and not os.path.isfile(file_):
        raise UsageError(f"no such file: {file_}")
    if file_ == "-" and app.settings.mail.spool:
        return _spool(app, group_name)
    group_id = _group_id(app, group_name)
    counts: dict[str, int] = {}
    sources = _email_sources(app.settings, file_, mbox, maildir, new_only=move)
    results = _ingest_emails(app, sources, group_id, counts)
    emit(app, _stored_first(_with_ids(app, results)), _email_columns(), id_key="id")
    _finish(counts, "message")


def _spool(app, group_name) -> None:
    """Spool mode (SPEC §11): the message goes into mail.maildir/new, nothing else; no
    database code is loaded. Prints nothing on stdout (there is no result yet)."""
    from deskctl.errors import UsageError
    from deskctl.services.inbound import spool

    maildir = app.settings.mail.maildir
    if group_name:
        # The spooled file keeps only the mail; mail-poll could not know the group.
        raise UsageError("--group cannot be used in spool mode (mail.spool: true): mail-poll stores spooled "
                         "mail without a group; drop --group from the pipe command, or set mail.spool: false")
    stream = click.open_file("-", "rb")
    try:
        path = spool.spool(stream, maildir)
    except OSError as exc:
        raise _retry_later(f"cannot write into the spool {maildir}: {exc.strerror or exc}") from exc
    click.echo(f"spooled 1 message as {path} (the mail-poll job stores it)", err=True)


def _stored_first(rows):
    """Nothing reaches stdout before the first result is committed: a command that fails
    before that prints nothing at all, not even a header (SPEC §9)."""
    import itertools

    rows = iter(rows)
    for first in rows:
        return itertools.chain([first], rows)
    return iter(())


def _with_ids(app, results):
    """`--format ids` lists conversations: a quarantined input has none, so it is left
    out there (it is still counted, reported on stderr and in the exit code)."""
    if app.output_format() != "ids":
        return results
    return (r for r in results if r["id"] is not None)


def _group_id(app, group_name):
    if not group_name:
        return None
    from deskctl.services.conversations.selection import group_id_by_name

    with app.read() as session:
        return group_id_by_name(session, group_name)


def _ingest_emails(app, sources, group_id, counts):
    """The batch loop of services.inbound.maildir (shared with the mail-poll job): each
    result comes once its batch is committed (a result on stdout is a stored fact)."""
    from deskctl.output import warn
    from deskctl.services.inbound.maildir import ingest_emails

    def quarantined(result, origin):
        where = result["message_id"] or origin or "stdin"
        warn(f"quarantined {where} as #{result['quarantine_id']}: {result['reason']}")

    with app.transaction() as session:
        for result in ingest_emails(session, sources, now=app.now, settings=app.settings, group_id=group_id,
                                    on_quarantine=quarantined):
            counts[result["action"]] = counts.get(result["action"], 0) + 1
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


@ingest.command("jsonl", cls=_Gateway)
@click.argument("file_", metavar="FILE|-")
@output_options
@click.pass_obj
def jsonl(app, file_):
    """Ingest chat, SMS, social and web messages, one JSON object a line (SPEC §7).

    Prints one result per line (line, id, action). Bad lines are quarantined with their
    line number and the good ones kept; exit 65 if any line was bad, 75 for any other
    failure (temporary: retry)."""
    import os

    from deskctl.errors import UsageError

    if file_ != "-" and not os.path.isfile(file_):
        raise UsageError(f"no such file: {file_}")
    counts: dict[str, int] = {}
    emit(app, _stored_first(_with_ids(app, _ingest_lines(app, file_, counts))), _jsonl_columns(), id_key="id")
    _finish(counts, "line")


def _ingest_lines(app, file_, counts):
    import os

    from deskctl.output import warn
    from deskctl.services.inbound import intake
    from deskctl.services.inbound import jsonl as ingest_jsonl
    settings = app.settings
    origin = None if file_ == "-" else os.path.basename(file_)
    stream = click.open_file(file_, "rb")
    try:
        for batch in ingest_jsonl.batches(intake.jsonl_lines(stream, settings), JSONL_BATCH):
            with _ingest_transaction(app) as session:
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
    from deskctl.services.conversations.permissions import require_supervisor

    require_supervisor(app.actor(session), what)


@quarantine.command("list")
@click.option("--status", "status", default="held", show_default=True, metavar="S[,S]",
              type=CommaChoice(QUARANTINE_STATUSES, also=("all",)),
              help="Only these: " + ", ".join(QUARANTINE_STATUSES) + " (comma list), or all.")
@click.option("--source", type=click.Choice(["email", "jsonl"]), help="Only this source.")
@click.option("--limit", type=LIMIT, help="At most N entries.")
@output_options
@click.pass_obj
def quarantine_list(app, status, source, limit):
    """Quarantined inputs, oldest first (default: the ones still held)."""
    from deskctl.errors import UsageError
    from deskctl.output import notice
    from deskctl.services.inbound import quarantine as service

    statuses = QUARANTINE_STATUSES if status == "all" else tuple(s.strip() for s in status.split(",") if s.strip())
    if not statuses:
        raise UsageError("--status: empty value")
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
    from deskctl.services.inbound import quarantine as service

    with app.read() as session:
        _supervisor(app, session, "ingest quarantine show")
        row = service.get(session, quarantine_id)
        if raw:
            out = click.open_file("-", "wb")
            service.write_raw(row, out)
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
    from deskctl.services.inbound import quarantine as service

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
            with _ingest_transaction(app) as session:
                result = service_retry(session, qid, replacement, group_id)
            counts[result["action"]] = counts.get(result["action"], 0) + 1
            yield result

    def service_retry(session, qid, data, gid):
        from deskctl.services.inbound import jsonl as ingest_jsonl
        from deskctl.services.inbound.email import ingest_message

        row = service.get(session, qid)
        raw = data if data is not None else service.raw_input(row, app.settings)
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
    from deskctl.services.inbound import quarantine as service

    with app.transaction() as session:
        _supervisor(app, session, "ingest quarantine drop")
        records = service.drop(session, list(ids))
    emit(app, records, _quarantine_columns())
    notice(f"dropped {len(records)} quarantine entr{'y' if len(records) == 1 else 'ies'}")
