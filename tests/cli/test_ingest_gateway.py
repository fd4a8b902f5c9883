"""`deskctl ingest` as a mail server's gateway (SPEC §9, §11 `--move`, §13 size caps):
exit only 0, 65 or 75, nothing on stdout from a failing run, a Maildir moved to cur/
once stored, over-cap input quarantined on disk, concurrent PostgreSQL ingests quiet,
progress on a terminal only. Exit codes are checked on the installed program in real
child processes, as a mail server runs it."""

from __future__ import annotations

import json
import mailbox
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

NOW = "2026-11-23T12:00:00+00:00"
DESKCTL = str(Path(sys.executable).parent / "deskctl")
SMALL_LIMITS = ("clock: {override: true}\n"
                "limits: {message_bytes: 4KB, header_bytes: 1KB, recipients: 5, subject_chars: 50}\n")


@pytest.fixture
def gw(seeded):
    seeded.now = NOW
    return seeded


def mail(n: int = 1, *, sender: str = "lea@example.fr", subject: str = "Hello", headers: str = "",
         body: str = "Bonjour\n") -> bytes:
    return (f"From: Léa <{sender}>\nTo: support@example.com\nSubject: {subject}\n"
            f"Message-ID: <m{n}@example.fr>\n{headers}\n{body}").encode()


def jline(n: int, **extra) -> str:
    record = {"channel": "chat", "thread": f"t-{n}", "id": f"j{n}", "from": {"email": "lea@example.fr"},
              "text": "hello"}
    record.update(extra)
    return json.dumps(record)


