"""`deskctl db backup FILE` (SPEC §12): a consistent copy of a SQLite desk while another
process keeps writing, refusals (existing file, PostgreSQL), nothing left half-written."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time

import pytest

N = 150
WRITER = r"""
import contextlib, io, json, os, sys
from deskctl.cli import cli

stop, progress, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
groups = ["billing", "support"]
done, codes = 0, []
while not os.path.exists(stop):
    source, target = groups[done % 2], groups[(done + 1) % 2]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
        try:
            cli.main(["transfer", "--group", source, "--to", f"group:{target}", "--format", "ids"],
                     prog_name="deskctl")
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    codes.append([code, err.getvalue()[-300:]])
    if code == 0:
        done += 1
    with open(progress + ".tmp", "w") as fh:
        json.dump({"done": done, "codes": codes}, fh)
    os.replace(progress + ".tmp", progress)
"""


@pytest.fixture
def sqlite_desk(seeded):
    if seeded.engine_name != "sqlite":
        pytest.skip("db backup copies SQLite desks")
    return seeded


def _fill(desk, n=N):
    lines = "".join(json.dumps({"channel": "chat", "thread": f"t-{i}", "id": f"m-{i}", "group": "billing",
                                "text": f"message {i} " + "lorem ipsum " * 40,
                                "from": {"name": f"C {i}", "email": f"c{i}@example.com"}}) + "\n"
                    for i in range(n))
    desk.ok("ingest", "jsonl", "-", input=lines.encode())


def _progress(path) -> dict:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {"done": 0, "codes": []}


def _wait_for(path, done, timeout=60) -> None:
    deadline = time.monotonic() + timeout
    while _progress(path)["done"] < done:
        assert time.monotonic() < deadline, f"the writer did not reach {done} transfers: {_progress(path)}"
        time.sleep(0.02)


def test_a_backup_taken_while_another_process_transfers_is_consistent(sqlite_desk, tmp_path):
    desk = sqlite_desk
    _fill(desk)
    stop, progress = tmp_path / "stop", tmp_path / "progress.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DESKCTL_")}
    env.update(DESKCTL_DATABASE_URL=desk.url, DESKCTL_USER="root")
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(stop), str(progress), str(N)], env=env,
                              stderr=subprocess.PIPE, text=True)
    copies = []
    try:
        _wait_for(progress, 1)
        for i in range(3):
            done_before = _progress(progress)["done"]
            copy = tmp_path / "backups" / f"copy-{i}.db"
            copy.parent.mkdir(exist_ok=True)
            result = desk.run("db", "backup", copy)
            assert result.exit_code == 0, result
            assert result.stdout == "" and f"to {copy}" in result.stderr
            copies.append(copy)
            _wait_for(progress, done_before + 2)  # the writer kept going across the backup
    finally:
        stop.touch()
        _, writer_err = writer.communicate(timeout=120)
    report = _progress(progress)
    assert writer.returncode == 0, writer_err
    assert all(code == 0 for code, _ in report["codes"]), report["codes"]  # the backup blocked no writer
    assert sorted(os.listdir(tmp_path / "backups")) == ["copy-0.db", "copy-1.db", "copy-2.db"]  # no -wal, no temp

    rounds = set()
    for copy in copies:
        with sqlite3.connect(copy) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            transferred = conn.execute("SELECT count(*) FROM events WHERE kind = 'transferred'").fetchone()[0]
            groups = conn.execute("SELECT DISTINCT g.name FROM conversations c JOIN groups g ON g.id = c.group_id"
                                  ).fetchall()
        conn.close()
        # Each transfer moves all N conversations in one transaction: a snapshot holds whole rounds.
        assert transferred % N == 0, transferred
        k = transferred // N
        assert groups == [("support" if k % 2 else "billing",)]
        rounds.add(k)
        url = f"sqlite:///{copy}"
        checks = desk.run("--db", url, "db", "check", fmt="json")
        assert checks.exit_code == 0, checks
        assert all(c["problems"] == 0 for c in checks.json())
        assert len(desk.json("--db", url, "list", "--limit", "1000")) == N
    assert len(rounds) == 3  # three different moments of a desk that kept changing


def test_an_existing_file_is_refused_unless_force(sqlite_desk, tmp_path):
    target = tmp_path / "desk-copy.db"
    target.write_bytes(b"precious")
    result = sqlite_desk.run("db", "backup", target)
    assert result.exit_code == 4 and "--force" in result.stderr and result.stdout == ""
    assert target.read_bytes() == b"precious"
    sqlite_desk.ok("db", "backup", target, "--force")
    with sqlite3.connect(target) as conn:
        assert conn.execute("SELECT count(*) FROM users").fetchone()[0] == 5
    conn.close()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".desk-copy")) == []


@pytest.mark.parametrize("target, code, message", [
    ("missing-dir/copy.db", 2, "does not exist"),
    (".", 2, "is a directory"),
    ("{db}", 2, "is the database itself"),
])
def test_bad_targets_are_usage_errors(sqlite_desk, tmp_path, target, code, message):
    db_path = sqlite_desk.url.removeprefix("sqlite:///")
    result = sqlite_desk.run("db", "backup", target.format(db=db_path), "--force")
    assert result.exit_code == code, result
    assert message in result.stderr and result.stdout == ""


def test_a_missing_database_is_a_configuration_error_and_is_not_created(desk, tmp_path):
    missing = tmp_path / "nowhere.db"
    result = desk.run("--db", f"sqlite:///{missing}", "db", "backup", tmp_path / "copy.db")
    assert result.exit_code == 78 and str(missing) in result.stderr
    assert not missing.exists() and not (tmp_path / "copy.db").exists()


def test_postgresql_says_to_use_pg_dump(desk, tmp_path):
    if desk.engine_name != "postgresql":
        pytest.skip("the refusal is PostgreSQL's")
    result = desk.run("db", "backup", tmp_path / "copy.db")
    assert result.exit_code == 2, result
    assert "pg_dump" in result.stderr and result.stdout == ""
    assert not (tmp_path / "copy.db").exists()


def test_a_directory_that_refuses_files_is_a_usage_error(sqlite_desk):
    from tests.cli.test_attachments import _unwritable_directory

    where = _unwritable_directory()
    result = sqlite_desk.run("db", "backup", f"{where}/copy.db")
    assert result.exit_code == 2, result
    assert f"cannot write in {where}" in result.stderr and result.stdout == ""
