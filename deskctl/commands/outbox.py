"""`deskctl outbox list|show|retry|drop`: what waits to leave the desk (SPEC §11)."""

from __future__ import annotations

import click

from deskctl.clitypes import CommaChoice
from deskctl.commands import _complete
from deskctl.commands._options import LIMIT, _csv_values, _not_empty, emit, output_options
from deskctl.vocab import OUTBOX_STATUSES


def _columns(detail: bool = False):
    from deskctl.output import Column

    columns = [Column("id", "int"), Column("conversation_id", "int"), Column("channel"), Column("to"),
               Column("status"), Column("attempts", "int"), Column("next_attempt_at", "datetime"),
               Column("last_error"), Column("created_at", "datetime"), Column("sent_at", "datetime"),
               Column("kind"), Column("subject")]
    if detail:
        columns += [Column("text"), Column("payload"), Column("dedupe_key")]
    return columns


def _ids(values) -> list[int]:
    from deskctl.errors import UsageError

    out = []
    for value in values:
        try:
            number = int(value)
        except ValueError:
            number = 0
        if number <= 0 or number >= 2**63:
            raise UsageError(f"invalid outbox id {value!r} (a positive number, as `outbox list` shows)")
        out.append(number)
    return out


@click.group()
def outbox():
    """Mail, notifications and channel replies waiting to leave the desk (supervisor or admin)."""


@outbox.command("list")
@click.option("--status", multiple=True, callback=_not_empty, type=CommaChoice(OUTBOX_STATUSES),
              help="Status (comma list or repeated).")
@click.option("--channel", multiple=True, callback=_not_empty, shell_complete=_complete.channels,
              help="email or a channel name (comma list or repeated).")
@click.option("--limit", type=LIMIT, default=None, help="At most N rows (newest first).")
@output_options
@click.pass_obj
def list_(app, status, channel, limit):
    """Outbox rows, newest first: channel, recipient, status, attempts, next try, last error."""
    from deskctl.output import notice
    from deskctl.services.outbound import outbox as service

    with app.read() as session:
        rows = service.list_records(session, app.actor(session), settings=app.settings,
                                    statuses=_csv_values(status), channels=_csv_values(channel), limit=limit)
    if emit(app, rows, _columns()) == 0:
        notice("no outbox rows match")


@outbox.command("show")
@click.argument("outbox_id", metavar="ID")
@output_options
@click.pass_obj
def show(app, outbox_id):
    """One row with its text and, for a channel reply, the JSON its connector gets."""
    from deskctl.services.outbound import outbox as service

    [number] = _ids([outbox_id])
    with app.read() as session:
        row = service.show(session, app.actor(session), number)
    emit(app, [row], _columns(detail=True))


@outbox.command("retry")
@click.argument("outbox_ids", nargs=-1, metavar="[ID]...")
@click.option("--failed", is_flag=True, help="Every failed row.")
@output_options
@click.pass_obj
def retry(app, outbox_ids, failed):
    """Try rows again at the next `notify` run: a failed row starts over, a waiting one
    skips the rest of its backoff. Atomic: one bad id and nothing changes."""
    from deskctl.output import notice
    from deskctl.services.outbound import outbox as service

    ids = _ids(outbox_ids)
    with app.transaction() as session:
        rows = service.retry(session, app.actor(session), ids, failed=failed, now=app.now())
    emit(app, rows, _columns())
    if not rows:
        notice("no failed rows to retry")
    else:
        notice(f"retrying {len(rows)} outbox row(s) at the next notify run (or now: deskctl jobs run notify)")


@outbox.command("drop")
@click.argument("outbox_ids", nargs=-1, required=True, metavar="ID...")
@output_options
@click.pass_obj
def drop(app, outbox_ids):
    """Delete rows for good; prints them as they were. Atomic: one bad id and nothing changes."""
    from deskctl.output import notice
    from deskctl.services.outbound import outbox as service

    ids = _ids(outbox_ids)
    with app.transaction() as session:
        rows = service.drop(session, app.actor(session), ids)
    emit(app, rows, _columns())
    notice(f"dropped {len(rows)} outbox row(s)")
