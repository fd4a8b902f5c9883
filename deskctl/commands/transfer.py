"""`deskctl transfer`: hand conversations to a user or a group, with context."""

from __future__ import annotations

import functools

import click

from deskctl.commands import _complete
from deskctl.commands._options import bulk_options, output_options, targets_argument
from deskctl.commands.lifecycle import run_bulk
from deskctl.output import warn
from deskctl.services.conversations import lifecycle


def _from_option(func):
    """--from H: every not-closed conversation assigned to H (absence replacement)."""

    @click.option("--from", "from_user", metavar="H", shell_complete=_complete.users,
                  help="Every not-closed conversation assigned to H (with --limit: the oldest N).")
    @functools.wraps(func)
    def wrapper(*args, from_user, **kwargs):
        kwargs["_filter_extra"] = {"assigned_from": from_user} if from_user else {}
        return func(*args, **kwargs)

    return wrapper


@click.command()
@_from_option
@targets_argument
@click.option("--to", "to", required=True, metavar="REF", shell_complete=_complete.transfer_refs,
              help="user:HANDLE, group:NAME, or a bare name matching exactly one of them.")
@click.option("--message", metavar="TEXT", help="Internal note for the receiver, linked to the transfer.")
@click.option("--keep-informed/--no-keep-informed", default=True, show_default=True,
              help="Watch the conversations after handing them over.")
@click.option("--reason", metavar="R", help="Wrap-up reason recorded with the transfer.")
@bulk_options
@output_options
@click.pass_obj
def transfer(app, targets, to, message, keep_informed, reason, dry_run, yes):
    """Transfer conversations to a user or a group.

    To a group: assignee cleared, status new. To a user: assigned to them, status new,
    and they are notified. No claim needed first (unless rules.transfer_requires_claim).

    \b
    Examples:
      deskctl transfer 12 --to group:billing --message "Refund over 500 EUR"
      deskctl transfer --from alice --to group:support          # alice is away
      deskctl transfer --from alice --to user:bob --limit 10     # rebalance the oldest 10
      deskctl list --tag refund --format ids | deskctl transfer - --to billing
    """
    run_bulk(app, targets, verb="transfer", past="transferred", dry_run=dry_run, yes=yes,
             action=lambda session, actor: lifecycle.transfer(
                 session, actor, targets, to, message=message, keep_informed=keep_informed, reason=reason,
                 now=app.now(), settings=app.settings, dry_run=dry_run, warn=warn))
