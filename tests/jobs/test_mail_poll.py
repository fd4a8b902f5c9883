"""The `mail-poll` job (SPEC §11): a real Maildir in tmp_path, ingested in one process,
batches committed, each handled file moved to cur/NAME:2,S, counts in the job's run;
a rerun finds nothing to do; a file put back in new/ after its commit (a crash before
the rename) is a `duplicate`, never stored twice. Also `mail.maildir` checked at load."""

from __future__ import annotations

import mailbox
import os
from pathlib import Path

import pytest

NOW = "2026-11-23T12:00:00+00:00"


def mail(n: int, *, sender: str = "lea@example.fr", subject: str | None = None, headers: str = "") -> bytes:
    return (f"From: Léa <{sender}>\nTo: support@example.com\nSubject: {subject or f'Question {n}'}\n"
            f"Message-ID: <poll{n}@example.fr>\n{headers}\nBonjour {n}\n").encode()


def make_maildir(tmp_path: Path, n: int, *, bad: int = 0) -> Path:
    root = tmp_path / "Maildir"
    box = mailbox.Maildir(root, create=True)
    for i in range(n):
        box.add(mail(i + 1))
    for _ in range(bad):
        box.add(b"no headers, no sender\n")
    return root


def poll_config(desk, root: Path | str, extra: str = "") -> dict:
    path = desk.tmp_path / "poll.yaml"
    path.write_text(f"clock: {{override: true}}\nmail: {{maildir: '{root}'}}\n{extra}", encoding="utf-8")
    return {"DESKCTL_CONFIG": str(path)}


@pytest.fixture
def box(seeded):
    seeded.now = NOW
    return seeded


def poll(desk, root, **kwargs):
    return desk.run("jobs", "run", "mail-poll", env=poll_config(desk, root), fmt="json", **kwargs)


def history(desk, root) -> list[dict]:
    return desk.json("jobs", "history", "mail-poll", env=poll_config(desk, root))


def test_mail_poll_stores_new_mail_moves_it_to_cur_and_records_counts(box, tmp_path):
    root = make_maildir(tmp_path, 5, bad=1)
    result = poll(box, root)
    assert result.exit_code == 0, result
    [run] = result.json()
    assert run["outcome"] == "ok"
    assert run["counts"] == {"stored": 5, "created": 5, "appended": 0, "duplicate": 0, "quarantined": 1,
                             "unreadable": 0}
    assert os.listdir(root / "new") == [] and os.listdir(root / "tmp") == []
    moved = os.listdir(root / "cur")
    assert len(moved) == 6 and all(name.endswith(":2,S") for name in moved)
    assert box.scalar("SELECT count(*) FROM messages") == 5
    assert box.scalar("SELECT count(DISTINCT external_id) FROM messages") == 5
    assert box.scalar("SELECT count(*) FROM conversations") == 5
    assert box.scalar("SELECT count(*) FROM quarantine") == 1
    [recorded] = history(box, root)
    assert recorded["counts"]["stored"] == 5 and recorded["counts"]["quarantined"] == 1


def test_a_rerun_finds_nothing_and_changes_nothing(box, tmp_path):
    root = make_maildir(tmp_path, 3)
    assert poll(box, root).exit_code == 0
    before = box.dump()
    cur = sorted(os.listdir(root / "cur"))
    [again] = poll(box, root).json()
    assert again["outcome"] == "ok" and again["counts"]["stored"] == again["counts"]["duplicate"] == 0
    assert sorted(os.listdir(root / "cur")) == cur
    assert [t for t in box.dump() if t[0] not in ("job_runs", "job_locks")] == \
           [t for t in before if t[0] not in ("job_runs", "job_locks")]


def test_a_file_left_in_new_after_its_commit_is_a_duplicate(box, tmp_path):
    root = make_maildir(tmp_path, 2)
    assert poll(box, root).exit_code == 0
    # as if the process died after COMMIT and before the rename
    name = sorted(os.listdir(root / "cur"))[0]
    os.rename(root / "cur" / name, root / "new" / name.split(":")[0])
    [run] = poll(box, root).json()
    assert run["counts"]["duplicate"] == 1 and run["counts"]["stored"] == 0
    assert os.listdir(root / "new") == [] and len(os.listdir(root / "cur")) == 2
    assert box.scalar("SELECT count(*) FROM messages") == 2


def test_replies_in_the_maildir_thread_onto_their_conversation(box, tmp_path):
    root = make_maildir(tmp_path, 1)
    mailbox.Maildir(root).add(mail(2, subject="Re: Question 1", headers="In-Reply-To: <poll1@example.fr>\n"))
    [run] = poll(box, root).json()
    assert run["counts"] == {"stored": 2, "created": 1, "appended": 1, "duplicate": 0, "quarantined": 0,
                             "unreadable": 0}
    assert box.scalar("SELECT count(*) FROM conversations") == 1


