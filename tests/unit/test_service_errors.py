"""Services speak of the domain, never of command-line flags (issue 15): the text of every
error a service raises or returns names no `--option`. The command line appends the
flag itself (DeskError(..., option=...), see DeskError.name_options)."""

import ast
import re
from pathlib import Path

import click

from deskctl.errors import BulkError, Conflict, UsageError

SERVICES = Path(__file__).resolve().parents[2] / "deskctl" / "services"
ERRORS = {"UsageError", "NotFound", "Conflict", "Forbidden", "DataError", "TempFail", "DeskError", "Bad"}
FLAG = re.compile(r"(?<![\w-])-{1,2}[a-z][a-z-]*")
OTHER_TOOLS = ("pg_dump",)  # a hint about another program may show its options


def _texts(node: ast.Call):
    for arg in node.args[:1]:
        for sub in ast.walk(arg):
            if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
                yield sub.value


def test_no_service_error_names_a_flag():
    found = []
    for path in sorted(SERVICES.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ERRORS:
                for text in _texts(node):
                    if FLAG.search(text) and not any(tool in text for tool in OTHER_TOOLS):
                        found.append(f"{path.relative_to(SERVICES)}:{node.lineno}: {text!r}")
    assert not found, "\n".join(found)


def test_the_command_names_its_own_flag_once():
    @click.command()
    @click.option("--steal", is_flag=True)
    @click.option("--transcript-to", "transcript_to")
    def command(steal, transcript_to):
        pass

    error = Conflict("claimed by bob", option="steal")
    error.name_options(command)
    error.name_options(command)
    assert error.format_message() == "claimed by bob (--steal)"
    several = BulkError([(1, UsageError("bad", option=("transcript_to", "nope"))), (2, Conflict("x"))])
    several.name_options(command)
    assert [e.format_message() for _, e in several.failures] == ["bad (--transcript-to)", "x"]
