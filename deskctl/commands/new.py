"""`deskctl new --channel C --contact REF [--subject S] [--group G] [--priority P] TEXT`."""

from __future__ import annotations

import click

from deskctl import output
from deskctl.commands import _complete
from deskctl.commands._options import emit, output_options
from deskctl.errors import UsageError
from deskctl.services.conversations.read_state import mark_read
from deskctl.services.inbound import new_conversation as creation
from deskctl.services.views.conversation_records import records_for_ids
from deskctl.vocab import DEFAULT_PRIORITY, PRIORITIES


@click.command()
@click.argument("text", required=False)
@click.option("--channel", required=True, metavar="C", shell_complete=_complete.channels,
              help="A channel of the desk (config `channels`).")
@click.option("--contact", "contact_ref", required=True, metavar="REF",
              help="Contact id or email; an unknown email creates the contact.")
@click.option("--name", "contact_name", metavar="N", help="Name for the contact when --contact creates it.")
@click.option("--subject", metavar="S", help="Subject (default: the first line of TEXT).")
@click.option("--group", metavar="G", shell_complete=_complete.groups, help="Group (queue) to put it in.")
@click.option("--priority", type=click.Choice(PRIORITIES), help=f"Priority (default {DEFAULT_PRIORITY}).")
@click.option("--outbound", is_flag=True,
              help="TEXT is your first message to the contact, sent like `reply` (email: through the "
                   "outbox). Default: TEXT is the contact's request as you took it down (inbound).")
@click.option("--file", "file_", type=click.File("r", encoding="utf-8"), metavar="F",
              help="Read TEXT from this file (`-` as TEXT reads stdin).")
@click.option("--dry-run", "-n", is_flag=True, help="Show the conversation that would be created; create nothing.")
@output_options
@click.pass_obj
def new(app, text, channel, contact_ref, contact_name, subject, group, priority, outbound, file_, dry_run):
    """Create a conversation yourself (phone call, walk-in, outbound email).

    It starts `new` and unassigned (claim it to work on it). By default TEXT is an
    inbound message from the contact (what they asked for); with --outbound it is
    sent to them. `--format ids` prints just the new id, for scripts."""
    if (text is not None) == (file_ is not None):
        raise UsageError("give the message as TEXT, --file F or - (exactly one)")
    if file_ is not None:
        text = file_.read()
    elif text == "-":
        text = click.open_file("-", "r").read()
    with app.transaction(dry_run=dry_run) as session:
        cid, contact, created = creation.create(
            session, app.actor(session), channel=channel, contact_ref=contact_ref, text=text, now=app.now(),
            settings=app.settings, subject=subject, group=group, priority=priority, outbound=outbound,
            contact_name=contact_name)
        # The agent wrote down what the contact said: read by them (SPEC §10), not by others.

        mark_read(session, app.actor(session).id, cid, now=app.now())
        records = records_for_ids(session, [cid])
    emit(app, records, output.conversation_columns(app.output_format() != "table"))
    if created:
        output.notice(f"{'would create' if dry_run else 'created'} contact #{contact['id']} <{contact['email']}>")
    output.notice(f"{'would create' if dry_run else 'created'} conversation #{cid}")
