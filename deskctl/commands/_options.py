"""Option bundles shared by commands: output format, conversation filters, targets.

Every command module imports this, `ingest` too: its MTA gateway path must load no
database code before it needs it (SPEC §11 spool mode), so the conversation selection
service (SQLAlchemy, the models) is imported inside the functions that build filters.
"""

from __future__ import annotations

import functools

import click

from deskctl import output
from deskctl.clitypes import CommaChoice, TableFormat
from deskctl.commands import _complete
from deskctl.errors import UsageError
from deskctl.term import table_width
from deskctl.timeparse import parse_date_bound
from deskctl.vocab import FORMATS, PRIORITIES, SLA_STATES, STATUSES

# Every --limit: a billion is past any desk, and the bound keeps the value inside the
# databases' 64-bit LIMIT (a larger one was an internal error, found by the stress fuzzer).
LIMIT = click.IntRange(min=1, max=10**9)


def output_options(func):
    """--format / --table-format / --no-formula-guard on the command itself (the global
    ones also work)."""

    @click.option("--format", "fmt", type=click.Choice(FORMATS), default=None,
                  help="Output format (default: the global --format / DESKCTL_FORMAT, else table "
                       "on a terminal and tsv otherwise).")
    @click.option("--table-format", "table_format", type=TableFormat(), default=None, metavar="NAME",
                  help="Any tabulate format name for --format table (simple, github, grid, ...).")
    @click.option("--no-formula-guard", "no_formula_guard", is_flag=True, default=False,
                  help="csv: leave cells starting with = + - @ as they are (no leading ').")
    @functools.wraps(func)
    def wrapper(*args, fmt, table_format, no_formula_guard, **kwargs):
        ctx = click.get_current_context()
        app = ctx.obj
        if table_format is not None:
            app.table_format = table_format
        if no_formula_guard:
            app.formula_guard = False
        if fmt is not None:
            # Left unset otherwise: `show` tells a chosen format from the default.
            app._format = fmt
        return func(*args, **kwargs)

    return wrapper


def bulk_options(func):
    """--dry-run and --yes for verbs acting on TARGETS."""
    func = click.option("-y", "--yes", is_flag=True,
                        help="Do not ask for confirmation (asked only on a terminal, for more than 20 "
                             "conversations selected by a filter).")(func)
    return click.option("-n", "--dry-run", is_flag=True, help="Print what would change; change nothing.")(func)


def emit(app, rows, columns, *, id_key: str = "id") -> int:
    """Render records in the command's format to stdout."""
    return output.render(rows, columns, app.output_format(), table_format=app.table_format,
                         tz=app.settings.timezone, id_key=id_key, formula_guard=app.formula_guard,
                         width=table_width())


def _csv_values(values) -> tuple[str, ...]:
    """Repeated options that also accept commas: --status new,open --status pending."""
    out: list[str] = []
    for value in values or ():
        out.extend(v.strip() for v in value.split(",") if v.strip())
    return tuple(out)


def _not_empty(ctx, param, value):
    """An empty filter value (`--status ''`, `--tag ,`) is a usage error: silently
    ignoring it would select every conversation, the opposite of what was asked."""
    values = value if param.multiple else (value,)
    for item in values:
        if item is not None and not any(part.strip() for part in item.split(",")):
            raise click.BadParameter("empty value (leave the option out to not filter on it)",
                                     ctx=ctx, param=param)
    return value


def _filter_option(*decls, **attrs):
    return click.option(*decls, callback=None if attrs.get("is_flag") else _not_empty, **attrs)


