"""Security: CSV formula injection (tsv keeps values as they are, SPEC §9), inert SQL
metacharacters in filters, the database password kept out of errors and logs, private file
modes, internal notes kept from customers."""

from __future__ import annotations

import csv
import io
import os
import re
import stat
import subprocess
from datetime import timedelta

import pytest

from deskctl.models import Note
from tests.factories import T0, make_conversation
from tests.reliability.conftest import command_available, deskctl_argv, require_commands

FORMULA = ("=", "+", "-", "@", "\t", "\r")
NUMBER = re.compile(r"^[+-]?\d+(\.\d+)?([eE][+-]?\d+)?$")
EVIL = ["=HYPERLINK(\"http://evil.example\",\"x\")", "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A9)",
        "\t=1+1", " =1+1"]
SECRET = "S3cretPa55w0rd"


def _formula_cells(text: str, delimiter: str) -> list[str]:
    bad = []
    for row in csv.reader(io.StringIO(text), delimiter=delimiter):
        for cell in row:
            if cell.startswith(FORMULA) and not NUMBER.match(cell):
                bad.append(cell)
    return bad


def _evil_desk(desk):
    desk.ok("user", "add", "mallory", "--name", EVIL[0], "--email", "mallory@desk.example", "--location", "paris",
            "--group", "billing")
    cids = []
    for i, text in enumerate(EVIL):
        cids.append(make_conversation(desk, subject=text, tags=(f"-tag{i}",), assignee="alice",
                                      contact_email=f"evil{i}@example.fr", status="open", reason=text))
    desk.ok("template", "add", "evil", EVIL[1])
    return cids


# Each listing command, its arguments, and which command module must exist for it.
def _listings(cids):
    first = cids[0]
    return [
        ("list", ["list", "--all"] if False else ["list"]),
        ("user", ["user", "list"]),
        ("group", ["group", "list"]),
        ("location", ["location", "list"]),
        ("template", ["template", "list"]),
        ("show", ["show", str(first)]),
        ("inbox", ["inbox", "--user", "alice"]),
        ("audit", ["audit"]),
        ("contact", ["contact", "find", "evil"]),
        ("jobs", ["jobs", "history"]),
        ("report", ["report", "conversations", "--since", "30d"]),
        ("report", ["report", "tags", "--since", "30d"]),
        ("report", ["report", "agents", "--since", "30d"]),
    ]


@pytest.mark.parametrize("fmt,delimiter", [("csv", ",")])
@pytest.mark.usefixtures("seeded")  # the directory of seed_directory
def test_no_csv_output_starts_a_cell_with_a_formula(desk, fmt, delimiter):
    cids = _evil_desk(desk)
    desk.ok("close", *map(str, cids), "--tag", "=evil", "--reason", EVIL[3]) if command_available("close") else None
    ran = 0
    for module, argv in _listings(cids):
        if not command_available(module):
            continue
        result = desk.run(*argv, fmt=fmt)
        assert result.exit_code == 0, (argv, result)
        assert _formula_cells(result.stdout, delimiter) == [], (argv, result.stdout)
        ran += 1
    assert ran >= 5
    # the evil text is there, neutralised, not dropped
    out = desk.ok("list", fmt=fmt).stdout
    assert "'=HYPERLINK" in out and "'@SUM(A1:A9)" in out


@pytest.mark.usefixtures("seeded")  # the directory of seed_directory
def test_tsv_keeps_the_formula_looking_text_as_it_is(desk):
    from deskctl.output import tsv_unescape

    _evil_desk(desk)
    lines = desk.ok("list", fmt="tsv").stdout.splitlines()
    subject = lines[0].split("\t").index("subject")
    assert sorted(tsv_unescape(line.split("\t")[subject]) for line in lines[1:]) == sorted(EVIL)


