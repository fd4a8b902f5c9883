"""`deskctl release/pending/resolve/close/qualify/reopen/merge`, and the plumbing every
bulk verb shares (claim and transfer use it too): confirmation on a terminal, the
transaction, the change records on stdout, the one-line summary on stderr."""

from __future__ import annotations

import functools

import click

from deskctl import term
from deskctl.commands import _options
from deskctl.commands._options import LIMIT, bulk_options, emit, output_options, targets_argument
from deskctl.errors import UsageError
from deskctl.output import Column, notice
from deskctl.services.conversations import lifecycle
from deskctl.services.conversations.lifecycle import PROGRESS, count_targets
from deskctl.services.conversations.selection import parse_conversation_id
from deskctl.timeparse import parse_when
from deskctl.vocab import CLOSE_STATUSES, PRIORITIES


def change_columns():
    return [Column("id", "int"), Column("status"), Column("assignee"), Column("group"),
            Column("previous_status"), Column("previous_assignee"), Column("previous_group")]


CONFIRM_ABOVE = 20


def _plural(n: int) -> str:
    return f"{n} conversation" + ("" if n == 1 else "s")


def run_bulk(app, targets, *, verb: str, past: str, dry_run: bool, yes: bool, action) -> int:
    """Confirm (terminal only, filter-selected, > 20), run `action(session, actor)` in one
    transaction (rolled back with --dry-run), print the records (streamed from the
    service's spool: lifecycle.ChangeRecords) and the summary. Returns how many."""
    if not targets.explicit and not yes and not dry_run and term.can_prompt():
        with app.read() as session:
            count = count_targets(session, app.actor(session), targets)
        if count > CONFIRM_ABOVE and not click.confirm(f"{verb} {_plural(count)}?", err=True, default=False):
            raise UsageError("cancelled: nothing changed")
    with term.Progress(verb) as progress, app.transaction(dry_run=dry_run) as session:
        session.info[PROGRESS] = progress
        records = action(session, app.actor(session))
    try:
        emit(app, records, change_columns())
    finally:
        records.close()
    count = len(records)
    if not count:
        notice("no conversations matched: nothing changed")
    elif dry_run:
        notice(f"would {verb} {_plural(count)} (dry run: nothing changed)")
    else:
        notice(f"{past} {_plural(count)}")
    return count


def _run_verb(app, targets, change, *, verb: str, past: str, dry_run: bool, yes: bool, **options) -> int:
    """`run_bulk` of a lifecycle service verb: `change(session, actor, targets, **options)`
    with the desk's clock and settings."""
    return run_bulk(app, targets, verb=verb, past=past, dry_run=dry_run, yes=yes,
                    action=lambda session, actor: change(session, actor, targets, now=app.now(),
                                                         settings=app.settings, dry_run=dry_run, **options))


def _plain_verb(name: str, past: str, change, doc: str):
    """A verb with TARGETS and no option of its own (release, reopen)."""
    @click.command(name, help=doc)
    @targets_argument
    @bulk_options
    @output_options
    @click.pass_obj
    def command(app, targets, dry_run, yes):
        _run_verb(app, targets, change, verb=name, past=past, dry_run=dry_run, yes=yes)

    return command


def when_option(name: str, help_text: str):
    return click.option(name, "until", metavar="WHEN", help=help_text)


def parse_until(app, value):
    if value is None:
        return None

    return parse_when(value, now=app.now(), tz=app.settings.timezone)


release = _plain_verb("release", "released", lifecycle.release,
                      "Give claimed conversations back to their group: assignee cleared, status new.")


@click.command()
@targets_argument
@when_option("--until", "Also set a boomerang: back to new at WHEN (30m, 2h, 3d, ISO date-time, "
                        "tomorrow, next-week).")
@click.option("--note", metavar="TEXT", help="The reminder of why it waits.")
@bulk_options
@output_options
@click.pass_obj
def pending(app, targets, until, note, dry_run, yes):
    """Status pending: wait for the contact's reply (and, with --until, a boomerang)."""
    when = parse_until(app, until)
    _run_verb(app, targets, lifecycle.pending, verb="put pending", past="put pending", dry_run=dry_run, yes=yes,
              until=when, note=note)


@click.command()
@targets_argument
@when_option("--until", "Also set a boomerang: back to new at WHEN.")
@bulk_options
@output_options
@click.pass_obj
def resolve(app, targets, until, dry_run, yes):
    """Status resolved: answered; a contact reply brings it back to new."""
    when = parse_until(app, until)
    _run_verb(app, targets, lifecycle.resolve, verb="resolve", past="resolved", dry_run=dry_run, yes=yes,
              until=when)