FILTER_OPTIONS = [
    _filter_option("--status", multiple=True, type=CommaChoice(STATUSES), help="Status (comma list or repeated)."),
    _filter_option("--assignee", metavar="H", shell_complete=_complete.users, help="Assigned to this user handle."),
    _filter_option("--unassigned", is_flag=True, help="No assignee."),
    _filter_option("--mine", is_flag=True, help="Assigned to the acting user."),
    _filter_option("--group", "group_name", metavar="G", shell_complete=_complete.groups,
                   help="In this group (queue)."),
    _filter_option("--location", metavar="L", shell_complete=_complete.locations, help="In this location."),
    _filter_option("--channel", multiple=True, shell_complete=_complete.channels,
                   help="A channel of the desk (config `channels`; comma list or repeated)."),
    _filter_option("--tag", multiple=True, help="Has this tag (repeat: has all of them)."),
    _filter_option("--priority", multiple=True, type=CommaChoice(PRIORITIES), help="Priority (comma list or repeated)."),
    _filter_option("--sla", multiple=True, type=CommaChoice(SLA_STATES), help="SLA state (comma list or repeated)."),
    _filter_option("--watching", is_flag=True, help="Watched by the acting user."),
    _filter_option("--created-before", metavar="WHEN",
                   help="Created before (date, date-time, or 3d = 3 days ago)."),
    _filter_option("--created-after", metavar="WHEN", help="Created at or after."),
    _filter_option("--updated-before", metavar="WHEN", help="Last updated before."),
    _filter_option("--query", metavar="TEXT",
                   help="Full-text search of subjects, contacts, messages and notes: words AND-ed, refund* a "
                        "prefix, \"double charge\" a phrase (--sort relevance)."),
]
FILTER_PARAMS = ("status", "assignee", "unassigned", "mine", "group_name", "location", "channel", "tag",
                 "priority", "sla", "watching", "created_before", "created_after", "updated_before", "query")


def filter_options(func):
    for option in reversed(FILTER_OPTIONS):
        func = option(func)
    return func


def date_bound_option(app, value: str | None, option: str):
    """A WHEN given as a bound (`--since 3d`, `--created-before 2026-11-01`) → an aware
    datetime in the configured timezone; a bad value is a usage error naming the option."""
    if not value:
        return None

    now, tz = app.now(), app.settings.timezone  # a configuration error stays one (78), not a bad value
    try:
        return parse_date_bound(value, now=now, tz=tz)
    except click.ClickException as exc:
        raise click.BadParameter(exc.format_message(), param_hint=option) from None


def build_filter(app, params: dict, **extra):
    """Filter option values → ConversationFilter (WHEN values parsed in the configured tz)."""
    from deskctl.services.conversations.selection import ConversationFilter, check_query

    def when(value, option):
        return date_bound_option(app, value, option)

    return ConversationFilter(
        status=_csv_values(params.get("status")),
        assignee=params.get("assignee"),
        unassigned=bool(params.get("unassigned")),
        mine=bool(params.get("mine")),
        group=params.get("group_name"),
        location=params.get("location"),
        channel=_csv_values(params.get("channel")),
        tag=_csv_values(params.get("tag")),
        priority=_csv_values(params.get("priority")),
        sla=_csv_values(params.get("sla")),
        watching=bool(params.get("watching")),
        created_before=when(params.get("created_before"), "--created-before"),
        created_after=when(params.get("created_after"), "--created-after"),
        updated_before=when(params.get("updated_before"), "--updated-before"),
        query=check_query(params.get("query"), app.settings.limits.query_chars),
        **extra,
    )


def targets_argument(func):
    """TARGETS for verbs: ids (`123`, `#123`), `-` for stdin, or the filters of `list`,
    with --all, --limit and --sort. The wrapped command receives `targets` (a TargetSpec)."""

    @click.argument("target_args", nargs=-1, metavar="[ID|-]...")
    @filter_options
    @click.option("--all", "all_", is_flag=True, help="Act on every conversation (needed when no id or filter).")
    @click.option("--limit", type=LIMIT, help="Act on at most N conversations (oldest first).")
    @click.option("--sort", metavar="KEYS", help="Order for filters and --limit, e.g. created or -priority.")
    @functools.wraps(func)
    def wrapper(*args, target_args, all_, limit, sort, **kwargs):
        app = click.get_current_context().obj
        params = {name: kwargs.pop(name) for name in FILTER_PARAMS}
        kwargs["targets"] = make_target_spec(app, target_args, params, all_=all_, limit=limit, sort=sort,
                                             extra=kwargs.pop("_filter_extra", {}))
        return func(*args, **kwargs)

    return wrapper


def make_target_spec(app, target_args, params, *, all_=False, limit=None, sort=None, extra=None):
    from deskctl.services.conversations.selection import (
        TargetSpec,
        parse_conversation_id,
        read_id_lines,
    )

    ids: list[int] = []
    stdin = False
    for arg in target_args:
        if arg == "-":
            ids.extend(read_id_lines(click.open_file("-", "r")))
            stdin = True
        else:
            ids.append(parse_conversation_id(arg))
    flt = build_filter(app, params, **(extra or {}))
    if (ids or stdin) and not flt.is_empty():
        raise UsageError("give either conversation ids or filters, not both")
    return TargetSpec(ids=tuple(ids), filter=flt, all=all_, limit=limit, sort=sort, stdin=stdin)
