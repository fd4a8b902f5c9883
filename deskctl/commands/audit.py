"""`deskctl audit [ID] [--since WHEN] [--until WHEN] [--actor H|system] [--kind K[,K]] [--limit N]`."""

from __future__ import annotations

import click

from deskctl import output
from deskctl.clitypes import CommaChoice
from deskctl.commands._options import LIMIT, _csv_values, date_bound_option, emit, output_options
from deskctl.output import Column
from deskctl.services.conversations.selection import parse_conversation_id
from deskctl.services.views import audit_trail as audit_service
from deskctl.vocab import EVENT_KINDS


def _columns():
    return [Column("id", "int"), Column("conversation_id", "int"), Column("at", "datetime"), Column("actor"),
            Column("kind"), Column("data")]


def _distinct_conversations(rows):
    """For --format ids: each conversation id once, in order of its first matching event."""
    seen: set[int] = set()
    for row in rows:
        cid = row["conversation_id"]
        if cid is not None and cid not in seen:
            seen.add(cid)
            yield row


@click.command()
@click.argument("conversation_id", metavar="[ID]", required=False)
@click.option("--since", metavar="WHEN", help="Events at or after (date, date-time, or 3d = 3 days ago).")
@click.option("--until", metavar="WHEN", help="Events before.")
@click.option("--actor", "actors", multiple=True, metavar="H|system",
              help="Done by this user handle, or `system` (jobs, ingest); comma list or repeated.")
@click.option("--kind", "kinds", multiple=True, type=CommaChoice(EVENT_KINDS), metavar="K[,K]",
              help="Only these event kinds (comma list or repeated): " + ", ".join(EVENT_KINDS) + ".")
@click.option("--limit", type=LIMIT, help="Only the most recent N matching events.")
@output_options
@click.pass_obj
def audit(app, conversation_id, since, until, actors, kinds, limit):
    """The audit trail, oldest first: every event, or those of conversation ID.

    `--format ids` prints each conversation id once (those that have matching events)."""
    cid = parse_conversation_id(conversation_id) if conversation_id is not None else None
    kind_list = audit_service.parse_kinds(kinds)

    since_at, until_at = date_bound_option(app, since, "--since"), date_bound_option(app, until, "--until")
    with app.read() as session:
        app.actor(session)
        stmt = audit_service.events_select(session, conversation_id=cid, since=since_at, until=until_at,
                                           actors=_csv_values(actors), kinds=kind_list, limit=limit)
        rows = audit_service.event_records(session, stmt)
        if app.output_format() == "ids":
            count = emit(app, _distinct_conversations(rows), _columns(), id_key="conversation_id")
        else:
            count = emit(app, rows, _columns())
    if count == 0:
        output.notice("no events matched")
