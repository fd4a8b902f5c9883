"""Click parameter types shared by the root command and the commands: the edge where
values from the fixed vocabulary (deskctl.vocab) are checked, once, before any service
runs. Imports only click at module level: the root command imports this for its global
options, and `deskctl --help` imports no command module.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import click
from click.shell_completion import CompletionItem


def matching(values: Iterable[str], incomplete: str, *, comma_list: bool = False) -> list[CompletionItem]:
    """The values that start with `incomplete`. For options that take a comma list
    (`--status new,op`) only the last item is completed, and the earlier ones are kept."""
    prefix = ""
    if comma_list and "," in incomplete:
        head, _, incomplete = incomplete.rpartition(",")
        prefix = head + ","
    chosen = set(prefix.split(","))
    return [CompletionItem(prefix + value) for value in values
            if value.startswith(incomplete) and value not in chosen]


class CommaChoice(click.ParamType):
    """A comma list of names from `choices` (`--status new,open`), also repeatable.
    The value is kept as given (the command splits it); an unknown name is a usage
    error naming the option and the valid names. Empty items are left to the option's
    own check (an empty filter value is refused with its own message)."""

    name = "choice_list"

    def __init__(self, choices: Sequence[str], *, also: Sequence[str] = ()):
        self.choices = tuple(choices)
        self.also = tuple(also)  # accepted alone, not in a list: e.g. `all`

    def get_metavar(self, param, ctx=None) -> str:
        return "[" + "|".join(self.choices + self.also) + "][,...]"

    def convert(self, value, param, ctx):
        if not isinstance(value, str) or value.strip() in self.also:
            return value
        unknown = [item.strip() for item in value.split(",") if item.strip() and item.strip() not in self.choices]
        if unknown:
            names = ", ".join(self.choices + self.also)
            self.fail(f"{', '.join(repr(u) for u in unknown)}: not one of {names}", param, ctx)
        return value

    def shell_complete(self, ctx, param, incomplete):
        return matching(self.choices, incomplete, comma_list=True)


class TableFormat(click.ParamType):
    """A tabulate format name (`--table-format`): checked when given (output.check_table_format,
    the one rule), completed in the shell."""

    name = "table_format"

    def convert(self, value, param, ctx):
        from deskctl.output import check_table_format

        return check_table_format(ctx, param, value)

    def shell_complete(self, ctx, param, incomplete):
        from tabulate import tabulate_formats

        return matching(sorted(tabulate_formats), incomplete)
