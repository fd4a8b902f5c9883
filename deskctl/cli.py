"""The root command: global options, lazy subcommands, and the one place where errors
become exit codes (SPEC §3)."""

from __future__ import annotations

import sys
from importlib import import_module

import click

from deskctl import __version__
from deskctl.errors import EXIT_CODES_HELP, INTERNAL, DeskError

# name → "module:attribute". Modules are imported only when the command runs or help is
# shown, and command modules import only click at the top, so `deskctl --help` stays fast.
COMMANDS: dict[str, str] = {
    "db": "deskctl.commands.db:db",
    "demo": "deskctl.commands.demo:demo",
    "user": "deskctl.commands.user:user",
    "group": "deskctl.commands.group:group",
    "location": "deskctl.commands.group:location",
    "contact": "deskctl.commands.contact:contact",
    "attach": "deskctl.commands.contact:attach",
    "attachment": "deskctl.commands.attachment:attachment",
    "availability": "deskctl.commands.availability:availability",
    "login": "deskctl.commands.availability:login",
    "list": "deskctl.commands.list_:list_",
    "show": "deskctl.commands.show:show",
    "inbox": "deskctl.commands.inbox:inbox",
    "claim": "deskctl.commands.claim:claim",
    "decline": "deskctl.commands.decline:decline",
    "next": "deskctl.commands.next_:next_",
    "transfer": "deskctl.commands.transfer:transfer",
    "release": "deskctl.commands.lifecycle:release",
    "pending": "deskctl.commands.lifecycle:pending",
    "resolve": "deskctl.commands.lifecycle:resolve",
    "close": "deskctl.commands.lifecycle:close",
    "qualify": "deskctl.commands.lifecycle:qualify",
    "reopen": "deskctl.commands.lifecycle:reopen",
    "merge": "deskctl.commands.lifecycle:merge",
    "watch": "deskctl.commands.watch:watch",
    "unwatch": "deskctl.commands.watch:unwatch",
    "note": "deskctl.commands.note:note",
    "audit": "deskctl.commands.audit:audit",
    "new": "deskctl.commands.new:new",
    "reply": "deskctl.commands.reply:reply",
    "template": "deskctl.commands.template:template",
    "ingest": "deskctl.commands.ingest:ingest",
    "report": "deskctl.commands.report:report",
    "daemon": "deskctl.commands.jobs:daemon",
    "jobs": "deskctl.commands.jobs:jobs",
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
        target = COMMANDS.get(name)
        if target is None:
            return None
        module_name, attribute = target.split(":")
        try:
            module = import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:  # not built yet: hide it rather than crash
                return None
            raise
        return getattr(module, attribute)

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
        from deskctl.db.engine import translate_operational_error

        url = ctx.obj.settings.database_url if ctx.obj is not None else ""
        return translate_operational_error(exc, url)
    if isinstance(exc, sa_exc.IntegrityError):
        return Conflict("changed by someone else while this command ran; retry")
    return None


FORMAT_CHOICE = click.Choice(["table", "csv", "tsv", "json", "jsonl", "ids"])


@click.group(cls=LazyGroup, epilog=EXIT_CODES_HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--db", "db_url", envvar="DESKCTL_DATABASE_URL", show_envvar=True, metavar="URL",
              help="Database URL (default: database.url in config, else SQLite in the data directory).")
@click.option("--config", "config_file", envvar="DESKCTL_CONFIG", show_envvar=True, metavar="FILE",
              help="Config file (default: ./config/deskctl.yaml, else $XDG_CONFIG_HOME/deskctl/config.yaml).")
@click.option("--as", "actor_handle", envvar="DESKCTL_USER", show_envvar=True, metavar="HANDLE",
              help="Act as this user (default: the login name).")
@click.option("--format", "fmt", envvar="DESKCTL_FORMAT", show_envvar=True, type=FORMAT_CHOICE,
              help="Output format (default: table on a terminal, tsv otherwise).")
@click.option("--table-format", default="simple", metavar="NAME",
              help="tabulate format for --format table (simple, github, grid, ...).")
@click.option("-v", "--verbose", is_flag=True, help="Show tracebacks and debug logging.")
@click.version_option(__version__, prog_name="deskctl")
@click.pass_context
def cli(ctx, db_url, config_file, actor_handle, fmt, table_format, verbose):
    """deskctl: a command-line help desk for shared customer-support inboxes.

    Conversations are referred to by id (123 or #123); `-` reads ids from stdin.
    """
    import os

    from deskctl.app import App

    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        ctx.color = False
    if verbose:
        import logging

        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
    app = App(db_url=db_url, config_file=config_file, actor_handle=actor_handle, fmt=fmt,
              table_format=table_format, verbose=verbose)
    ctx.obj = app
    ctx.call_on_close(app.close)


def main() -> None:
    cli(prog_name="deskctl")
