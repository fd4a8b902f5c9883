"""`deskctl show`: one conversation's thread."""

from __future__ import annotations

import click

from deskctl import output
from deskctl.commands._options import emit, output_options
from deskctl.services.conversations import read_state
from deskctl.services.conversations.selection import parse_conversation_id
from deskctl.services.views.thread_view import thread_record


@click.command()
@click.argument("conversation_id", metavar="ID")
@click.option("--audit", is_flag=True, help="Interleave every audit event.")
@click.option("--no-notes", is_flag=True, help="Leave internal notes out (what the contact saw).")
@output_options
@click.pass_obj
def show(app, conversation_id, audit, no_notes):
    """Show a conversation: header, messages and notes in order."""
    cid = parse_conversation_id(conversation_id)
    with app.read() as session:
        actor = app.actor(session)
        record = thread_record(session, cid, notes=not no_notes, audit=audit)
    # The thread view on a terminal and in a pipe (`show 42 | less`); records only when a
    # format is asked for (SPEC §9).
    if not app.format_chosen or app.output_format() == "table":
        output.render_thread({**record, "_now": app.now()}, tz=app.settings.timezone)
        # The thread view is reading it (SPEC §10); machine formats are not.
        with app.transaction() as session:
            read_state.mark_read(session, actor.id, cid, now=app.now())
    else:
        emit(app, [record], output.conversation_columns(True))
