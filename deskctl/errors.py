"""The one table of exit codes (SPEC §3) and the domain errors that carry them.

Services raise these; the root command group turns them into one line on stderr and
the exit code. Nothing else in the package knows exit codes.
"""

from __future__ import annotations

from collections.abc import Sequence

import click

OK = 0
INTERNAL = 1
USAGE = 2
NOT_FOUND = 3
CONFLICT = 4
FORBIDDEN = 5
DATA_ERROR = 65
TEMP_FAIL = 75
CONFIG_ERROR = 78

EXIT_CODES_HELP = """\b
Exit codes:
  0   done (also when a filter matched nothing)
  1   unexpected internal error (rerun with -v)
  2   usage error: bad option or value, unparseable WHEN, ambiguous reference
  3   not found: conversation, user, group, contact, note, template
  4   conflict: the current state forbids it, or a concurrent change won
  5   permission denied for the acting user
  65  data error: input could not be parsed and was quarantined
  75  temporary failure (database unreachable or locked): safe to retry
  78  configuration error"""


class DeskError(click.ClickException):
    """A failure the user can act on; `exit_code` comes from SPEC §3.

    Services speak of the domain, never of command-line flags. `option` names the
    parameter(s) of the service call the error is about (`steal`, `query`, ...): when the
    command that ran has an option of that name, the command line appends it to the
    message (`claimed by bob: ... (--steal)`, see `name_options`)."""

    exit_code = INTERNAL

    def __init__(self, message: str, *, option: str | tuple[str, ...] | None = None):
        super().__init__(message)
        self.options = (option,) if isinstance(option, str) else tuple(option or ())
        self._flags = ""

    def name_options(self, command: click.Command) -> None:
        """Append the flags of `command` that the error is about (once)."""
        flags = [flag for flag in (_flag(command, name) for name in self.options) if flag]
        if flags:
            self._flags = f" ({', '.join(flags)})"
        self.options = ()

    def format_message(self) -> str:
        return super().format_message() + self._flags

    def show(self, file=None) -> None:  # noqa: D401 - Click API
        click.echo(f"deskctl: {self.format_message()}", err=True)


def _flag(command: click.Command, name: str) -> str | None:
    dashed = "--" + name.replace("_", "-")
    for param in command.params:
        if isinstance(param, click.Option) and (param.name == name or dashed in param.opts):
            return max(param.opts, key=len)
    return None


class UsageError(DeskError):
    exit_code = USAGE


class NotFound(DeskError):
    exit_code = NOT_FOUND


class Conflict(DeskError):
    exit_code = CONFLICT


class Forbidden(DeskError):
    exit_code = FORBIDDEN


class DataError(DeskError):
    exit_code = DATA_ERROR


class TempFail(DeskError):
    exit_code = TEMP_FAIL


class ConfigError(DeskError):
    """A configuration problem: names the file, the key and what is wrong (exit 78).

    `ConfigError.several(problems)` carries every problem found by one load, each shown
    on its own line, so that an operator fixes them all in one pass."""

    exit_code = CONFIG_ERROR

    def __init__(self, file: str | None, key: str | None, problem: str, *, line: int | None = None,
                 problems: Sequence[ConfigError] = ()):
        self.file, self.key, self.problem, self.line = file, key, problem, line
        self.problems: tuple[ConfigError, ...] = tuple(problems) or (self,)
        super().__init__("\n".join(p._describe() for p in self.problems))

    def _describe(self) -> str:
        where = self.file or "built-in defaults"
        if self.line is not None:
            where = f"{where} line {self.line}"
        if self.key:
            where = f"{where}: {self.key}"
        return f"configuration error in {where}: {self.problem}"

    @classmethod
    def several(cls, problems: list[ConfigError]) -> ConfigError:
        first = problems[0]
        return cls(first.file, first.key, first.problem, line=first.line, problems=problems)

    def show(self, file=None) -> None:
        for problem in self.problems:
            click.echo(f"deskctl: {problem._describe()}", err=True)
        if len(self.problems) > 1:
            click.echo(f"deskctl: {len(self.problems)} configuration problems; nothing was done", err=True)


class BulkError(DeskError):
    """Several targets failed; nothing was changed.

    Each failure is (conversation id, DeskError). The exit code is that of the first
    failure, and every failing target gets its own line on stderr.
    """

    def __init__(self, failures: list[tuple[int, DeskError]], *, label: str = "#{}"):
        self.failures = failures
        self.label = label  # how a target is named: "#12" (a conversation), "outbox 12"
        # Click declares exit_code a class variable; a bulk failure takes its first target's.
        self.exit_code = failures[0][1].exit_code  # type: ignore[misc]
        super().__init__(f"{len(failures)} target(s) failed; nothing was changed")

    def name_options(self, command: click.Command) -> None:
        for _, error in self.failures:
            error.name_options(command)

    def show(self, file=None) -> None:
        for target, error in self.failures:
            click.echo(f"deskctl: {self.label.format(target)}: {error.format_message()}", err=True)
        click.echo(f"deskctl: {self.format_message()}", err=True)