def config(tmp_path: Path, text: str, name: str = "deskctl.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def real(desk, *args, input: bytes | None = None, **env) -> subprocess.CompletedProcess:
    """The installed `deskctl` in a child process, as an MTA pipe runs it."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("DESKCTL_")}
    full.update({"DESKCTL_DATABASE_URL": desk.url, "DESKCTL_NOW": NOW, "DESKCTL_CONFIG": desk.replay_config()})
    full.update({k: str(v) for k, v in env.items()})
    return subprocess.run([DESKCTL, *[str(a) for a in args]], input=input, capture_output=True, env=full,
                          cwd=desk.tmp_path, timeout=120)


def small(desk, *args, **kwargs):
    """In process, with the small caps of SMALL_LIMITS."""
    path = config(desk.tmp_path, SMALL_LIMITS, "small.yaml")
    return desk.run(*args, env={"DESKCTL_CONFIG": str(path)}, **kwargs)


# -- 1, 2: exit only 0, 65 or 75; nothing on stdout when failing ----------------------------
def test_a_config_typo_defers_the_mail_instead_of_bouncing_it(gw, tmp_path):
    typo = config(tmp_path, "timezone: Europe/Pariss\n")
    before = gw.dump()
    for args, data in ((("ingest", "email", "-"), mail()), (("ingest", "jsonl", "-"), jline(1).encode())):
        proc = real(gw, *args, input=data, DESKCTL_CONFIG=typo)
        assert proc.returncode == 75, proc.stderr
        assert proc.stdout == b""
        assert b"Europe/Pariss" in proc.stderr and b"Traceback" not in proc.stderr
    assert gw.dump() == before


@pytest.mark.parametrize("url", ["postgresql+psycopg://postgres@127.0.0.1:1/nowhere", "sqlite:///{tmp}"])
def test_an_unreachable_database_exits_75_with_nothing_on_stdout(tmp_path, url):
    from tests.conftest import Desk

    # port 1 is closed; a directory is no SQLite database file
    desk = Desk(url.format(tmp=tmp_path), "none", tmp_path)
    for fmt in ("tsv", "csv", "json", "jsonl"):
        for args, data in ((("ingest", "email", "-"), mail()), (("ingest", "jsonl", "-"), jline(1).encode()),
                           (("ingest", "email", "--maildir", _maildir(tmp_path, 2)), None)):
            proc = real(desk, *args, "--format", fmt, input=data)
            assert proc.returncode == 75, proc.stderr
            assert proc.stdout == b"", (fmt, args, proc.stdout)
            assert b"[exit 75: the mail server keeps the input and retries]" in proc.stderr


def _fault(tmp_path: Path) -> Path:
    """A sitecustomize that turns the size check into a crash: an internal error."""
    folder = tmp_path / "fault"
    folder.mkdir(exist_ok=True)
    (folder / "sitecustomize.py").write_text(
        "import deskctl.services.inbound.intake as intake\n"
        "def crash(*args, **kwargs):\n"
        "    raise RuntimeError('injected fault')\n"
        "intake.email_over_limits = crash\n", encoding="utf-8")
    return folder


def test_an_internal_error_defers_the_mail(gw, tmp_path):
    before = gw.dump()
    proc = real(gw, "ingest", "email", "-", input=mail(), PYTHONPATH=_fault(tmp_path))
    assert proc.returncode == 75, proc.stderr
    assert proc.stdout == b""
    assert b"internal error: RuntimeError: injected fault" in proc.stderr and b"Traceback" not in proc.stderr
    verbose = real(gw, "-v", "ingest", "email", "-", input=mail(), PYTHONPATH=_fault(tmp_path))
    assert verbose.returncode == 75 and b"Traceback" in verbose.stderr
    assert gw.dump() == before
    # the same program without the fault stores the mail
    assert real(gw, "ingest", "email", "-", input=mail()).returncode == 0


def test_command_line_mistakes_in_the_pipe_config_defer_too(gw):
    before = gw.dump()
    for args in (("ingest", "email", "-", "--group", "nope"), ("ingest", "email", "-", "--no-such-option"),
                 ("ingest", "email", "-", "--format", "yaml"), ("ingest", "jsonl", "-", "extra")):
        proc = real(gw, *args, input=mail())
        assert proc.returncode == 75, (args, proc.stderr)
        assert proc.stdout == b"" and b"Traceback" not in proc.stderr
    assert gw.dump() == before
    assert real(gw, "ingest", "email", "--help").returncode == 0


def test_bad_input_is_65_and_good_input_0(gw):
    assert real(gw, "ingest", "email", "-", input=b"not a mail at all").returncode == 65
    assert real(gw, "ingest", "email", "-", input=mail()).returncode == 0
    assert real(gw, "ingest", "jsonl", "-", input=b"{bad json\n" + jline(1).encode()).returncode == 65


# -- 3: --maildir D --move ----------------------------------------------------------------
def _maildir(tmp_path: Path, n: int, *, bad: int = 0) -> Path:
    root = tmp_path / "Maildir"
    box = mailbox.Maildir(root, create=True)
    for i in range(n):
        box.add(mail(i + 1, subject=f"Question {i + 1}"))
    for _ in range(bad):
        box.add(b"no headers, no sender\n")
    return root


def test_move_sends_each_handled_mail_to_cur_with_the_seen_flag(gw, tmp_path):
    root = _maildir(tmp_path, 3, bad=1)
    result = gw.run("ingest", "email", "--maildir", root, "--move", fmt="json")
    assert result.exit_code == 65, result
    assert sorted(r["action"] for r in result.json()) == ["created", "created", "created", "quarantined"]
    assert os.listdir(root / "new") == []
    moved = sorted(os.listdir(root / "cur"))
    assert len(moved) == 4 and all(name.endswith(":2,S") for name in moved)
    box = mailbox.Maildir(root, create=False)
    assert all("S" in box.get_message(key).get_flags() for key in box.keys())
    # a second run finds nothing to do
    again = gw.run("ingest", "email", "--maildir", root, "--move", fmt="json")
    assert again.exit_code == 0 and again.json() == []
    assert gw.scalar("SELECT count(*) FROM messages") == 3
    assert gw.scalar("SELECT count(*) FROM quarantine") == 1


def test_a_crash_between_commit_and_move_rereads_as_duplicate(gw, tmp_path):
    root = _maildir(tmp_path, 2)
    first = gw.run("ingest", "email", "--maildir", root, "--move", fmt="json")
    assert first.exit_code == 0, first
    # as if the process died after COMMIT and before the rename: the file is back in new/
    [name] = [n for n in os.listdir(root / "cur") if n.startswith(sorted(os.listdir(root / "cur"))[0])]
    os.rename(root / "cur" / name, root / "new" / name.split(":")[0])
    again = gw.run("ingest", "email", "--maildir", root, "--move", fmt="json")
    assert again.exit_code == 0 and [r["action"] for r in again.json()] == ["duplicate"]
    assert os.listdir(root / "new") == [] and len(os.listdir(root / "cur")) == 2
    assert gw.scalar("SELECT count(*) FROM messages") == 2


def test_without_move_the_maildir_is_left_as_it_was(gw, tmp_path):
    root = _maildir(tmp_path, 2)
    before = sorted(os.listdir(root / "new"))
    assert gw.run("ingest", "email", "--maildir", root).exit_code == 0
    assert sorted(os.listdir(root / "new")) == before and os.listdir(root / "cur") == []
    assert gw.run("ingest", "email", "-", "--move", input=mail()).exit_code == 75  # --move needs --maildir


# -- 4: size caps (small here; full size under `make stress`) -------------------------------
def _disk_copy(desk, qid: int) -> Path:
    [row] = desk.rows("SELECT raw, filename FROM quarantine WHERE id = :q", q=qid)
    assert bytes(row["raw"]) == b"", "an over-cap input is not copied into the table"
    path = Path(row["filename"])
    assert path.is_absolute() and path.is_file()
    return path


def test_a_mail_over_message_bytes_is_quarantined_on_disk(gw):
    big = mail(1, body="x" * 76 + "\n") + b"y" * 76 * 200 + b"\n"  # about 15 KB, cap 4 KB
    result = small(gw, "ingest", "email", "-", input=big, fmt="json")
    assert result.exit_code == 65, result
    [record] = result.json()
    assert record["action"] == "quarantined" and record["message_id"] == "m1@example.fr"
    assert "limits.message_bytes" in record["reason"]
    assert _disk_copy(gw, record["quarantine_id"]).read_bytes() == big
    [listed] = small(gw, "ingest", "quarantine", "list", fmt="json").json()
    assert listed["size"] == len(big)
    shown = small(gw, "ingest", "quarantine", "show", record["quarantine_id"], "--raw")
    assert shown.raw.stdout_bytes == big
    # the same mail again is the same entry; nothing was stored as a message
    again = small(gw, "ingest", "email", "-", input=big, fmt="json")
    assert again.json()[0]["quarantine_id"] == record["quarantine_id"]
    assert gw.scalar("SELECT count(*) FROM messages") == 0


@pytest.mark.parametrize(("case", "raw", "reason"), [
    # To + 5 Cc: 6 recipients (an "@" in a quoted display name is no address)
    ("recipients", mail(headers="Cc: " + ", ".join(f'"x@y" <c{i}@example.com>' for i in range(5)) + "\n"),
     "limits.recipients"),
    ("subject", mail(subject="s" * 51), "limits.subject_chars"),
    ("header", mail(headers="X-Long: " + "h" * 1100 + "\n"), "limits.header_bytes"),
])
def test_a_mail_over_a_header_cap_is_quarantined_on_disk(gw, case, raw, reason):
    result = small(gw, "ingest", "email", "-", input=raw, fmt="json")
    assert result.exit_code == 65, result
    [record] = result.json()
    assert record["action"] == "quarantined" and reason in record["reason"], (case, record)
    assert _disk_copy(gw, record["quarantine_id"]).read_bytes() == raw


def test_mails_just_under_the_caps_are_stored(gw):
    five = mail(1, headers="Cc: " + ", ".join(f'"a@b" <c{i}@example.com>' for i in range(4)) + "\n")
    # 50 characters once decoded, longer as encoded words
    encoded = mail(2, subject="=?utf-8?q?" + "=C3=A9" * 25 + "?= " + "=?utf-8?q?" + "=C3=A9" * 25 + "?=")
    for raw in (five, encoded, mail(3, subject="s" * 50)):
        result = small(gw, "ingest", "email", "-", input=raw, fmt="json")
        assert result.exit_code == 0 and result.json()[0]["action"] == "created", result


def test_an_mbox_keeps_its_good_messages_and_quarantines_the_oversized_one(gw, tmp_path):
    box = tmp_path / "in.mbox"
    huge = b"z" * 20000  # one line with no line break at all, 5 times the cap
    box.write_bytes(b"From a@b Mon Nov 23 10:00:00 2026\n" + mail(1) + b"\n"
                    + b"From a@b Mon Nov 23 10:01:00 2026\n" + mail(2, body="") + huge + b"\n\n"
                    + b"From a@b Mon Nov 23 10:02:00 2026\n" + mail(3) + b">From the start\n")
    result = small(gw, "ingest", "email", "--mbox", box, fmt="json")
    assert result.exit_code == 65, result
    assert [r["action"] for r in result.json()] == ["created", "quarantined", "created"]
    assert _disk_copy(gw, result.json()[1]["quarantine_id"]).read_bytes() == mail(2, body="") + huge + b"\n"
    # mboxrd quoting undone, as before
    assert gw.scalar("SELECT text FROM messages WHERE external_id = 'm3@example.fr'").endswith("From the start\n")


def test_the_bounded_mbox_reader_splits_like_the_stdlib(tmp_path):
    from types import SimpleNamespace

    from deskctl.services.inbound.intake import mbox_messages

    path = tmp_path / "box.mbox"
    box = mailbox.mbox(path)
    for i in range(4):
        box.add(mail(i, body="line\n\nFrom inside the body\n" * i))
    box.flush()
    box.close()
    limits = SimpleNamespace(message_bytes=1 << 20)
    settings = SimpleNamespace(limits=limits, attachments_dir=tmp_path)
    stdlib = mailbox.mbox(path)
    # as before: mboxrd quoting (">From ") undone on what the stdlib returns
    expected = [re.sub(rb"(?m)^>(>*From )", rb"\1", stdlib.get_bytes(k)) for k in stdlib.iterkeys()]
    with open(path, "rb") as stream:
        assert list(mbox_messages(stream, settings)) == expected


def test_a_json_line_over_a_cap_is_quarantined_by_line(gw):
    lines = "\n".join([jline(1), jline(2, text="x" * 5000), jline(3, subject="s" * 51), jline(4)]) + "\n"
    result = small(gw, "ingest", "jsonl", "-", input=lines.encode(), fmt="json")
    assert result.exit_code == 65, result
    records = result.json()
    assert [(r["line"], r["action"]) for r in records] == [(1, "created"), (2, "quarantined"), (3, "quarantined"),
                                                          (4, "created")]
    assert "limits.message_bytes" in records[1]["reason"] and "limits.subject_chars" in records[2]["reason"]
    raw = lines.encode().split(b"\n")
    assert _disk_copy(gw, records[1]["quarantine_id"]).read_bytes().rstrip(b"\n") == raw[1]
    assert _disk_copy(gw, records[2]["quarantine_id"]).read_bytes() == raw[2]
    lines_no = gw.rows("SELECT line_no FROM quarantine ORDER BY id")
    assert [r["line_no"] for r in lines_no] == [2, 3]


def test_a_quarantined_oversized_mail_is_retried_once_the_cap_is_raised(gw, tmp_path):
    big = mail(1, body="x" * 10000 + "\n")
    result = small(gw, "ingest", "email", "-", input=big, fmt="json")
    qid = result.json()[0]["quarantine_id"]
    still = small(gw, "ingest", "quarantine", "retry", qid, fmt="json")
    assert still.exit_code == 65 and "limits.message_bytes" in still.json()[0]["reason"]
    raised = config(tmp_path, "clock: {override: true}\nlimits: {message_bytes: 1MB}\n", "raised.yaml")
    done = gw.run("ingest", "quarantine", "retry", qid, fmt="json", env={"DESKCTL_CONFIG": str(raised)})
    assert done.exit_code == 0 and done.json()[0]["action"] == "created", done
    assert gw.scalar("SELECT status FROM quarantine WHERE id = :q", q=qid) == "retried"
    assert gw.scalar("SELECT text FROM messages").startswith("x" * 10000)


# -- 5: two concurrent ingests on PostgreSQL --------------------------------------------
def test_concurrent_maildir_ingests_are_quiet_and_store_each_mail_once(gw, tmp_path):
    if gw.engine_name != "postgresql":
        pytest.skip("the psycopg pipeline is PostgreSQL's")
    import time

    from sqlalchemy import text

    root = tmp_path / "Maildir"
    box = mailbox.Maildir(root, create=True)
    for i in range(20):
        box.add(mail(i, sender=f"c{i}@example.org"))
    # Make the race certain: hold back every INSERT into contacts until both processes
    # have read that the senders are unknown and wait to insert them.
    with gw.engine.connect() as blocker:
        blocker.execute(text("LOCK TABLE contacts IN EXCLUSIVE MODE"))
        procs = [subprocess.Popen([DESKCTL, "ingest", "email", "--maildir", str(root)], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, env={**os.environ, "DESKCTL_DATABASE_URL": gw.url})
                 for _ in range(2)]
        deadline = time.monotonic() + 60
        while gw.scalar("SELECT count(*) FROM pg_locks WHERE NOT granted") < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        blocker.rollback()
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    for err in errors:
        assert b"Pipeline" not in err and b"error ignored" not in err, err
    # ... and no INSERT failed on a unique index: a failed attempt would have used up
    # ids from the sequences, leaving gaps.
    assert gw.scalar("SELECT count(*) FROM messages") == 20
    assert gw.scalar("SELECT count(*) FROM contacts") == 20
    # ... and no INSERT failed on the unique index: a failed attempt would have drawn
    # its ids from the sequence too
    assert gw.scalar("SELECT last_value FROM contacts_id_seq") == 20


# -- 6: progress on a terminal only -------------------------------------------------------
def test_progress_is_drawn_on_a_terminal_only(gw, tmp_path, monkeypatch):
    from deskctl import term

    root = _maildir(tmp_path, 3)
    quiet = gw.run("ingest", "email", "--maildir", root, fmt="jsonl")
    assert quiet.exit_code == 0 and "ingesting" not in quiet.stderr
    monkeypatch.setattr(term, "is_tty", lambda stream: stream is sys.stderr)
    monkeypatch.setenv("DESKCTL_PROGRESS_AFTER", "0")  # at once: the work here is short
    shown = gw.run("ingest", "email", "--maildir", root, fmt="jsonl")
    assert shown.exit_code == 0 and "ingesting Maildir" in shown.stderr
    assert [json.loads(r)["action"] for r in shown.stdout.splitlines()] == ["duplicate"] * 3
