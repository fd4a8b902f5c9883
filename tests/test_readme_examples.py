"""Every `deskctl` example of README.md and docs/*.md runs without crashing.

Extraction rule (kept simple on purpose):
- Look in fenced code blocks (```...```) except those tagged with a data language
  (yaml, json, python, ini, toml).
- Join continued lines (a trailing backslash, or a quote left open), drop a leading `$ `.
- An example is a line whose pipeline segments (split on unquoted `|`) each start with
  `deskctl` (or a path ending in `/deskctl`) followed by one of deskctl's commands (after
  any global options), or with one of a few standard tools (printf, echo, wc, jq, head,
  sort, cat, cut, awk), and at least one is
  deskctl. Synopses are skipped: a line holding `[` or an ALL-CAPS placeholder word
  (ID, NAME, WHEN, ...) outside quotes. So are `deskctl daemon` without `--once` (it runs
  forever), lines fed by a made-up producer (`some-command | ...`), and lines using shell
  expansions (`$`) or operators other than `|` and `>` (scripts, not commands).
- The examples run in the order of the documents, against one demo desk (`deskctl demo
  --conversations 1100 --seed 1`, so that the ids the README uses, 12 to 1042, exist; those
  ids are reopened and released first, so the lifecycle examples start from live, unclaimed
  conversations), with a fixed DESKCTL_NOW, as `admin`, with stdout a terminal (80 columns) as for someone typing
  them, but for the stages of a pipe that feed the next one. deskctl runs in-process (a subprocess each took seconds on
  a loaded machine), the tools as real processes, piped as the shell would; `> FILE` writes
  the file. The files the examples read (call-notes.txt, invoice.pdf, ...) are created
  first in the working directory and HOME.
- Each must exit 0 (the last failing stage of a pipe counts, as with pipefail), or with a
  code listed for it in EXPECTED_CODES (with the reason), and never print "internal error"
  or a traceback.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest

from deskctl.cli import COMMANDS

ROOT = Path(__file__).resolve().parents[1]
NOW = "2026-11-30T10:00:00+00:00"
DATA_LANGUAGES = {"yaml", "yml", "json", "python", "ini", "toml"}
TOOLS = {"printf", "echo", "wc", "jq", "head", "sort", "cat", "cut", "awk"}
GLOBAL_OPTIONS_WITH_VALUE = {"--db", "--config", "--as", "--format", "--table-format"}
PLACEHOLDER = re.compile(r"^[A-Z][A-Z0-9_]*(\.\.\.)?$")

# Examples whose documented outcome is not 0 on the demo desk, by a fragment of their text.
EXPECTED_CODES: dict[str, tuple[set[int], str]] = {
    "deskctl db check": ({0, 4}, "exit 4 on a problem, as documented"),
    "deskctl db backup": ({0, 2}, "2 on PostgreSQL (use pg_dump), as documented"),
    "deskctl --db sqlite:///desk-backup.db": ({0, 78}, "the backup exists only when the desk is SQLite"),
    "deskctl next": ({0, 3}, "3 when nothing waits, as documented"),
    "deskctl list --status opne": ({2}, "docs/cli.md shows a bad value being refused"),
    # "Getting started on a real desk" and "Directory" create what the demo already has.
    "deskctl location add paris": ({4}, "the demo desk has it"),
    "deskctl group add billing": ({4}, "the demo desk has it"),
    "deskctl user add alice": ({4}, "the demo desk has her"),
    "deskctl user add bob": ({4}, "the demo desk has him"),
    # Bulk recipes whose filter matches nothing on the demo desk: `-` with no ids is a usage error.
    "deskctl list --tag refund --status new --format ids | deskctl transfer -": ({0, 2}, "nothing matched"),
    "deskctl list --status resolved --updated-before 7d --format ids | deskctl close -": ({0, 2}, "nothing matched"),
    # "Outbound" uses the saved reply that "Saved replies", further down, creates.
    "deskctl reply '#1042' --template refund-done": ({3}, "the template is added later in the README"),
    # Examples that name what a demo desk does not have: a Maildir, a database host, a
    # conversation of bob's groups, an email conversation, a file to save.
    "deskctl ingest email --maildir /srv/mail/support": ({0, 75}, "no such Maildir here"),
    "deskctl transfer 3 --to group:billing --db postgresql://desk@db/desk": ({75}, "no database host named db here"),
    "deskctl --as bob claim 42": ({0, 4, 5}, "#42 may be outside bob's groups"),
    "deskctl claim 42 --as bob": ({0, 4, 5}, "#42 may be outside bob's groups"),
    "deskctl contact add --name \"Léa Dubois\" --email lea@example.fr": ({0, 4}, "the demo has her"),
    "deskctl attachment save 42 photo.png": ({0, 3}, "#42 of the demo has no attachment"),
    "deskctl user add root": ({0, 4}, "README and getting started both create the first admin"),
    "deskctl reply 42 \"See attached.\" --cc": ({0, 2}, "--cc needs an email conversation"),
    # docs/threading.md's worked example: its mail files and ids are the example's own.
    "deskctl ingest email reply-from-": ({0, 75}, "the example's mail files are not here"),
    "deskctl merge 3005 --into 3003": ({0, 3}, "the example's ids"),
}
REOPENED_FIRST = ("12", "13", "14", "40", "42", "1042")


def documents() -> list[Path]:
    # docs/cli-reference.md is the commands' --help, generated (python -m deskctl.clidoc): no examples.
    return [ROOT / "README.md", *sorted(p for p in (ROOT / "docs").glob("*.md") if p.name != "cli-reference.md")]


def _logical_lines(block: str):
    pending = ""
    for line in block.splitlines():
        # A backslash joins lines with a space; an open quote keeps the line break.
        pending = f"{pending}\n{line}" if pending and not pending.endswith(" ") else pending + line.lstrip()
        if pending.endswith("\\"):
            pending = pending[:-1].rstrip() + " "
            continue
        try:
            shlex.split(pending, comments=True)
        except ValueError:  # a quote still open: the command goes on
            continue
        yield pending.strip()
        pending = ""


def _segments(line: str) -> list[list[str]] | None:
    lexer = shlex.shlex(line, posix=True, punctuation_chars="|&;<>")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    try:
        tokens = list(lexer)
    except ValueError:
        return None
    segments, current = [], []
    for token in tokens:
        if token == "|":
            segments.append(current)
            current = []
        else:
            current.append(token)
    segments.append(current)
    return segments


def _command_word(args: list[str]) -> str | None:
    """The subcommand, after any global options (`deskctl --format json list`)."""
    words = iter(args)
    for word in words:
        if word in GLOBAL_OPTIONS_WITH_VALUE:
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


def _is_example(line: str) -> bool:
    segments = _segments(line)
    if not segments or any(not seg for seg in segments):
        return False
    saw_deskctl = False
    if "$" in re.sub(r"'[^']*'", "", line):
        return False
    for seg in segments:
        if any(token in ("&", "&&", ";", "<", "||", ">>") for token in seg):
            return False
        program = seg[0].rsplit("/", 1)[-1]
        if program == "deskctl":
            command = _command_word(seg[1:])
            if command not in COMMANDS:
                return False
            if command == "daemon" and "--once" not in seg:
                return False
            saw_deskctl = True
        elif program not in TOOLS:
            return False
    # Synopses: brackets or placeholders outside quotes (shlex has removed the quotes, so
    # look at the raw words instead).
    raw_words = re.sub(r"'[^']*'|\"[^\"]*\"", "", line).split()
    if any("[" in word or PLACEHOLDER.match(word) for word in raw_words):
        return False
    return saw_deskctl


def examples() -> list[tuple[str, str]]:
    """(where, command line) for every example, in document order."""
    found = []
    for path in documents():
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(r"^```(\w*)[^\n]*\n(.*?)^```", text, re.S | re.M):
            if match.group(1).lower() in DATA_LANGUAGES:
                continue
            line_no = text.count("\n", 0, match.start()) + 2
            for line in _logical_lines(match.group(2)):
                line = line.removeprefix("$ ").strip()
                if _is_example(line):
                    found.append((f"{path.name}:{line_no}", line))
    return found


def test_the_extraction_rule_finds_the_readme_examples():
    lines = [line for _, line in examples()]
    assert any(line.startswith("deskctl show 1042 --audit") for line in lines)
    assert any("| deskctl transfer - --to group:billing" in line for line in lines)
    assert any(line.startswith("deskctl template add refund-done 'Hello") for line in lines)  # multi-line quote
    assert not any("[" in line.split("'")[0] for line in lines)  # synopses left out
    assert not any(line.startswith("deskctl daemon") and "--once" not in line for line in lines)
    assert len(lines) >= 60


def _prepare_files(work: Path, home: Path) -> None:
    (work / "call-notes.txt").write_text("Called back at 14:00, left a message.\n", encoding="utf-8")
    (work / "refund.txt").write_text("Hello, your refund has been issued.\n", encoding="utf-8")
    (work / "answer.txt").write_text("Your refund was issued today.\n", encoding="utf-8")
    (work / "invoice.pdf").write_bytes(b"%PDF-1.4\n% demo invoice\n%%EOF\n")
    (work / "terms.pdf").write_bytes(b"%PDF-1.4\n% demo terms\n%%EOF\n")
    (work / "support-archive.mbox").write_text(
        "From lea@example.fr Mon Nov 23 09:00:00 2026\nFrom: Lea Dubois <lea@example.fr>\n"
        "To: support@desk.example\nSubject: Archive test\nMessage-ID: <archive-1@example.fr>\n\nHello\n",
        encoding="utf-8")
    (work / "contacts.csv").write_text("email,name,phone,account,vip,plan\nnew.customer@example.fr,New Customer,"
                                       "+33 1 02 03 04 05,ACME-9,no,gold\n", encoding="utf-8")
    (work / "question.eml").write_text(  # docs/automations.md
        "From: Lea Dubois <lea@example.fr>\nTo: support@desk.example\nSubject: Facture de novembre\n"
        "Message-ID: <question-1@example.fr>\n\nBonjour\n", encoding="utf-8")
    (home / "sign-off.txt").write_text("Best regards,\nThe support team\n", encoding="utf-8")


def _env(desk, tmp_path: Path) -> dict[str, str]:
    config = tmp_path / "deskctl.yaml"
    config.write_text("clock: {override: true}\ntimezone: Europe/Paris\n", encoding="utf-8")
    home = tmp_path / "home"
    home.mkdir()
    return {"HOME": str(home), "DESKCTL_DATABASE_URL": desk.url, "DESKCTL_USER": "admin",
            "DESKCTL_CONFIG": str(config), "DESKCTL_NOW": NOW, "NO_COLOR": "1", "COLUMNS": "80"}


def _run(command: str, env: dict[str, str], work: Path) -> tuple[int, str]:
    """Run one example line: its deskctl stages in-process, the tools as processes, each
    stage's stdout the next one's stdin. Returns (exit code as with pipefail, stderr)."""
    from click.testing import CliRunner

    from deskctl import term
    from deskctl.cli import cli

    data, code, errors = "", 0, []
    segments = _segments(command)
    for stage, seg in enumerate(segments):
        seg = [env["HOME"] + token[1:] if token.startswith("~/") else token for token in seg]
        target = None
        if ">" in seg:
            at = seg.index(">")
            seg, target = seg[:at], seg[at + 1]
        if seg[0].rsplit("/", 1)[-1] == "deskctl":
            on_terminal = stage == len(segments) - 1 and target is None
            # Only stdout: a terminal on stdin and stderr would make bulk verbs ask to confirm.
            with mock.patch.object(term, "is_tty", lambda stream, tty=on_terminal: tty and stream is sys.stdout):
                result = CliRunner().invoke(cli, seg[1:], input=data, env=env, catch_exceptions=True)
            stage_code, out, err = result.exit_code, result.stdout, result.stderr
            if result.exception and not isinstance(result.exception, SystemExit):
                err += f"\nTraceback: {result.exception!r}"
        else:
            proc = subprocess.run(seg, input=data, capture_output=True, text=True, cwd=work, timeout=60)
            stage_code, out, err = proc.returncode, proc.stdout, proc.stderr
        if target is not None:
            if target != "/dev/null":
                (work / target).write_text(out, encoding="utf-8")
            out = ""
        data, errors = out, [*errors, err]
        code = stage_code or code
    return code, "".join(errors)


def test_every_readme_example_runs(desk, tmp_path, monkeypatch):
    env = _env(desk, tmp_path)
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    monkeypatch.chdir(work)
    _prepare_files(work, Path(env["HOME"]))
    code, err = _run("deskctl demo --conversations 1100 --seed 1", env, work)
    assert code == 0, err
    for cid in REOPENED_FIRST:  # one at a time: a bulk verb is atomic, and some may be open already
        for verb in ("reopen", "release"):  # live and unassigned, as a fresh request
            code, err = _run(f"deskctl {verb} {cid}", env, work)
            assert code in (0, 4), err
    problems = []
    for where, command in examples():
        allowed, _why = next((codes for fragment, codes in EXPECTED_CODES.items() if command.startswith(fragment)),
                             ({0}, ""))
        code, err = _run(command, env, work)
        crashed = "internal error" in err or "Traceback" in err
        if code not in allowed or crashed:
            problems.append(f"{where}: {command}\n  exit {code}: {err.strip()[:300]}")
    assert not problems, "\n".join(problems)


if __name__ == "__main__":  # list what the rule extracts: python tests/test_readme_examples.py
    for where, line in examples():
        print(f"{where}\t{line}")
    pytest.main([])  # pragma: no cover
