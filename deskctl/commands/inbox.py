"""`deskctl inbox [--user H]`: a user's working set, streamed like `list`."""

from __future__ import annotations

import click

from deskctl import output
from deskctl.commands import _complete
from deskctl.commands._options import LIMIT, emit, output_options
from deskctl.services.conversations.read_state import with_unread
from deskctl.services.conversations.selection import user_id_by_handle
from deskctl.services.conversations.watchers import inbox_select
from deskctl.services.views.conversation_records import conversation_records


@click.command()
@click.option("--user", "handle", metavar="H", shell_complete=_complete.users, help="Another user's inbox (supervisor or admin).")
@click.option("--sort", metavar="KEYS", help="Default -priority,created (most urgent, then oldest first); "
              "same keys as `list --sort`.")
@click.option("--limit", type=LIMIT, help="At most N conversations.")
@output_options
@click.pass_obj
def inbox(app, handle, sort, limit):
    """Conversations assigned to you (not closed) plus those you watch (not closed)."""
    with app.read() as session:
        actor = app.actor(session)
        stmt = inbox_select(session, actor, handle, sort=sort, limit=limit)
        user_id = actor.id if handle in (None, actor.handle) else user_id_by_handle(session, handle)
        records = with_unread(session, user_id, conversation_records(session, stmt))
        count = emit(app, records, output.conversation_columns(app.output_format() != "table")
                     + [output.Column("unread", "bool")])
    if count == 0:
        output.notice(f"the inbox of {handle or app.actor_handle} is empty")