@pytest.mark.usefixtures("seeded")  # the directory of seed_directory
def test_nightly_export_csv_files_are_neutralised(desk):
    require_commands("jobs", "close")
    cids = _evil_desk(desk)
    desk.now = (T0 + timedelta(hours=2)).isoformat()
    desk.ok("close", *map(str, cids), "--tag", "=evil", "--reason", EVIL[3])
    desk.now = (T0 + timedelta(days=1, hours=3)).isoformat()  # the next night: --now is not in the desk's future
    desk.ok("jobs", "run", "nightly-export", "--now", (T0 + timedelta(days=1, hours=3)).isoformat())
    export_dir = desk.tmp_path / "data" / "deskctl" / "exports"
    files = [p for p in export_dir.rglob("*") if p.suffix == ".csv"]
    assert files, list(export_dir.rglob("*"))
    for path in files:
        assert _formula_cells(path.read_text(encoding="utf-8"), ",") == [], path


INJECTIONS = ["' OR '1'='1", "x'; DROP TABLE conversations; --", "\" OR 1=1 --", "1) OR (1=1", "%", "_",
              "\\", "%' OR 'a' LIKE '%", "*", "'--"]


@pytest.mark.usefixtures("seeded")  # the directory of seed_directory
def test_filter_values_with_sql_metacharacters_are_inert(desk):
    plain = make_conversation(desk, subject="Invoice question")
    odd = {value: make_conversation(desk, subject=f"literal {value} here", contact_email=f"odd{i}@example.fr")
           for i, value in enumerate(INJECTIONS)}
    before = desk.dump()
    for value in INJECTIONS:
        # --query is a word search: a value with no word is a usage error, one with words
        # finds only subjects holding every word, never the plain one nor an error.
        result = desk.run("list", "--query", value, fmt="json")
        assert result.exit_code in (0, 2), (value, result)
        if result.exit_code == 0:
            found = {r["id"] for r in result.json()}
            assert found <= set(odd.values()) and plain not in found, value
            assert odd[value] in found, value
        for option in ("--tag", "--assignee", "--group", "--location", "--channel", "--status"):
            result = desk.run("list", option, value, fmt="json")
            assert result.exit_code in (0, 2, 3), (option, value, result)
            if result.exit_code == 0:
                assert result.json() == [], (option, value, result)
    assert desk.dump() == before
    assert desk.scalar("SELECT count(*) FROM conversations") == len(INJECTIONS) + 1


def _refused_port():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again: connecting to it is refused


def test_database_password_never_printed_when_the_database_refuses():
    from click.testing import CliRunner

    from deskctl.cli import cli

    url = f"postgresql://desk:{SECRET}@127.0.0.1:{_refused_port()}/desk"
    ran = 0
    for argv in (["list"], ["db", "upgrade"], ["db", "check"], ["user", "list"], ["jobs", "history"],
                 ["show", "1"], ["claim", "1"], ["ingest", "email", "-"]):
        if not command_available(argv[0]):
            continue
        verbose = ["-v"] if ran % 2 else []
        result = CliRunner().invoke(cli, [*verbose, "--db", url, *argv], env={"DESKCTL_USER": "root"},
                                    input="")
        assert result.exit_code == 75, (argv, result.exit_code, result.stderr)
        assert SECRET not in result.stderr + result.stdout, argv
        assert "***" in result.stderr
        ran += 1
    assert ran >= 4


def test_database_password_never_printed_by_the_real_program(tmp_path):
    """The real process with -v (debug logging on), env var and config file routes."""
    url = f"postgresql+psycopg://desk:{SECRET}@127.0.0.1:{_refused_port()}/desk"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DESKCTL_")}
    env["DESKCTL_USER"] = "root"
    config = tmp_path / "secret.yaml"
    config.write_text(f"database: {{url: \"{url}\"}}\n")
    runs = [
        (["-v", "--db", url, "list"], env),
        (["list"], {**env, "DESKCTL_DATABASE_URL": url}),
        (["-v", "--config", str(config), "db", "check"], env),
        (["--db", f"nosuchdb://desk:{SECRET}@host/desk", "list"], env),
    ]
    for args, run_env in runs:
        proc = subprocess.run(deskctl_argv(*args), capture_output=True, text=True, env=run_env, timeout=60,
                              cwd=tmp_path)
        assert proc.returncode in (2, 75, 78), (args, proc.returncode, proc.stderr)
        assert SECRET not in proc.stderr + proc.stdout, (args, proc.stderr)
        assert "Traceback" not in proc.stderr or "-v" in args


