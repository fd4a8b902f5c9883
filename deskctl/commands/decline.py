"""`deskctl decline ID`: refuse a conversation offered to you (SPEC §10)."""

from __future__ import annotations

import click

from deskctl.commands._options import emit_change, output_options
from deskctl.commands.lifecycle import change_columns
from deskctl.services.conversations import routing
from deskctl.services.conversations.selection import parse_conversation_id


@click.command()
@click.argument("conversation_id", metavar="ID")
@output_options
@click.pass_obj
def decline(app, conversation_id):
    """Refuse an offer: the conversation goes to the next available agent, never back to you."""
    cid = parse_conversation_id(conversation_id)
    emit_change(app, change_columns(),
                lambda session, actor: [routing.decline(session, actor, cid, now=app.now(), settings=app.settings)],
                f"declined #{cid}")