def targets_argument_without(*excluded: str):
    """TARGETS like `targets_argument`, minus the filter options whose names the verb
    uses for its own values (close --status/--tag, qualify --tag/--priority)."""
    kept = [(name, option) for name, option in zip(_options.FILTER_PARAMS, _options.FILTER_OPTIONS, strict=True)
            if name not in excluded]

    def decorator(func):
        @functools.wraps(func)
        def wrapper(*args, target_args, all_, limit, sort, **kwargs):
            app = click.get_current_context().obj
            params = {name: kwargs.pop(name) for name, _ in kept}
            kwargs["targets"] = _options.make_target_spec(app, target_args, params, all_=all_, limit=limit,
                                                          sort=sort)
            return func(*args, **kwargs)

        for _, option in reversed(kept):
            wrapper = option(wrapper)
        wrapper = click.option("--sort", metavar="KEYS",
                               help="Order for filters and --limit, e.g. created or -priority.")(wrapper)
        wrapper = click.option("--limit", type=LIMIT,
                               help="Act on at most N conversations (oldest first).")(wrapper)
        wrapper = click.option("--all", "all_", is_flag=True,
                               help="Act on every conversation (needed when no id or filter).")(wrapper)
        return click.argument("target_args", nargs=-1, metavar="[ID|-]...")(wrapper)

    return decorator


@click.command()
@targets_argument_without("status", "tag")
@click.option("--tag", "tags", multiple=True, metavar="T", help="Qualification tag (repeatable, or a comma list).")
@click.option("--reason", metavar="R", help="Contact reason.")
@click.option("--note", metavar="TEXT", help="Closing note (in the transcript, never a contact message).")
@click.option("--csat", type=click.IntRange(1, 5), help="Customer satisfaction, 1 to 5.")
@click.option("--status", "status", type=click.Choice(CLOSE_STATUSES), default="closed",
              show_default=True, help="pending/open end a chat session but keep the request going.")
@click.option("--transcript-to", metavar="EMAIL", help="Email the history (messages, never notes) here.")
@bulk_options
@output_options
@click.pass_obj
def close(app, targets, tags, reason, note, csat, status, transcript_to, dry_run, yes):
    """End conversations with their qualification.

    Here --status and --tag are the new values, not filters: to select by status or tag,
    pipe `deskctl list --status resolved --format ids | deskctl close -`."""
    _run_verb(app, targets, lifecycle.close, verb="close", past="closed", dry_run=dry_run, yes=yes,
              tags=tags, reason=reason, note=note, csat=csat, status=status, transcript_to=transcript_to)


@click.command()
@targets_argument_without("tag", "priority")
@click.option("--tag", "tags", multiple=True, metavar="T", help="Add this tag (repeatable).")
@click.option("--untag", "untags", multiple=True, metavar="T", help="Remove this tag (repeatable).")
@click.option("--reason", metavar="R", help="Contact reason.")
@click.option("--priority", "new_priority", type=click.Choice(PRIORITIES),
              help="Set the priority.")
@click.option("--note", metavar="TEXT", help="Closing note.")
@bulk_options
@output_options
@click.pass_obj
def qualify(app, targets, tags, untags, reason, new_priority, note, dry_run, yes):
    """Set or fix the qualification at any time, also after closing: tags, contact
    reason, priority, closing note.

    Here --tag and --priority are the new values, not filters (pipe ids from `list` to
    select by them)."""
    _run_verb(app, targets, lifecycle.qualify, verb="qualify", past="qualified", dry_run=dry_run, yes=yes,
              tags=tags, untags=untags, reason=reason, priority=new_priority, note=note)


reopen = _plain_verb("reopen", "reopened", lifecycle.reopen, "Back to new (from pending, resolved or closed).")


@click.command()
@click.argument("conversation_id", metavar="ID")
@click.option("--into", "into", required=True, metavar="ID2", help="The conversation that stays.")
@click.option("-n", "--dry-run", is_flag=True, help="Print what would change; change nothing.")
@output_options
@click.pass_obj
def merge(app, conversation_id, into, dry_run):
    """Merge a duplicate into ID2: its messages, notes and watchers move there, and it is
    closed with linked_to = ID2."""
    dup, survivor = parse_conversation_id(conversation_id), parse_conversation_id(into)
    with app.transaction(dry_run=dry_run) as session:
        records = lifecycle.merge(session, app.actor(session), dup, survivor, now=app.now(),
                                  settings=app.settings, dry_run=dry_run)
    emit(app, records, change_columns())
    notice(("would merge" if dry_run else "merged") + f" #{dup} into #{survivor}"
           + (" (dry run: nothing changed)" if dry_run else ""))
