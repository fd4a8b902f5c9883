"""The root command: global options, lazy subcommands, and the one place where errors
become exit codes (SPEC §3)."""

from __future__ import annotations

import sys
from importlib import import_module

import click

from deskctl import __version__
from deskctl.clitypes import TableFormat
from deskctl.errors import EXIT_CODES_HELP, INTERNAL, DeskError
from deskctl.vocab import FORMATS

# The command table, one line per command: name → ("module:attribute", the line `deskctl
# --help` shows). The root help reads the lines here and imports no command module; a
# command's module is imported only when it runs, completes, or shows its own --help.
COMMANDS: dict[str, tuple[str, str]] = {
    "db": ("deskctl.commands.db:db", "Create or migrate the schema, back up a SQLite desk."),
    "demo": ("deskctl.commands.demo:demo", "Fill the database with sample data."),
    "user": ("deskctl.commands.user:user", "Users (agents, supervisors, admins)."),
    "group": ("deskctl.commands.group:group", "Groups (queues, teams)."),
    "location": ("deskctl.commands.group:location", "Locations (sites, countries)."),
    "contact": ("deskctl.commands.contact:contact", "Contacts (the customers)."),
    "attach": ("deskctl.commands.contact:attach", "Attach a conversation to a contact."),
    "attachment": ("deskctl.commands.attachment:attachment", "List and save the attachments of a conversation."),
    "availability": ("deskctl.commands.availability:availability", "Show or set availability."),
    "login": ("deskctl.commands.availability:login", "Start a shift: back to your default availability."),
    "list": ("deskctl.commands.list_:list_", "List conversations."),
    "show": ("deskctl.commands.show:show", "Show a conversation: header, messages and notes."),
    "inbox": ("deskctl.commands.inbox:inbox", "Your conversations and those you watch."),
    "claim": ("deskctl.commands.claim:claim", "Take responsibility: assignee = you, new → open."),
    "decline": ("deskctl.commands.decline:decline", "Refuse an offer (routing in offer mode)."),
    "next": ("deskctl.commands.next_:next_", "Claim the most urgent waiting conversation of your groups."),
    "transfer": ("deskctl.commands.transfer:transfer", "Transfer conversations to a user or a group."),
    "release": ("deskctl.commands.lifecycle:release", "Give claimed conversations back to their group."),
    "pending": ("deskctl.commands.lifecycle:pending", "Wait for the contact (optionally with a boomerang)."),
    "resolve": ("deskctl.commands.lifecycle:resolve", "Mark conversations answered."),
    "close": ("deskctl.commands.lifecycle:close", "End conversations with their qualification."),
    "qualify": ("deskctl.commands.lifecycle:qualify", "Set tags, contact reason, priority or closing note."),
    "reopen": ("deskctl.commands.lifecycle:reopen", "Back to new (from pending, resolved or closed)."),
    "merge": ("deskctl.commands.lifecycle:merge", "Merge duplicates into one conversation."),
    "watch": ("deskctl.commands.watch:watch", "Follow conversations."),
    "unwatch": ("deskctl.commands.watch:unwatch", "Stop following conversations."),
    "note": ("deskctl.commands.note:note", "Internal notes: add, edit, delete."),
    "audit": ("deskctl.commands.audit:audit", "The audit trail, oldest first."),
    "new": ("deskctl.commands.new:new", "Create a conversation yourself (phone call, walk-in)."),
    "outbox": ("deskctl.commands.outbox:outbox", "Mail, notifications and channel replies waiting to leave."),
    "reply": ("deskctl.commands.reply:reply", "Reply to the contact."),
    "template": ("deskctl.commands.template:template", "Saved replies."),
    "ingest": ("deskctl.commands.ingest:ingest", "Bring messages in: email and JSON lines."),
    "report": ("deskctl.commands.report:report", "Aggregated statistics over a period."),
    "daemon": ("deskctl.commands.jobs:daemon", "Run the scheduler."),
    "jobs": ("deskctl.commands.jobs:jobs", "Scheduled jobs: list, run one now, history."),
    "config": ("deskctl.commands.config:config", "Check and show the configuration."),
    "automation": ("deskctl.commands.automation:automation", "Automation rules: list them, test what they would do."),
}


