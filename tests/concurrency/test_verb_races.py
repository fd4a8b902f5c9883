"""Verbs that must not lose a race at all: the same verb by several worker processes
(tests/concurrency/worker.py) at once on the same rows, each call its own deskctl run.
Every call exits 0 and the database holds exactly one result of each."""

from __future__ import annotations

import json

from tests.concurrency import worker
from tests.factories import make_conversation


def _codes(desk, users, steps_of):
    """Run one worker per user at once, steps_of(user) each; every exit code, worker by worker."""
    results = worker.run(desk, {f"w{i}-{user}": (user, steps_of(user)) for i, user in enumerate(users)},
                         timeout=300)
    return [[c["code"] for c in calls] for calls in results.values()]


def _events(desk, kind):
    return desk.rows("SELECT conversation_id, actor, data FROM events WHERE kind = :k ORDER BY id", k=kind)


def test_concurrent_watch_and_unwatch_are_idempotent(seeded):
    ids = [make_conversation(seeded) for _ in range(8)]
    codes = _codes(seeded, ["alice"] * 3, lambda user: [{"cli": ["watch", str(cid)]} for cid in ids])
    assert sum(codes, []) == [0] * 24  # no "changed by someone else" for a watch race
    assert seeded.scalar("SELECT count(*) FROM watchers") == 8
    assert len(_events(seeded, "watched")) == 8  # one event per conversation, never two
    codes = _codes(seeded, ["alice"] * 3, lambda user: [{"cli": ["unwatch", str(cid)]} for cid in ids])
    assert sum(codes, []) == [0] * 24
    assert seeded.scalar("SELECT count(*) FROM watchers") == 0
    assert len(_events(seeded, "unwatched")) == 8


def test_concurrent_new_for_the_same_unknown_email_creates_one_contact(seeded):
    codes = _codes(seeded, ["alice", "bob", "carol"], lambda user: [
        {"cli": ["new", "--channel", "phone", "--contact", f"caller{i}@example.org", f"call {i} taken by {user}"]}
        for i in range(5)])
    assert sum(codes, []) == [0] * 15
    assert seeded.scalar("SELECT count(*) FROM contacts") == 5
    assert seeded.scalar("SELECT count(*) FROM conversations") == 15
    assert seeded.scalar("SELECT count(DISTINCT contact_id) FROM conversations") == 5


def test_concurrent_notes_and_edits_lose_nothing(seeded):
    cid = make_conversation(seeded)
    # Concurrent adds on one conversation: a note changes no conversation state, so none
    # of them may lose a race (no exit 4), and every one is stored with its event.
    codes = _codes(seeded, ["alice", "bob", "carol"],
                   lambda user: [{"cli": ["note", str(cid), f"{user} {i}"]} for i in range(8)])
    assert all(code == 0 for per_worker in codes for code in per_worker), codes
    assert seeded.scalar("SELECT count(*) FROM notes") == 24
    assert seeded.scalar("SELECT count(*) FROM events WHERE kind = 'note_added'") == 24
    # Concurrent edits of one note: applied one after the other; versions are 1..N with
    # no gap or duplicate, and each event's previous text is the version before it.
    [note] = seeded.json("note", cid, "v1", as_="alice")
    codes = _codes(seeded, ["alice", "carol", "root"],
                   lambda user: [{"cli": ["note", "edit", str(note["id"]), f"{user} {i}"]} for i in range(6)])
    assert all(code == 0 for per_worker in codes for code in per_worker), codes
    versions = [r["text"] for r in seeded.rows(
        "SELECT text FROM note_versions WHERE note_id = :n ORDER BY version", n=note["id"])]
    assert len(versions) == 19 and versions[0] == "v1"
    assert [r["version"] for r in seeded.rows(
        "SELECT version FROM note_versions WHERE note_id = :n ORDER BY version", n=note["id"])] == list(range(1, 20))
    chain = [r["data"] if isinstance(r["data"], dict) else json.loads(r["data"])
             for r in _events(seeded, "note_edited")]
    assert [(e["previous_text"], e["text"]) for e in chain] == list(zip(versions, versions[1:], strict=False))
    assert seeded.scalar("SELECT text FROM notes WHERE id = :n", n=note["id"]) == versions[-1]
