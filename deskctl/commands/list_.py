"""`deskctl list`: conversations matching filters, streamed in any format."""

from __future__ import annotations

import dataclasses

import click

from deskctl import output
from deskctl.commands._options import LIMIT, build_filter, emit, filter_options, output_options
from deskctl.services.conversations.selection import select_conversations
from deskctl.services.views.conversation_records import conversation_records


@click.command("list")
@filter_options
@click.option("--sort", metavar="KEYS", help="id (default), created, updated, priority, status, sla, "
              "boomerang, channel, subject; comma-separated, '-' for descending.")
@click.option("--limit", type=LIMIT, help="At most N conversations.")
@click.option("--unread", is_flag=True, help="With inbound messages you have not read (`show` marks read).")
@output_options
@click.pass_obj
def list_(app, sort, limit, unread, **params):
    """List conversations."""

    flt = dataclasses.replace(build_filter(app, params), unread=unread)
    with app.read() as session:
        actor = app.actor(session)
        stmt = select_conversations(session, flt, actor_id=actor.id, sort=sort, limit=limit,
                                    channels=app.settings.channels)
        fmt = app.output_format()
        count = emit(app, conversation_records(session, stmt), output.conversation_columns(fmt != "table"))
    if count == 0:
        output.notice("no conversations matched")
