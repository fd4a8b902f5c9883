"""Spool mode (SPEC §11): with `mail: {maildir: D, spool: true}`, `ingest email -` only
writes the message into D (tmp/ then new/, fsynced) and exits 0, or 75 when it cannot
write; it loads no database code (checked on the real program with `python -X
importtime`); mail-poll stores what was spooled, also a mail over the size cap
(quarantined then)."""

from __future__ import annotations

import mailbox
import os
import subprocess
import sys
from pathlib import Path

import pytest

NOW = "2026-11-23T12:00:00+00:00"
DESKCTL = str(Path(sys.executable).parent / "deskctl")


def mail(n: int, *, body: str = "Bonjour\n") -> bytes:
    return (f"From: Léa <lea{n}@example.fr>\nTo: support@example.com\nSubject: Spooled {n}\n"
            f"Message-ID: <spool{n}@example.fr>\n\n{body}").encode()


def spool_config(tmp_path: Path, root: Path, extra: str = "") -> Path:
    path = tmp_path / "spool.yaml"
    path.write_text(f"clock: {{override: true}}\nmail: {{maildir: '{root}', spool: true}}\n{extra}",
                    encoding="utf-8")
    return path


def maildir(tmp_path: Path) -> Path:
    root = tmp_path / "spool"
    mailbox.Maildir(root, create=True)
    return root


def real(url: str, config: Path, *args, input: bytes | None = None, python_flags=()) -> subprocess.CompletedProcess:
    """The installed program in a child process, as the mail server's pipe runs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DESKCTL_")}
    env.update({"DESKCTL_DATABASE_URL": url, "DESKCTL_NOW": NOW, "DESKCTL_CONFIG": str(config)})
    argv = [sys.executable, *python_flags, "-m", "deskctl"] if python_flags else [DESKCTL]
    return subprocess.run([*argv, *[str(a) for a in args]], input=input, capture_output=True, env=env,
                          cwd=config.parent, timeout=120)


@pytest.fixture
def spooling(seeded, tmp_path):
    seeded.now = NOW
    root = maildir(tmp_path)
    return seeded, root, spool_config(tmp_path, root)


def test_spool_writes_the_message_into_new_and_changes_no_database(spooling):
    desk, root, config = spooling
    before = desk.dump()
    for n in (1, 2):
        proc = real(desk.url, config, "ingest", "email", "-", input=mail(n))
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == b"" and b"spooled 1 message" in proc.stderr
    names = sorted(os.listdir(root / "new"))
    assert len(names) == 2 and os.listdir(root / "tmp") == [] and os.listdir(root / "cur") == []
    assert sorted((root / "new" / name).read_bytes() for name in names) == [mail(1), mail(2)]
    assert desk.dump() == before


def test_spool_mode_loads_no_database_code(spooling, tmp_path):
    """`python -X importtime` lists every module the process imported: no SQLAlchemy,
    no psycopg, no deskctl model. The database URL points nowhere, to make sure."""
    desk, root, config = spooling
    proc = real("postgresql+psycopg://nobody@127.0.0.1:1/nowhere", config, "ingest", "email", "-",
                input=mail(1), python_flags=("-X", "importtime"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    imported = [line.rsplit("|", 1)[-1].strip() for line in proc.stderr.decode().splitlines()
                if line.startswith("import time:")]
    assert "deskctl.services.inbound.spool" in imported  # the listing is real
    heavy = [m for m in imported if m.split(".")[0] in ("sqlalchemy", "psycopg", "alembic")
             or m.startswith(("deskctl.models", "deskctl.db.engine", "deskctl.services.inbound.email"))]
    assert heavy == []
    assert len(os.listdir(root / "new")) == 1


@pytest.mark.parametrize("broken", ["tmp", "new"])
def test_spool_exits_75_when_it_cannot_write_and_leaves_nothing_behind(spooling, broken):
    """tmp/ where nothing can be created (sysfs refuses even root), or new/ on another
    file system (the rename fails): exit 75, the mail server keeps the mail."""
    desk, root, config = spooling
    os.rmdir(root / broken)
    os.symlink("/sys/kernel" if broken == "tmp" else "/proc/self", root / broken)
    proc = real(desk.url, config, "ingest", "email", "-", input=mail(1))
    assert proc.returncode == 75, proc.stderr
    assert proc.stdout == b"" and b"cannot write into the spool" in proc.stderr
    assert b"[exit 75: the mail server keeps the input and retries]" in proc.stderr and b"Traceback" not in proc.stderr
    if broken == "new":
        assert os.listdir(root / "tmp") == []  # the partial file is removed


def test_only_0_65_or_75_in_spool_mode(spooling, tmp_path):
    desk, root, config = spooling
    group = real(desk.url, config, "ingest", "email", "-", "--group", "billing", input=mail(1))
    assert group.returncode == 75 and b"--group cannot be used in spool mode" in group.stderr
    missing = tmp_path / "gone"
    broken = spool_config(tmp_path, missing)
    assert real(desk.url, broken, "ingest", "email", "-", input=mail(1)).returncode == 75  # config error
    assert os.listdir(root / "new") == []


def test_mail_poll_stores_what_was_spooled_including_an_oversized_mail(spooling):
    desk, root, config = spooling
    small = spool_config(desk.tmp_path, root, "limits: {message_bytes: 4KB}\n")
    big = mail(3, body="x" * 76 + "\n" + ("y" * 76 + "\n") * 200)
    for raw in (mail(1), mail(2), big, b"no headers, no sender\n"):
        assert real(desk.url, small, "ingest", "email", "-", input=raw).returncode == 0  # over the cap too
    assert len(os.listdir(root / "new")) == 4
    result = desk.run("jobs", "run", "mail-poll", env={"DESKCTL_CONFIG": str(small)}, fmt="json")
    assert result.exit_code == 0, result
    [run] = result.json()
    assert run["counts"]["stored"] == 2 and run["counts"]["quarantined"] == 2
    assert os.listdir(root / "new") == [] and len(os.listdir(root / "cur")) == 4
    assert desk.scalar("SELECT count(*) FROM messages") == 2
    reasons = [r["reason"] for r in desk.rows("SELECT reason FROM quarantine ORDER BY id")]
    assert any("limits.message_bytes" in r for r in reasons)
    # spooling the same mail again is a duplicate for mail-poll: stored once
    assert real(desk.url, small, "ingest", "email", "-", input=mail(1)).returncode == 0
    [again] = desk.run("jobs", "run", "mail-poll", env={"DESKCTL_CONFIG": str(small)}, fmt="json").json()
    assert again["counts"]["duplicate"] == 1 and desk.scalar("SELECT count(*) FROM messages") == 2


def test_files_and_maildirs_are_still_ingested_directly_in_spool_mode(spooling, tmp_path):
    desk, root, config = spooling
    path = tmp_path / "one.eml"
    path.write_bytes(mail(7))
    result = desk.run("ingest", "email", path, env={"DESKCTL_CONFIG": str(config)}, fmt="json")
    assert result.exit_code == 0 and result.json()[0]["action"] == "created"
    assert os.listdir(root / "new") == []
