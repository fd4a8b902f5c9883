"""`deskctl claim`: take responsibility for conversations."""

from __future__ import annotations

import click

from deskctl.commands._options import bulk_options, output_options, targets_argument
from deskctl.commands.lifecycle import run_bulk
from deskctl.services.conversations import lifecycle


@click.command()
@targets_argument
@click.option("--steal", is_flag=True, help="Take it even if someone else holds it (supervisor or admin).")
@bulk_options
@output_options
@click.pass_obj
def claim(app, targets, steal, dry_run, yes):
    """Take responsibility: assignee = you, new → open.

    A conversation claimed by someone else is a conflict (exit 4) unless --steal, which
    needs the supervisor or admin role (exit 5 otherwise) and is recorded as `stolen`."""
    run_bulk(app, targets, verb="claim", past="claimed", dry_run=dry_run, yes=yes,
             action=lambda session, actor: lifecycle.claim(
                 session, actor, targets, steal=steal, now=app.now(), settings=app.settings, dry_run=dry_run))
