"""The command-line reference (docs/cli-reference.md), generated from the Click commands.

    python -m deskctl.clidoc > docs/cli-reference.md     (make cli-reference)
    python -m deskctl.clidoc --check docs/cli-reference.md (make lint: exit 1 when stale)

Every command and subcommand of the root table (deskctl.cli.COMMANDS), in order: its
usage, its help text and its own options; the global options, which every command also
takes, are listed once at the top. The text is what `deskctl CMD --help` prints, at a
fixed width, so the file does not depend on the terminal it was made on.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from deskctl import cli as root

WIDTH = 100
TITLE = "# deskctl command reference"
PREAMBLE = """\
Generated from the commands themselves by `make cli-reference` (`python -m deskctl.clidoc`);
`make lint` fails when this file is out of date. Do not edit it by hand: change the command's
help and regenerate. How the commands fit together: [cli.md](cli.md).
"""


def _is_global(param: click.Parameter) -> bool:
    return getattr(param, "callback", None) is root._global_option_given


def _help_block(command: click.Command, ctx: click.Context, *, with_globals: bool) -> str:
    formatter = ctx.make_formatter()
    command.format_usage(ctx, formatter)
    command.format_help_text(ctx, formatter)
    records = [param.get_help_record(ctx) for param in command.get_params(ctx)
               if (with_globals or not _is_global(param)) and "--help" not in param.opts]
    records = [r for r in records if r]
    if records:
        with formatter.section("Options"):
            formatter.write_dl(records)
    if isinstance(command, click.Group):
        command.format_commands(ctx, formatter)
    command.format_epilog(ctx, formatter)
    return formatter.getvalue().rstrip()


def _context(command: click.Command, name: str, parent: click.Context | None) -> click.Context:
    return click.Context(command, info_name=name, parent=parent, terminal_width=WIDTH, max_content_width=WIDTH)


def _walk(command: click.Command, ctx: click.Context):
    """(context, command) of `command` and of every subcommand below it, depth first."""
    yield ctx, command
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                yield from _walk(sub, _context(sub, name, ctx))


def reference() -> str:
    top = _context(root.cli, "deskctl", None)
    parts = [TITLE, "", PREAMBLE, "## deskctl", "", "```text", _help_block(root.cli, top, with_globals=True),
             "```", ""]
    for name in root.cli.list_commands(top):
        command = root.cli.get_command(top, name)
        for ctx, sub in _walk(command, _context(command, name, top)):
            parts += [f"## {ctx.command_path}", "", "```text", _help_block(sub, ctx, with_globals=False), "```", ""]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    text = reference()
    if args[:1] == ["--check"] and len(args) == 2:
        path = Path(args[1])
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            print(f"{path} is out of date: run `make cli-reference`", file=sys.stderr)
            return 1
        return 0
    if args:
        print("usage: python -m deskctl.clidoc [--check FILE]", file=sys.stderr)
        return 2
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
