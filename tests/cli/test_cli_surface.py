"""The command line's surface (issue 13): global options after the subcommand (SPEC §9),
empty filter values, --format on every command that prints a record, availability of
another user, the tags report's key, progress bars on a terminal only, and shell
completion of values."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from datetime import timedelta

import pytest

from tests.factories import T0, make_conversation

# -- global options anywhere (bug 10, SPEC §9) -------------------------------------------


def test_global_options_after_the_subcommand(seeded, tmp_path):
    cid = make_conversation(seeded)
    # The environment points at another (empty) database: only the --db after the
    # subcommand reaches the seeded one.
    elsewhere = {"DESKCTL_DATABASE_URL": f"sqlite:///{tmp_path / 'elsewhere.db'}", "DESKCTL_USER": "nobody"}

    def run(*args):
        result = seeded.run(*args, env=elsewhere)
        assert result.exit_code == 0, result
        return result

    [change] = run("claim", cid, "--as", "alice", "--db", seeded.url, "--format", "json").json()
    assert change["assignee"] == "alice"
    [change] = run("transfer", cid, "--to", "group:support", "--db", seeded.url, "--as", "carol",
                   "--format", "json").json()
    assert change["group"] == "support" and change["assignee"] is None
    # nested groups, and commands whose --format is their own
    [user] = run("user", "add", "erin", "--db", seeded.url, "--as", "root", "--format", "json").json()
    assert user["handle"] == "erin"
    assert run("jobs", "history", "--db", seeded.url, "--as", "root", "--format", "json").json() == []
    assert run("ingest", "quarantine", "list", "--as", "root", "--db", seeded.url, "--format", "json").json() == []
    [group] = run("group", "add-member", "sales", "alice", "--db", seeded.url, "--as", "root",
                  "--format", "json").json()
    assert group["name"] == "sales"
    [mine] = run("availability", "set", "away", "--db", seeded.url, "--as", "alice", "--format", "json").json()
    assert mine["handle"] == "alice" and mine["availability"] == "away"
    # a command without an output format of its own, and -v after it
    result = run("watch", cid, "--as", "bob", "--db", seeded.url, "-v", "--format", "ids")
    assert result.stdout.split() == [str(cid)]
    assert seeded.scalar("SELECT count(*) FROM watchers WHERE conversation_id = :c", c=cid) == 2
    # a format given after the subcommand wins over DESKCTL_FORMAT
    result = seeded.run("list", "--format", "ids", env={"DESKCTL_FORMAT": "json"})
    assert result.exit_code == 0 and result.stdout.split() == [str(cid)]


def test_global_option_after_the_subcommand_overrides_the_one_before(seeded):
    cid = make_conversation(seeded)
    [change] = seeded.json("--as", "alice", "claim", cid, "--as", "bob")
    assert change["assignee"] == "bob"


def test_config_and_table_format_after_the_subcommand(seeded, tmp_path):
    config = tmp_path / "lunch.yaml"
    config.write_text("availability_states: [available, away, offline, lunch]\n")
    assert seeded.run("availability", "set", "lunch", as_="alice").exit_code == 2
    [mine] = seeded.json("availability", "set", "lunch", "--config", str(config), as_="alice")
    assert mine["availability"] == "lunch"
    result = seeded.ok("group", "list", "--format", "table", "--table-format", "github")
    assert result.stdout.startswith("|")
    for args in (["group", "list", "--table-format", "nonsense"], ["--table-format", "nonsense", "group", "list"]):
        result = seeded.run(*args)
        assert result.exit_code == 2 and "nonsense" in result.stderr and result.stdout == ""


def test_text_after_double_dash_is_not_a_global_option(seeded):
    cid = make_conversation(seeded)
    [note] = seeded.ok("--as", "alice", "note", cid, "--format", "json", "--", "--as").json()
    assert note["text"] == "--as" and note["author"] == "alice"
    # the note group hands options to `add`: a global option between id and text is one
    [note] = seeded.json("note", cid, "--as", "bob", "Called back")
    assert note["text"] == "Called back" and note["author"] == "bob"


def test_subcommand_help_lists_the_global_options(desk):
    help_text = desk.ok("claim", "--help").stdout
    for option in ("--as HANDLE", "--db URL", "--config FILE", "--format", "--table-format", "--verbose"):
        assert option in help_text


# -- empty filter values (bug 7) -------------------------------------------------------

FILTER_VALUES = ["--status", "--assignee", "--group", "--location", "--channel", "--tag", "--priority", "--sla",
                 "--created-before", "--created-after", "--updated-before", "--query"]


def test_an_empty_filter_value_is_a_usage_error(seeded):
    make_conversation(seeded)
    before = seeded.dump()
    for option in FILTER_VALUES:
        for value in ("", " "):
            result = seeded.run("list", option, value)
            assert result.exit_code == 2 and result.stdout == "", (option, value, result)
            assert option in result.stderr
    for args in (["list", "--status", ","], ["list", "--status", "new", "--tag", ""],
                 ["report", "volume", "--group", ""], ["close", "--query", ""], ["transfer", "--to", "group:sales",
                                                                                  "--assignee", ""]):
        result = seeded.run(*args)
        assert result.exit_code == 2 and result.stdout == "", (args, result)
    assert seeded.dump() == before


# -- --format on every command that prints a record (bug 8) ----------------------------


def test_directory_changes_print_their_record_in_any_format(seeded):
    [location] = seeded.json("location", "add", "nantes")
    assert location == {"id": location["id"], "name": "nantes", "groups": 0, "users": 0}
    [group] = seeded.json("group", "add", "returns", "--location", "nantes")
    assert group == {"id": group["id"], "name": "returns", "location": "nantes", "members": 0}
    [group] = seeded.json("group", "add-member", "returns", "alice")
    assert group["name"] == "returns" and group["members"] == 1
    [group] = seeded.json("group", "remove-member", "returns", "alice")
    assert group["members"] == 0
    [mine] = seeded.json("availability", "set", "away", as_="alice")
    assert mine == {"handle": "alice", "availability": "away", "default_availability": "available"}
    result = seeded.ok("location", "add", "lille", fmt="csv")
    assert result.stdout.splitlines()[0] == "id,name,groups,users"
    assert "added location lille" in result.stderr


# -- another user's availability (bug 9) -----------------------------------------------


def test_reading_another_users_availability_needs_a_supervisor(seeded):
    result = seeded.run("--as", "alice", "availability", "--user", "bob")
    assert result.exit_code == 5 and result.stdout == "" and "supervisor" in result.stderr
    assert seeded.json("availability", "--user", "alice", as_="alice")[0]["handle"] == "alice"
    assert seeded.json("availability", "--user", "bob", as_="carol")[0]["handle"] == "bob"
    assert seeded.json("availability", "--user", "bob", as_="root")[0]["handle"] == "bob"


# -- the tags report's key (bug 12) ----------------------------------------------------


def test_report_tags_is_by_tag_by_default(seeded):
    for tags in (("refund",), ("refund", "vip"), ()):
        make_conversation(seeded, tags=tags, status="closed", created_at=T0, resolved_at=T0 + timedelta(hours=2),
                          closed_at=T0 + timedelta(hours=2))
    rows = seeded.json("report", "tags", "--since", "2026-11-16", "--until", "2026-11-23")
    assert [list(r)[0] for r in rows] == ["tag"] * len(rows)
    assert {r["tag"]: r["conversations"] for r in rows} == {"refund": 2, "vip": 1, None: 1}
    assert "--by key (default tag)" in seeded.ok("report", "tags", "--help").stdout


# -- progress bars: stderr, a terminal, long work (SPEC §9) -----------------------------

BAR_MARKS = ("[#", "[-", "%")


def test_no_progress_bar_when_stderr_is_not_a_terminal(desk):
    result = desk.ok("demo", "--conversations", "300", env={"DESKCTL_PROGRESS_AFTER": "0"}, fmt="json")
    assert not any(mark in result.stderr for mark in BAR_MARKS), result.stderr
    assert result.stderr.count("\n") == 1 and "demo desk" in result.stderr
    result = desk.ok("qualify", "--all", "--tag", "checked", "--yes", as_="admin",
                     env={"DESKCTL_PROGRESS_AFTER": "0"}, fmt="ids")
    assert result.stderr == "qualified 300 conversations\n"


def _on_a_terminal(args, env) -> tuple[int, str, str]:
    """Run deskctl with stderr on a pseudo-terminal; (exit code, stdout, terminal output)."""
    leader, follower = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "deskctl", *args], stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=follower, env=env)
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 4096)
        except OSError:  # EIO: the process closed its end
            break
        if not data:
            break
        chunks.append(data)
    stdout = process.stdout.read().decode()
    process.wait(timeout=120)
    os.close(leader)
    return process.returncode, stdout, b"".join(chunks).decode(errors="replace")


def _subprocess_env(desk, **extra) -> dict:
    env = {key: value for key, value in os.environ.items() if not key.startswith("DESKCTL_")}
    env.update(DESKCTL_DATABASE_URL=desk.url, DESKCTL_USER="admin", **extra)
    return env


def test_progress_bar_on_a_terminal_for_long_work(desk):
    code, stdout, terminal = _on_a_terminal(["demo", "--conversations", "2000", "--format", "ids"],
                                            _subprocess_env(desk, DESKCTL_PROGRESS_AFTER="0"))
    assert code == 0, terminal
    assert "conversations  [" in terminal and "100%" in terminal
    assert not any(mark in stdout for mark in BAR_MARKS)  # stdout (a pipe) has only the records
    code, _, terminal = _on_a_terminal(["qualify", "--all", "--tag", "checked", "--yes", "--format", "ids"],
                                       _subprocess_env(desk, DESKCTL_PROGRESS_AFTER="0"))
    assert code == 0 and "qualify  [" in terminal and "100%" in terminal
    assert "qualified 2000 conversations" in terminal


def test_short_work_shows_no_bar_even_on_a_terminal(desk):
    code, _, terminal = _on_a_terminal(["demo", "--conversations", "50", "--format", "ids"], _subprocess_env(desk))
    assert code == 0 and "demo desk" in terminal
    assert not any(mark in terminal for mark in BAR_MARKS), terminal


# -- completion of values (Click's shell_complete) -------------------------------------


def _complete(line: str, env: dict | None = None, *, real: bool = False) -> list[str]:
    """What bash completion offers for the last word of `line` (the env var protocol):
    `deskctl.cli:main` in-process, as for every other command here; `real` runs it as the
    shell does, `python -m deskctl` in a process of its own."""
    words = line.split(" ")
    protocol = {"_DESKCTL_COMPLETE": "bash_complete", "COMP_WORDS": line, "COMP_CWORD": str(len(words) - 1)}
    if real:
        full_env = {key: value for key, value in os.environ.items() if not key.startswith("DESKCTL_")}
        full_env.update(env or {})
        full_env.update(protocol)
        result = subprocess.run([sys.executable, "-m", "deskctl"], env=full_env, capture_output=True, text=True,
                                timeout=60)
        assert result.returncode == 0 and result.stderr == "", result
        stdout = result.stdout
    else:
        from click.testing import CliRunner

        from deskctl.cli import cli

        unset = {key: None for key in os.environ if key.startswith("DESKCTL_")}
        result = CliRunner().invoke(cli, [], prog_name="deskctl", env={**unset, **(env or {}), **protocol})
        assert result.exit_code == 0 and result.stderr == "", (result, result.stderr, result.exception)
        stdout = result.stdout
    return [line.partition(",")[2] for line in stdout.splitlines() if line]


def test_completion_of_fixed_vocabularies(tmp_path):
    # No database file (its directory exists: a missing one is a configuration error).
    env = {"DESKCTL_DATABASE_URL": f"sqlite:///{tmp_path / 'none.db'}"}
    assert _complete("deskctl list --status ", env, real=True) == ["new", "open", "pending", "resolved", "closed"]
    assert _complete("deskctl list --status new,p", env) == ["new,pending"]
    assert _complete("deskctl close 3 --priority u", env) == ["urgent"]
    assert _complete("deskctl list --priority ", env) == ["low", "medium", "high", "urgent"]
    assert _complete("deskctl list --sla ", env) == ["ok", "warning", "breached", "none"]
    assert _complete("deskctl jobs run ", env) == ["sla-sweep", "boomerang", "auto-close", "auto-unassign",
                                                   "notify", "nightly-export", "route", "retention", "mail-poll"]
    assert _complete("deskctl list --format j", env) == ["json", "jsonl"]
    assert _complete("deskctl claim 3 --format ", env) == ["table", "csv", "tsv", "json", "jsonl", "ids"]
    assert "conversations" in _complete("deskctl report ", env)
    assert _complete("deskctl report tags --by l", env) == ["location"]
    assert _complete("deskctl list --channel s", env) == ["sms", "social"]
    assert _complete("deskctl availability set a", env) == ["available", "away"]
    assert _complete("deskctl user add x --role s", env) == ["supervisor"]
    assert "github" in _complete("deskctl list --table-format g", env)
    # no database: names complete to nothing, and no database file is created
    assert _complete("deskctl list --group ", env) == []
    assert _complete("deskctl --as ", env) == []
    assert not (tmp_path / "none.db").exists()


def test_completion_of_names_from_the_database(seeded):
    seeded.ok("template", "add", "greeting", "Hello {contact.name}", as_="carol")
    seeded.ok("template", "add", "goodbye", "Bye", "--personal", as_="alice")
    seeded.ok("template", "add", "private", "Mine", "--personal", as_="bob")
    env = {"DESKCTL_DATABASE_URL": seeded.url, "DESKCTL_USER": "alice"}
    assert _complete("deskctl list --group ", env, real=True) == ["billing", "sales", "support"]
    assert _complete("deskctl list --assignee ", env) == ["alice", "bob", "carol", "dave", "root"]
    assert _complete("deskctl claim 3 --as c", env) == ["carol"]
    assert _complete("deskctl --as r", env) == ["root"]
    assert _complete("deskctl group add-member s", env) == ["sales", "support"]
    assert _complete("deskctl group add-member sales d", env) == ["dave"]
    assert _complete("deskctl list --location ", env) == ["lyon", "paris"]
    assert _complete("deskctl transfer 3 --to group:s", env) == ["group:sales", "group:support"]
    assert _complete("deskctl reply 3 --template g", env) == ["goodbye", "greeting"]
    assert _complete("deskctl template show ", env) == ["goodbye", "greeting"]
    # the database named after the subcommand is the one read
    other = {"DESKCTL_DATABASE_URL": "sqlite:////nonexistent/desk.db"}
    assert _complete(f"deskctl list --db {seeded.url} --group b", other) == ["billing"]


def test_completion_script_for_each_shell():
    for shell in ("bash", "zsh", "fish"):
        env = {key: value for key, value in os.environ.items() if not key.startswith("DESKCTL_")}
        env["_DESKCTL_COMPLETE"] = f"{shell}_source"
        result = subprocess.run([sys.executable, "-m", "deskctl"], env=env, capture_output=True, text=True,
                                timeout=60)
        assert result.returncode == 0 and "_DESKCTL_COMPLETE" in result.stdout, shell


@pytest.mark.parametrize("line", ["deskctl list --status ", "deskctl --db nope:// list --group "])
def test_completion_never_fails_loudly(line):
    env = {"DESKCTL_CONFIG": "/nonexistent/config.yaml"}
    assert isinstance(_complete(line, env), list)


# -- the root help loads no command (issue 15) -----------------------------------------

_LOADED_AFTER_HELP = """
import sys
from deskctl.cli import main
sys.argv = ["deskctl", *sys.argv[1:]]
try:
    main()
