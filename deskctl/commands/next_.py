"""`deskctl next`: pull the most urgent waiting conversation of your groups."""

from __future__ import annotations

import click

from deskctl.commands import _complete
from deskctl.commands._options import emit, output_options
from deskctl.commands.lifecycle import change_columns
from deskctl.output import notice
from deskctl.services.conversations import lifecycle


@click.command(name="next")
@click.option("--group", "group_name", metavar="G", shell_complete=_complete.groups, help="Only this group (default: all of yours).")
@click.option("-n", "--dry-run", is_flag=True, help="Show which one you would get; claim nothing.")
@output_options
@click.pass_obj
def next_(app, group_name, dry_run):
    """Claim the most urgent new, unassigned conversation of your groups: highest
    priority first, then the nearest SLA deadline, then the oldest.

    You must be `available` (exit 4 otherwise); exit 3 when nothing is waiting. Two
    agents running `next` at the same moment never get the same conversation."""
    with app.transaction(dry_run=dry_run) as session:
        records = lifecycle.next_(session, app.actor(session), group=group_name, now=app.now(),
                                  settings=app.settings, dry_run=dry_run)
    emit(app, records, change_columns())
    notice(("would claim" if dry_run else "claimed") + f" #{records[0]['id']}"
           + (" (dry run: nothing changed)" if dry_run else ""))