class LazyGroup(click.Group):
    def parse_args(self, ctx, args):
        for arg in args:
            try:
                arg.encode("utf-8")
            except UnicodeEncodeError:
                # Bytes the locale could not decode arrive as lone surrogates: refuse them
                # here rather than let them reach the database driver.
                shown = arg.encode("utf-8", "backslashreplace").decode("ascii", "replace")
                raise click.UsageError(f"argument {shown!r} is not valid UTF-8 text") from None
        return super().parse_args(ctx, args)

    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        entry = COMMANDS.get(name)
        if entry is None:
            return None
        module_name, attribute = entry[0].split(":")
        try:
            module = import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:  # not built yet: hide it rather than crash
                return None
            raise
        return accept_global_options(getattr(module, attribute))

    def format_commands(self, ctx, formatter):
        """The command list from the table: no command module is imported."""
        with formatter.section("Commands"):
            formatter.write_dl([(name, COMMANDS[name][1]) for name in self.list_commands(ctx)])

    def shell_complete(self, ctx, incomplete):
        """Command names (with their line) from the table, then the root's options."""
        from click.shell_completion import CompletionItem

        names = [CompletionItem(name, help=COMMANDS[name][1])
                 for name in self.list_commands(ctx) if name.startswith(incomplete)]
        return names + click.Command.shell_complete(self, ctx, incomplete)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except BrokenPipeError:
            # The reader stopped early (`| head`): like any Unix filter, stop quietly.
            _silence_stdout()
            ctx.exit(0)
        except Exception as exc:  # the one place internal errors are translated
            translated = _translate(exc, ctx)
            if translated is not None:
                raise translated from exc
            if ctx.obj is not None and ctx.obj.verbose:
                raise
            message = str(exc).splitlines()[0] if str(exc) else ""
            click.echo(
                f"deskctl: internal error: {type(exc).__name__}: {message} (rerun with -v for details)",
                err=True,
            )
            ctx.exit(INTERNAL)


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _translate(exc: Exception, ctx) -> DeskError | None:
    """Database failures users can act on: unreachable/locked → 75, lost race → 4."""
    from deskctl.errors import Conflict

    module = type(exc).__module__
    if not module.startswith("sqlalchemy"):
        return None
    from sqlalchemy import exc as sa_exc
    from sqlalchemy.orm.exc import StaleDataError

    if isinstance(exc, StaleDataError):
        return Conflict("changed by someone else while this command ran; retry")
    if isinstance(exc, sa_exc.OperationalError):
        text = str(exc.orig).lower() if exc.orig else ""
        if "could not serialize" in text or "deadlock" in text:
            return Conflict("changed by someone else while this command ran; retry")
        if "pattern too complex" in text:
            # SQLite's LIKE length limit: the same input fails every time, so not 75.
            from deskctl.errors import UsageError

            return UsageError("search text too long or complex for the database; shorten --query")
        from deskctl.db.engine import translate_operational_error

        url = ctx.obj.settings.database_url if ctx.obj is not None else ""
        return translate_operational_error(exc, url)
    if isinstance(exc, sa_exc.IntegrityError):
        return Conflict("changed by someone else while this command ran; retry")
    return None


def _complete_users(ctx, param, incomplete):
    from deskctl.commands import _complete  # only when completing: it reads the database

    return _complete.users(ctx, param, incomplete)


