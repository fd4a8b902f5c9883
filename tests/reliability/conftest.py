"""Shared helpers for the reliability suite.

Sizes are small by default so `make test` stays fast; `DESKCTL_STRESS=1` (`make stress`)
runs the same tests at full size. Subprocess tests run the real `deskctl` entry point
(`python -m deskctl`) against the test database of the `desk` fixture.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

STRESS = os.environ.get("DESKCTL_STRESS", "").lower() in ("1", "true", "yes", "on")
# Exit codes of SPEC §3 other than 1 (1 is an internal error: always a bug).
ALLOWED_EXITS = {0, 2, 3, 4, 5, 65, 75, 78}
ROOT = Path(__file__).resolve().parents[2]


def size(small: int, full: int) -> int:
    """`small` for `make test`, `full` under DESKCTL_STRESS=1."""
    return full if STRESS else small


def command_available(name: str) -> bool:
    """True when the command of that name in cli.COMMANDS is importable (built)."""
    import click

    from deskctl.cli import cli

    return cli.get_command(click.Context(cli), name) is not None


def require_commands(*names: str) -> None:
    missing = [n for n in names if not command_available(n)]
    if missing:
        pytest.skip(f"not built yet: deskctl {', '.join(missing)}")


def subprocess_env(desk, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DESKCTL_")}
    env.update({"DESKCTL_DATABASE_URL": desk.url, "DESKCTL_USER": "root", "PYTHONUNBUFFERED": "1"})
    if os.environ.get("DESKCTL_TEST_POSTGRES_URL"):
        env["DESKCTL_TEST_POSTGRES_URL"] = os.environ["DESKCTL_TEST_POSTGRES_URL"]
    env.update({k: str(v) for k, v in extra.items()})
    return env


def deskctl_argv(*args) -> list[str]:
    return [sys.executable, "-m", "deskctl", *[str(a) for a in args]]


def run_deskctl(desk, *args, input=None, timeout=120, **env) -> subprocess.CompletedProcess:
    """The real program in a child process (for crash, concurrency and daemon tests)."""
    return subprocess.run(deskctl_argv(*args), input=input, capture_output=True, text=True,
                          env=subprocess_env(desk, **env), timeout=timeout, cwd=desk.tmp_path)


def assert_clean_failure(code: int, stderr: str) -> None:
    assert code != 1, f"exit 1 (internal error): {stderr[-2000:]}"
    assert code in ALLOWED_EXITS, f"exit {code} not in SPEC §3: {stderr[-2000:]}"
    assert "Traceback" not in stderr, stderr[-2000:]


def bulk_conversations(desk, n: int, *, group="billing", assignee=None, status="new", start=None) -> list[int]:
    """Insert n conversations (with their first inbound message) in a few statements;
    returns their ids in creation order."""
    from datetime import timedelta

    from sqlalchemy import insert, select

    from deskctl.models import Contact, Conversation, Group, Message, User
    from tests.factories import T0

    start = start or T0
    with desk.session() as s:
        contact_id = s.scalar(select(Contact.id).where(Contact.email == "bulk@example.com"))
        if contact_id is None:
            contact = Contact(name="Bulk Customer", email="bulk@example.com", vip=False, attributes={},
                              created_at=start)
            s.add(contact)
            s.flush()
            contact_id = contact.id
        grp = s.scalar(select(Group).where(Group.name == group)) if group else None
        assignee_id = s.scalar(select(User.id).where(User.handle == assignee)) if assignee else None
        first = (s.scalar(select(Conversation.id).order_by(Conversation.id.desc()).limit(1)) or 0) + 1
        rows = []
        for i in range(n):
            at = start + timedelta(seconds=i)
            rows.append(dict(subject=f"Bulk request {first + i}", channel="email", status=status,
                             priority="low", assignee_id=assignee_id,
                             group_id=grp.id if grp else None,
                             location_id=grp.location_id if grp else None, contact_id=contact_id,
                             created_at=at, updated_at=at, first_inbound_at=at, last_inbound_at=at,
                             claimed_at=at if assignee_id else None))
        for chunk in range(0, n, 2000):
            s.execute(insert(Conversation), rows[chunk:chunk + 2000])
        ids = list(s.scalars(select(Conversation.id).where(Conversation.id >= first).order_by(Conversation.id)))
        messages = [dict(conversation_id=cid, direction="inbound", author_contact_id=contact_id, channel="email",
                         subject=f"Bulk request {cid}", text="Hello", external_id=f"bulk{cid}@example.com",
                         created_at=start, cc=[], bcc=[]) for cid in ids]
        for chunk in range(0, len(messages), 2000):
            s.execute(insert(Message), messages[chunk:chunk + 2000])
    return ids