except SystemExit:
    pass
sys.stderr.write("\\n".join(sorted(sys.modules)))
"""


def _modules_after(*args) -> tuple[str, set[str]]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("DESKCTL_")}
    result = subprocess.run([sys.executable, "-c", _LOADED_AFTER_HELP, *args], env=env, capture_output=True,
                            text=True, timeout=60)
    return result.stdout, set(result.stderr.split())


def test_root_help_imports_no_command_module_nor_the_database_layer():
    stdout, loaded = _modules_after("--help")
    assert "Commands:" in stdout and "claim" in stdout and "Take responsibility" in stdout
    heavy = sorted(m for m in loaded if m.startswith(("deskctl.commands", "deskctl.services", "deskctl.models",
                                                       "deskctl.db", "sqlalchemy", "tabulate")))
    assert heavy == []


def test_a_command_help_imports_only_that_command():
    stdout, loaded = _modules_after("claim", "--help")
    assert "Usage: deskctl claim" in stdout
    commands = {m for m in loaded if m.startswith("deskctl.commands.") and not m.startswith("deskctl.commands._")}
    assert commands <= {"deskctl.commands.claim", "deskctl.commands.lifecycle"}, commands


def test_every_command_in_the_table_loads():
    from deskctl.cli import COMMANDS, cli

    ctx = cli.make_context("deskctl", ["--help"], resilient_parsing=True)
    for name, (_, line) in COMMANDS.items():
        assert cli.get_command(ctx, name) is not None, name
        assert line.endswith(".") and len(line) <= 60, name