def test_a_malformed_database_url_is_a_usage_error_without_the_password(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DESKCTL_")}
    env["DESKCTL_USER"] = "root"
    proc = subprocess.run(deskctl_argv("--db", f"postgresql://desk:{SECRET}@127.0.0.1:notaport/desk", "list"),
                          capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path)
    assert SECRET not in proc.stderr + proc.stdout
    assert proc.returncode == 2, proc.stderr


@pytest.mark.usefixtures("seeded")  # the directory of seed_directory
def test_csv_cells_with_a_carriage_return_are_quoted(desk):
    make_conversation(desk, subject="first line\r=1+1")
    out = desk.ok("list", fmt="csv").stdout
    rows = list(csv.reader(io.StringIO(out, newline="")))
    assert len(rows) == 2 and rows[1][1] == "first line\r=1+1", rows
    # tsv escapes it (\r), so the row stays one line and the value reads back exactly
    lines = desk.ok("list", fmt="tsv").stdout.split("\n")
    assert len(lines) == 3 and lines[1].split("\t")[1] == "first line\\r=1+1", lines


@pytest.mark.usefixtures("seeded")  # the directory of seed_directory
def test_database_password_kept_out_of_jobs_history(desk):
    require_commands("jobs")
    # A job that fails because its database went away must not store the URL's password.
    desk.ok("jobs", "run", "sla-sweep")
    history = desk.ok("jobs", "history", fmt="json").stdout
    assert SECRET not in history


def _private(path) -> bool:
    mode = stat.S_IMODE(os.stat(path).st_mode)
    return mode & ~0o640 == 0


@pytest.mark.parametrize("umask", [0o022, 0o002])
@pytest.mark.usefixtures("seeded")  # the directory of seed_directory
def test_stored_attachments_are_not_world_readable(desk, tmp_path, umask):
    cid = make_conversation(desk, assignee="alice")
    source = tmp_path / "contract.pdf"
    source.write_bytes(b"%PDF-1.4 private" * 100)
    old = os.umask(umask)
    try:
        desk.ok("reply", cid, "Here it is", "--attach", source, as_="alice")
    finally:
        os.umask(old)
    stored = [p for p in (desk.tmp_path / "data" / "deskctl" / "attachments").rglob("*") if p.is_file()]
    assert stored
    for path in stored:
        assert _private(path), (path, oct(os.stat(path).st_mode))


@pytest.mark.parametrize("umask", [0o022, 0o002])
@pytest.mark.usefixtures("seeded")  # the directory of seed_directory
def test_export_files_are_not_world_readable(desk, umask):
    require_commands("jobs")
    make_conversation(desk)
    old = os.umask(umask)
    try:
        desk.ok("jobs", "run", "nightly-export", "--now", (T0 + timedelta(days=1, hours=3)).isoformat())
    finally:
        os.umask(old)
    files = [p for p in (desk.tmp_path / "data" / "deskctl" / "exports").rglob("*") if p.is_file()]
    assert files
    for path in files:
        assert _private(path), (path, oct(os.stat(path).st_mode))


NOTE = "INTERNAL-ONLY: customer is on the fraud watch list"


def _with_note(desk):
    cid = make_conversation(desk, assignee="alice", status="open")
    if command_available("note"):
        desk.ok("note", cid, NOTE, as_="alice")
    else:
        with desk.session() as s:
            s.add(Note(conversation_id=cid, author_id=None, text=NOTE, created_at=T0, updated_at=T0))
    return cid


def _outbox_text(desk) -> str:
    rows = desk.rows("SELECT subject, body, raw FROM outbox")
    return "\n".join(f"{r['subject']}\n{r['body']}\n{bytes(r['raw'] or b'').decode('utf-8', 'replace')}"
                     for r in rows)


@pytest.mark.usefixtures("seeded")  # the directory of seed_directory
def test_internal_notes_never_reach_a_reply_or_a_transcript(desk):
    cid = _with_note(desk)
    desk.ok("reply", cid, "We are looking into it", as_="alice")
    from sqlalchemy.orm import Session

    from deskctl.config import load_settings
    from deskctl.services.outbound import transcripts as mail
    settings = load_settings(None, desk.url)
    with Session(desk.engine) as session:
        mail.queue_transcript(session, cid, "lea@example.fr", actor="alice", now=T0 + timedelta(hours=1),
                              settings=settings)
        session.commit()
    text = _outbox_text(desk)
    assert "We are looking into it" in text  # the transcript is really there
    assert desk.scalar("SELECT count(*) FROM outbox") == 2
    assert "fraud watch list" not in text


@pytest.mark.usefixtures("seeded")  # the directory of seed_directory
def test_close_transcript_to_carries_no_notes(desk):
    require_commands("close")
    cid = _with_note(desk)
    desk.ok("reply", cid, "Answer for you", as_="alice")
    desk.ok("close", cid, "--transcript-to", "lea@example.fr", "--note", "Closed after the answer", as_="alice")
    text = _outbox_text(desk)
    assert "Answer for you" in text and "Closed after the answer" in text
    assert "fraud watch list" not in text


@pytest.mark.usefixtures("seeded")  # the directory of seed_directory
def test_template_reply_cannot_pull_in_notes(desk):
    cid = _with_note(desk)
    for field in ("{conversation.notes}", "{note.text}", "{conversation.closing_note}", "{notes}"):
        result = desk.run("template", "add", f"t{abs(hash(field))}", f"Hi {field}")
        if result.exit_code != 0:
            continue
        result = desk.run("reply", cid, "--template", f"t{abs(hash(field))}", as_="alice")
        assert result.exit_code in (0, 2, 3), result
    assert "fraud watch list" not in _outbox_text(desk)


@pytest.mark.usefixtures("seeded")  # the directory of seed_directory
def test_customer_export_has_no_notes(desk):
    require_commands("jobs", "close")
    cid = _with_note(desk)
    desk.now = (T0 + timedelta(hours=2)).isoformat()
    desk.ok("close", cid, as_="alice")
    desk.now = (T0 + timedelta(days=1, hours=3)).isoformat()  # the next night: --now is not in the desk's future
    desk.ok("jobs", "run", "nightly-export", "--now", (T0 + timedelta(days=1, hours=3)).isoformat())
    for path in (desk.tmp_path / "data" / "deskctl" / "exports").rglob("*"):
        if path.is_file():
            assert "fraud watch list" not in path.read_text(encoding="utf-8", errors="replace"), path


# -- role and location checks: a table over commands × roles ---------------------------
# Roles: root (admin), carol (supervisor, paris), alice (agent, paris, billing),
# dave (agent, lyon: P is outside his location), nobody (not a user).
# {P} is a paris/billing conversation claimed by bob; every row gets a fresh one.
ROLES = ("root", "carol", "alice", "dave", "nobody")
ADMIN_ONLY = {"root": {0}, "carol": {5}, "alice": {5}, "dave": {5}, "nobody": {5}}
PERMISSIONS = [
    (["user", "add", "zed{n}", "--role", "agent"], ADMIN_ONLY),
    (["user", "set", "bob", "--role", "agent"], ADMIN_ONLY),
    (["group", "add", "g{n}"], ADMIN_ONLY),
    (["location", "add", "l{n}"], ADMIN_ONLY),
    (["group", "add-member", "sales", "bob"], ADMIN_ONLY),
    (["list"], {"root": {0}, "carol": {0}, "alice": {0}, "dave": {0}, "nobody": {5}}),
    (["show", "{P}"], {"root": {0}, "carol": {0}, "alice": {0}, "dave": {0, 3, 5}, "nobody": {5}}),  # reads: spec silent
    (["claim", "{P}"], {"root": {4}, "carol": {4}, "alice": {4}, "dave": {5}, "nobody": {5}}),
    (["claim", "{P}", "--steal"], {"root": {0}, "carol": {0}, "alice": {5}, "dave": {5}, "nobody": {5}}),
    (["transfer", "{P}", "--to", "group:support"], {"root": {0}, "carol": {0}, "alice": {0}, "dave": {5},
                                                     "nobody": {5}}),
    (["release", "{P}"], {"root": {0}, "carol": {0}, "alice": {4, 5}, "dave": {5}, "nobody": {5}}),
    (["note", "{P}", "internal"], {"root": {0}, "carol": {0}, "alice": {0}, "dave": {5}, "nobody": {5}}),
    (["reply", "{P}", "hello"], {"root": {0}, "carol": {0}, "alice": {0}, "dave": {5}, "nobody": {5}}),
    (["pending", "{P}", "--until", "2d"], {"root": {0}, "carol": {0}, "alice": {0}, "dave": {5}, "nobody": {5}}),
    (["resolve", "{P}"], {"root": {0}, "carol": {0}, "alice": {0}, "dave": {5}, "nobody": {5}}),
    (["close", "{P}"], {"root": {0}, "carol": {0}, "alice": {0}, "dave": {5}, "nobody": {5}}),
    (["qualify", "{P}", "--tag", "x"], {"root": {0}, "carol": {0}, "alice": {0}, "dave": {5}, "nobody": {5}}),
    (["watch", "{P}"], {"root": {0}, "carol": {0}, "alice": {0}, "dave": {5}, "nobody": {5}}),
    (["audit", "{P}"], {"root": {0}, "carol": {0}, "alice": {0}, "dave": {0, 3, 5}, "nobody": {5}}),
    (["inbox", "--user", "bob"], {"root": {0}, "carol": {0}, "alice": {5}, "dave": {5}, "nobody": {5}}),
    (["availability", "set", "away", "--user", "bob"], {"root": {0}, "carol": {0}, "alice": {5}, "dave": {5},
                                                          "nobody": {5}}),
    (["merge", "{P}", "--into", "{Q}"], {"root": {0}, "carol": {0}, "alice": {0, 5}, "dave": {5}, "nobody": {5}}),
]


@pytest.mark.usefixtures("seeded")  # the directory of seed_directory
def test_every_verb_checks_role_and_location(desk):
    """Each cell runs on fresh conversations; a refused call (5) changes nothing."""
    desk.now = (T0 + timedelta(hours=1)).isoformat()
    cells = 0
    wrong = []
    for n, (template, expected) in enumerate(PERMISSIONS):
        if not command_available(template[0]):
            continue
        for role in ROLES:
            p = make_conversation(desk, assignee="bob", status="open", contact_email=f"p{n}{role}@example.fr")
            q = make_conversation(desk, contact_email=f"p{n}{role}@example.fr")
            argv = [a.format(n=f"{n}{role}", P=p, Q=q) for a in template]
            before = desk.dump()
            result = desk.run(*argv, as_=role)
            cells += 1
            assert result.exit_code != 1 and "Traceback" not in result.stderr, (argv, role, result)
            if result.exit_code not in expected[role]:
                wrong.append((" ".join(argv), role, result.exit_code, result.stderr.strip()[:120]))
            if result.exit_code != 0:
                assert desk.dump() == before, (argv, role, "refused but changed the database")
    assert cells >= 50
    assert wrong == []