def test_batches_are_committed_as_they_go(box, tmp_path, monkeypatch):
    """A failure in the third batch keeps the first two batches stored and moved; the
    rest stays in new/ and the next run stores it."""
    from deskctl.services.inbound import email, maildir

    root = make_maildir(tmp_path, 7)
    monkeypatch.setattr(maildir, "POLL_BATCH", 2)
    real_batch = email.ingest_batch
    calls = []

    def failing_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise OSError("disk full")
        return real_batch(*args, **kwargs)

    monkeypatch.setattr(email, "ingest_batch", failing_third)
    failed = poll(box, root)
    assert failed.exit_code != 0
    [run] = failed.json()
    assert run["outcome"] == "failed" and "disk full" in run["error"]
    assert box.scalar("SELECT count(*) FROM messages") == 4
    assert len(os.listdir(root / "cur")) == 4 and len(os.listdir(root / "new")) == 3
    monkeypatch.setattr(email, "ingest_batch", real_batch)
    [run] = poll(box, root).json()
    assert run["counts"]["stored"] == 3 and run["counts"]["duplicate"] == 0
    assert box.scalar("SELECT count(*) FROM messages") == 7 and os.listdir(root / "new") == []


def test_a_file_that_cannot_be_read_is_left_in_new_and_does_not_hold_back_the_others(box, tmp_path):
    root = make_maildir(tmp_path, 2)
    (root / "new" / "0000000001.M1P1.odd").mkdir()  # sorts first; reading it fails
    [run] = poll(box, root).json()
    assert run["outcome"] == "ok" and run["counts"]["stored"] == 2 and run["counts"]["unreadable"] == 1
    assert os.listdir(root / "new") == ["0000000001.M1P1.odd"] and len(os.listdir(root / "cur")) == 2


def test_ingest_email_maildir_move_is_the_same_service(box, tmp_path):
    root = make_maildir(tmp_path, 2)
    result = box.run("ingest", "email", "--maildir", root, "--move", fmt="json")
    assert result.exit_code == 0 and [r["action"] for r in result.json()] == ["created", "created"]
    [run] = poll(box, root).json()
    assert run["counts"]["stored"] == 0 and len(os.listdir(root / "cur")) == 2


# -- schedule and configuration --------------------------------------------------------
def test_mail_poll_runs_every_minute_when_a_maildir_is_set_and_is_off_otherwise(box, tmp_path):
    root = make_maildir(tmp_path, 0)
    rows = {r["job"]: r for r in box.json("jobs", "list", env=poll_config(box, root))}
    assert rows["mail-poll"]["schedule"] == "every 1m"
    rows = {r["job"]: r for r in box.json("jobs", "list")}
    assert rows["mail-poll"]["schedule"] == "off"
    without = box.run("jobs", "run", "mail-poll", fmt="json")
    assert without.exit_code == 78 and "mail.maildir" in without.stderr
    assert without.json()[0]["outcome"] == "failed"


def test_the_daemon_once_polls_the_maildir(box, tmp_path):
    root = make_maildir(tmp_path, 2)
    result = box.run("daemon", "--once", env=poll_config(box, root))
    assert result.exit_code == 0, result
    assert box.scalar("SELECT count(*) FROM messages") == 2 and os.listdir(root / "new") == []


def test_mail_config_is_checked_at_load_all_problems_at_once(box, tmp_path):
    not_dir = tmp_path / "file"
    not_dir.write_text("x")
    half = tmp_path / "half"
    (half / "new").mkdir(parents=True)
    cases = {
        f"mail: {{maildir: '{tmp_path / 'nowhere'}'}}\n": "does not exist",
        f"mail: {{maildir: '{not_dir}'}}\n": "is not a directory",
        f"mail: {{maildir: '{half}'}}\n": "no cur/, tmp/",
        "mail: {maildir: relative/Maildir}\n": "must be an absolute path",
        "mail: {spool: true}\n": "spool mode needs mail.maildir",
        f"mail: {{maildir: '{half}', spool: yes-please}}\n": "must be true or false",
        "mail: {maildir: /tmp, folder: x}\n": "unknown key",
    }
    for text, reason in cases.items():
        path = tmp_path / "bad.yaml"
        path.write_text(text)
        result = box.run("config", "check", env={"DESKCTL_CONFIG": str(path)})
        assert result.exit_code == 78, (text, result)
        assert reason in result.stderr and "mail." in result.stderr, (text, result.stderr)
        assert "Traceback" not in result.stderr
    # both problems of one file at once
    path = tmp_path / "two.yaml"
    path.write_text(f"mail: {{maildir: '{half}', spool: 3}}\n")
    result = box.run("config", "check", env={"DESKCTL_CONFIG": str(path)})
    assert result.exit_code == 78 and "no cur/, tmp/" in result.stderr and "mail.spool" in result.stderr
    assert box.run("config", "check", env=poll_config(box, make_maildir(tmp_path, 0))).exit_code == 0
