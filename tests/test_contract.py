"""The SPEC.md command surface: every command and subcommand exists and has help,
and the exit-code table is published in the root help."""

import pytest
from click.testing import CliRunner

from deskctl.cli import cli

# SPEC §2, command by command (the contract: these names never change).
SPEC_COMMANDS = [
    "db upgrade", "demo", "user add", "user list", "user show", "user set", "group add", "group list",
    "group add-member", "group remove-member", "location add", "location list", "contact add",
    "contact find", "contact show", "contact set", "attach", "availability", "availability set", "list",
    "show", "inbox", "claim", "next", "transfer", "note", "note edit", "note delete", "reply",
    "template add", "template list", "template show", "template delete", "pending", "resolve", "close",
    "qualify", "new", "reopen", "release", "merge", "watch", "unwatch", "ingest email", "ingest jsonl",
    "report", "audit", "daemon", "jobs list", "jobs run", "jobs history",
    # §9, §12 (second release)
    "config check", "config show", "attachment list", "attachment save", "contact import", "contact forget",
    "db backup",
    # §11: two-way channels
    "outbox list", "outbox show", "outbox retry", "outbox drop",
]

SPEC_OPTIONS = {
    "list": ["--status", "--assignee", "--unassigned", "--mine", "--group", "--location", "--channel", "--tag",
             "--priority", "--sla", "--watching", "--created-before", "--created-after", "--updated-before",
             "--query", "--sort", "--limit", "--format"],
    "show": ["--audit", "--no-notes"],
    "claim": ["--steal", "--dry-run", "--limit", "--all"],
    "transfer": ["--to", "--message", "--keep-informed", "--no-keep-informed", "--reason", "--from", "--limit",
                 "--dry-run"],
    "pending": ["--until", "--note"],
    "resolve": ["--until"],
    "close": ["--tag", "--reason", "--note", "--csat", "--status", "--transcript-to"],
    "qualify": ["--tag", "--untag", "--reason", "--priority", "--note"],
    "new": ["--channel", "--contact", "--subject", "--group", "--priority"],
    "merge": ["--into"],
    "reply": ["--template", "--cc", "--bcc", "--attach", "--via"],
    "outbox list": ["--status", "--channel"],
    "outbox retry": ["--failed"],
    "ingest email": ["--mbox", "--maildir", "--group", "--move"],
    "attachment save": ["--all", "-o"],
    "contact import": ["--dry-run"],
    "contact forget": ["--yes"],
    "report": ["--since", "--until", "--by", "--format"],
    "audit": ["--since", "--actor", "--kind"],
    "daemon": ["--once"],
    "jobs run": ["--now", "--force-future"],
    "demo": ["--conversations", "--seed"],
    "user add": ["--name", "--email", "--role", "--location", "--group"],
    "availability": ["--user", "--default"],
    "attach": ["--contact"],
}


def _help(words):
    return CliRunner().invoke(cli, [*words.split(), "--help"])


@pytest.mark.parametrize("words", SPEC_COMMANDS)
def test_spec_command_exists_with_help(words):
    result = _help(words)
    assert result.exit_code == 0, result.output
    assert "Usage: " in result.stdout
    # a real description, not just the usage line
    assert len(result.stdout.strip().splitlines()) > 3


@pytest.mark.parametrize("words, options", SPEC_OPTIONS.items())
def test_spec_options_exist(words, options):
    text = _help(words).stdout
    missing = [o for o in options if o not in text]
    assert not missing, f"{words}: missing {missing}"


def test_root_help_publishes_exit_codes_and_global_options():
    text = CliRunner().invoke(cli, ["--help"]).stdout
    for code in ("0", "1", "2", "3", "4", "5", "65", "75", "78"):
        assert f"\n    {code} " in text
    for option in ("--db", "--config", "--as", "--format", "DESKCTL_DATABASE_URL", "DESKCTL_USER"):
        assert option in text


def test_unknown_command_is_a_usage_error():
    result = CliRunner().invoke(cli, ["frobnicate"])
    assert result.exit_code == 2
