"""`deskctl decline ID`: refuse a conversation offered to you (SPEC §10)."""

from __future__ import annotations

import click

from deskctl.commands._options import emit, output_options
from deskctl.commands.lifecycle import change_columns
from deskctl.output import notice
from deskctl.services.conversations import routing
from deskctl.services.conversations.selection import parse_conversation_id


@click.command()
@click.argument("conversation_id", metavar="ID")
@output_options
@click.pass_obj
def decline(app, conversation_id):
    """Refuse an offer: the conversation goes to the next available agent, never back to you."""
    cid = parse_conversation_id(conversation_id)
    with app.transaction() as session:
        record = routing.decline(session, app.actor(session), cid, now=app.now(), settings=app.settings)
    emit(app, [record], change_columns())
    notice(f"declined #{cid}")
