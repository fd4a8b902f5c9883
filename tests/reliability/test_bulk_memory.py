"""Issue 16, "Memory stays flat": a bulk verb holds a chunk of its targets, not all of them.

The real program resolves a small and an eight times larger batch of conversations (made
by one hand-written INSERT ... SELECT, not the slow demo) in a child process; its peak
RSS (os.wait4) must grow far less than linearly. Before the chunked engine, each target
cost about 0.8 KB (its id, snapshot and output record), 28 MB between these two sizes."""

from __future__ import annotations

import os
import subprocess

import pytest
from sqlalchemy import bindparam, text

from deskctl.db.types import UTCDateTime
from tests.factories import T0
from tests.reliability.conftest import deskctl_argv, subprocess_env

SMALL, LARGE = 5_000, 40_000
# Caches that fill up whatever the size (SQLite's page caches, the records' in-memory
# spool) may grow the peak by a few MB; 0.8 KB per target would be 28 MB.
MAX_GROWTH_MB = 10


def _insert_new(desk, group: str, n: int) -> None:
    """n `new` conversations of `group`, in one statement."""
    created = bindparam("at", T0, type_=UTCDateTime())
    with desk.engine.begin() as conn:
        gid = conn.execute(text("SELECT id FROM groups WHERE name = :g"), {"g": group}).scalar_one()
        conn.execute(text(
            "WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < :n) "
            "INSERT INTO conversations (subject, channel, status, priority, group_id, created_at, updated_at, "
            "sla_state, sla_paused_s, version) "
            "SELECT 'Bulk request', 'email', 'new', 'low', :gid, :at, :at, 'none', 0, 1 FROM seq"
        ).bindparams(created), {"n": n, "gid": gid})


def _peak_mb(desk, *args) -> float:
    """Run deskctl ARGS to completion (exit 0); its peak resident set in MB."""
    with open(os.devnull, "wb") as devnull:
        proc = subprocess.Popen(deskctl_argv(*args), stdout=devnull, stderr=subprocess.PIPE,
                                env=subprocess_env(desk), cwd=desk.tmp_path)
        _, status, usage = os.wait4(proc.pid, 0)
        stderr = proc.stderr.read().decode() if proc.stderr else ""
    assert os.waitstatus_to_exitcode(status) == 0, stderr
    return usage.ru_maxrss / 1024  # kilobytes on Linux


@pytest.mark.slow
def test_a_bulk_verb_holds_a_chunk_not_every_target(seeded):
    _insert_new(seeded, "billing", SMALL)
    _insert_new(seeded, "support", LARGE)
    small = _peak_mb(seeded, "resolve", "--group", "billing", "--status", "new", "--yes", "--format", "tsv")
    large = _peak_mb(seeded, "resolve", "--group", "support", "--status", "new", "--yes", "--format", "tsv")
    assert seeded.scalar("SELECT count(*) FROM conversations WHERE status = 'resolved'") >= SMALL + LARGE
    assert large - small < MAX_GROWTH_MB, f"peak {small:.1f} MB for {SMALL} targets, {large:.1f} MB for {LARGE}"