# The global options (SPEC §2), declared once. The root group reads them (and their
# environment variables); every subcommand accepts them too, after its name (SPEC §9:
# `deskctl claim 42 --as bob`), as gh and kubectl accept theirs. See accept_global_options.
GLOBAL_OPTIONS: list[tuple[tuple[str, ...], dict]] = [
    (("--db", "db_url"), dict(envvar="DESKCTL_DATABASE_URL", metavar="URL",
                              help="Database URL (default: database.url in config, else SQLite in the data "
                                   "directory).")),
    (("--config", "config_file"), dict(envvar="DESKCTL_CONFIG", metavar="FILE",
                                       help="Config file (default: $XDG_CONFIG_HOME/deskctl/config.yaml, "
                                            "then $XDG_CONFIG_DIRS, then /etc/deskctl/config.yaml).")),
    (("--as", "actor_handle"), dict(envvar="DESKCTL_USER", metavar="HANDLE", shell_complete=_complete_users,
                                    help="Act as this user (default: the login name).")),
    (("--format", "fmt"), dict(envvar="DESKCTL_FORMAT", type=click.Choice(FORMATS),
                               help="Output format (default: table on a terminal, tsv otherwise).")),
    (("--table-format", "table_format"), dict(type=TableFormat(), metavar="NAME",
                                              help="tabulate format for --format table (default simple; "
                                                   "github, grid, ...).")),
    (("--no-formula-guard", "no_formula_guard"), dict(is_flag=True,
                                                      help="csv: leave cells starting with = + - @ as they are.")),
    (("-v", "--verbose", "verbose"), dict(is_flag=True, help="Show tracebacks and debug logging.")),
]


def _root_global_options(func):
    for decls, attrs in reversed(GLOBAL_OPTIONS):
        func = click.option(*decls, show_envvar="envvar" in attrs, **attrs)(func)
    return func


def accept_global_options(command: click.Command) -> click.Command:
    """Give `command` (and, for a group, every subcommand under it) the global options
    it does not have under the same name. A command's own `--format` and
    `--table-format` (output_options) take the place of the global ones: both set the
    same thing. Given there, a global option overrides the value given before the
    subcommand or by the environment; Click's parser keeps `--` and option values
    intact (`note 5 -- --as` is text)."""
    if getattr(command, "_deskctl_global_options", False):
        return command
    _name_options_in_errors(command)
    taken = {name for param in command.params for name in (*param.opts, *param.secondary_opts)}
    for decls, attrs in GLOBAL_OPTIONS:
        attrs = {key: value for key, value in attrs.items() if key != "envvar"}
        option = click.Option(decls, expose_value=False, callback=_global_option_given, **attrs)
        if taken.isdisjoint(option.opts):
            command.params.append(option)
    command._deskctl_global_options = True
    if isinstance(command, click.Group):
        for subcommand in command.commands.values():
            accept_global_options(subcommand)
    return command


def _name_options_in_errors(command: click.Command) -> None:
    """A DeskError raised while `command` runs gets the command's flags it is about
    (DeskError.option): services name domain things, the command line its own flags."""
    invoke = command.invoke

    def invoke_naming_options(ctx):
        try:
            return invoke(ctx)
        except DeskError as exc:
            exc.name_options(ctx.command)
            raise

    command.invoke = invoke_naming_options


def _global_option_given(ctx, param, value):
    if value is None or value is False:  # not given after this subcommand
        return
    app_of(ctx).set_global_option(param.name, value)
    if param.name == "verbose":
        _enable_debug_logging()


def _enable_debug_logging() -> None:
    import logging

    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)


def app_of(ctx):
    """The App of this command line. Shell completion parses without running the root
    callback: then the App is made here from the root's global options."""
    root = ctx.find_root()
    if root.obj is None:
        root.obj = _make_app({name: value for name, value in root.params.items() if isinstance(value, str | bool)})
    return root.obj


def _make_app(params: dict):
    from deskctl.app import App

    return App(db_url=params.get("db_url"), config_file=params.get("config_file"),
               actor_handle=params.get("actor_handle"), fmt=params.get("fmt"),
               table_format=params.get("table_format") or "simple", verbose=bool(params.get("verbose")),
               formula_guard=not params.get("no_formula_guard"))


@click.group(cls=LazyGroup, epilog=EXIT_CODES_HELP, context_settings={"help_option_names": ["-h", "--help"]})
@_root_global_options
@click.version_option(__version__, prog_name="deskctl")
@click.pass_context
def cli(ctx, **params):
    """deskctl: a command-line help desk for shared customer-support inboxes.

    Conversations are referred to by id (123 or #123); `-` reads ids from stdin.
    The global options may also follow the subcommand: `deskctl claim 42 --as bob`.
    """
    import os

    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        ctx.color = False
    if params["verbose"]:
        _enable_debug_logging()
    app = _make_app(params)
    ctx.obj = app
    ctx.call_on_close(app.close)


def main() -> None:
    cli(prog_name="deskctl")
