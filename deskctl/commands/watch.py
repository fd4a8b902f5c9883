"""`deskctl watch ID...` / `deskctl unwatch ID...`: follow a conversation or stop."""

from __future__ import annotations

import click

from deskctl.commands._options import emit, output_options
from deskctl.errors import UsageError
from deskctl.output import Column, notice
from deskctl.services.conversations import watchers
from deskctl.services.conversations.selection import parse_conversation_id, read_id_lines


def _columns():
    return [Column("id", "int"), Column("user"), Column("watching", "bool"), Column("changed", "bool")]


def _run(app, conversation_ids, dry_run, verb):
    ids: list[int] = []
    for arg in conversation_ids:
        if arg == "-":
            ids.extend(read_id_lines(click.open_file("-", "r")))
        else:
            ids.append(parse_conversation_id(arg))
    if not ids:
        raise UsageError("no conversation ids given")
    service = watchers.watch if verb == "watch" else watchers.unwatch
    with app.transaction(dry_run=dry_run) as session:
        records = service(session, app.actor(session), ids, now=app.now(), settings=app.settings)
    emit(app, records, _columns())
    unchanged = [f"#{r['id']}" for r in records if not r["changed"]]
    if unchanged:
        state = "already watching" if verb == "watch" else "was not watching"
        notice(f"{state} {', '.join(unchanged[:20])}{' ...' if len(unchanged) > 20 else ''}; nothing changed there")
    changed = sum(r["changed"] for r in records)
    if changed:
        done = {"watch": "watching", "unwatch": "stopped watching"}[verb]
        notice(f"{'would be ' if dry_run else ''}{done} {changed} conversation{'s' if changed != 1 else ''}")


_ids = click.argument("conversation_ids", nargs=-1, required=True, metavar="ID...|-")
_dry = click.option("--dry-run", "-n", is_flag=True, help="Show what would change; change nothing.")


@click.command()
@_ids
@_dry
@output_options
@click.pass_obj
def watch(app, conversation_ids, dry_run):
    """Follow conversations: they stay in your inbox and you are notified of activity.
    Watching one you already watch is not an error (exit 0, notice on stderr)."""
    _run(app, conversation_ids, dry_run, "watch")


@click.command()
@_ids
@_dry
@output_options
@click.pass_obj
def unwatch(app, conversation_ids, dry_run):
    """Stop following conversations. Unwatching one you do not watch is not an error."""
    _run(app, conversation_ids, dry_run, "unwatch")
