"""`deskctl note`: add (TEXT, --file, -), edit, delete; versions, events, permissions, exit codes."""

from __future__ import annotations

import json
from datetime import timedelta

from tests.factories import T0, make_conversation


def _data(value):
    return value if isinstance(value, dict) else json.loads(value)


def events_of(desk, kind):
    return [{**r, "data": _data(r["data"])} for r in
            desk.rows("SELECT conversation_id, actor, kind, data, at FROM events WHERE kind = :k ORDER BY id", k=kind)]


def test_note_adds_an_internal_note_with_a_version_and_an_event(seeded):
    cid = make_conversation(seeded, assignee="alice", watchers=("carol",))
    seeded.now = (T0 + timedelta(hours=1)).isoformat()
    result = seeded.run("note", f"#{cid}", "Customer called, wants a refund.", as_="bob", fmt="json")
    assert result.exit_code == 0, result
    [record] = result.json()
    assert {k: record[k] for k in ("conversation_id", "author", "text")} == {
        "conversation_id": cid, "author": "bob", "text": "Customer called, wants a refund."}
    assert record["at"] == (T0 + timedelta(hours=1)).isoformat()
    assert f"note {record['id']} added" in result.stderr
    [row] = seeded.rows("SELECT conversation_id, text, deleted_at FROM notes")
    assert row == {"conversation_id": cid, "text": "Customer called, wants a refund.", "deleted_at": None}
    assert seeded.rows("SELECT version, text FROM note_versions") == [
        {"version": 1, "text": "Customer called, wants a refund."}]
    [event] = events_of(seeded, "note_added")
    assert event["actor"] == "bob" and event["conversation_id"] == cid
    assert event["data"] == {"note_id": record["id"], "text": "Customer called, wants a refund.",
                             "previous_text": None}
    # The assignee and the watcher are notified; the author is not.
    assert sorted(r["recipient"] for r in seeded.rows("SELECT recipient FROM outbox")) == [
        "alice@desk.example", "carol@desk.example"]
    # Never visible to the contact: it is a note in `show`, not a message.
    kinds = [m["kind"] for m in seeded.json("show", cid)[0]["messages"]]
    assert kinds == ["inbound", "note"]
    assert [m["kind"] for m in seeded.json("show", cid, "--no-notes")[0]["messages"]] == ["inbound"]


def test_note_from_stdin_and_from_file(seeded, tmp_path):
    cid = make_conversation(seeded)
    seeded.ok("note", cid, "-", input="line one\nline two\n", as_="alice")
    path = tmp_path / "n.txt"
    path.write_text("from a file — é\n", encoding="utf-8")
    seeded.ok("note", "--file", path, cid, as_="alice")  # options of `add` may come first
    seeded.ok("note", "add", cid, "explicit add", as_="alice")
    assert [r["text"] for r in seeded.rows("SELECT text FROM notes ORDER BY id")] == [
        "line one\nline two\n", "from a file — é\n", "explicit add"]


def test_note_add_refusals_change_nothing(seeded):
    cid = make_conversation(seeded)  # billing, paris
    before = seeded.dump()
    assert seeded.run("note", 999, "x").exit_code == 3
    assert seeded.run("note", "abc", "x").exit_code == 2
    assert seeded.run("note", cid).exit_code == 2  # no text
    assert seeded.run("note", cid, "   ").exit_code == 2  # empty
    assert seeded.run("note", cid, "x", "--file", __file__).exit_code == 2  # both
    denied = seeded.run("note", cid, "x", as_="dave")  # lyon agent, not in billing
    assert denied.exit_code == 5 and "dave" in denied.stderr
    assert seeded.run("note", cid, "x", as_="nobody").exit_code == 5
    assert seeded.dump() == before


def test_edit_keeps_every_version_and_records_the_previous_text(seeded):
    cid = make_conversation(seeded)
    [note] = seeded.json("note", cid, "first", as_="alice")
    seeded.now = (T0 + timedelta(hours=2)).isoformat()
    [edited] = seeded.json("note", "edit", note["id"], "second", as_="alice")
    assert edited["text"] == "second" and edited["id"] == note["id"] and edited["at"] == note["at"]
    assert edited["updated_at"] == (T0 + timedelta(hours=2)).isoformat()
    seeded.ok("note", "edit", note["id"], "-", input="third", as_="carol")  # a supervisor may
    versions = seeded.rows("SELECT version, text FROM note_versions WHERE note_id = :n ORDER BY version",
                           n=note["id"])
    assert versions == [{"version": 1, "text": "first"}, {"version": 2, "text": "second"},
                        {"version": 3, "text": "third"}]
    assert [(e["actor"], e["data"]) for e in events_of(seeded, "note_edited")] == [
        ("alice", {"note_id": note["id"], "text": "second", "previous_text": "first"}),
        ("carol", {"note_id": note["id"], "text": "third", "previous_text": "second"}),
    ]
    same = seeded.run("note", "edit", note["id"], "third", as_="alice")
    assert same.exit_code == 0 and "nothing changed" in same.stderr
    assert len(events_of(seeded, "note_edited")) == 2


def test_only_author_or_supervisor_edits_or_deletes(seeded):
    cid = make_conversation(seeded)
    [note] = seeded.json("note", cid, "mine", as_="alice")
    before = seeded.dump()
    denied = seeded.run("note", "edit", note["id"], "theirs", as_="bob")  # agent, in scope, not the author
    assert denied.exit_code == 5 and "author" in denied.stderr
    assert seeded.run("note", "delete", note["id"], as_="bob").exit_code == 5
    assert seeded.run("note", "edit", 999, "x", as_="alice").exit_code == 3
    assert seeded.run("note", "delete", 999, as_="alice").exit_code == 3
    assert seeded.run("note", "edit", "x1", "x", as_="alice").exit_code == 2
    assert seeded.run("note", "edit", note["id"], "", as_="alice").exit_code == 2
    assert seeded.dump() == before
    assert seeded.ok("note", "edit", note["id"], "by admin", as_="root")


def test_supervisor_out_of_scope_may_not_edit(seeded):
    seeded.ok("user", "add", "sam", "--role", "supervisor", "--location", "lyon")
    cid = make_conversation(seeded)  # paris
    [note] = seeded.json("note", cid, "mine", as_="alice")
    assert seeded.run("note", "edit", note["id"], "x", as_="sam").exit_code == 5


def test_delete_hides_the_note_but_keeps_its_history(seeded):
    cid = make_conversation(seeded)
    [note] = seeded.json("note", cid, "secret", as_="alice")
    [deleted] = seeded.json("note", "delete", note["id"], as_="alice")
    assert deleted["deleted_at"] is not None
    assert [m["kind"] for m in seeded.json("show", cid)[0]["messages"]] == ["inbound"]
    assert seeded.scalar("SELECT count(*) FROM notes") == 1
    assert seeded.scalar("SELECT count(*) FROM note_versions") == 1
    [event] = events_of(seeded, "note_deleted")
    assert event["data"] == {"note_id": note["id"], "text": None, "previous_text": "secret"}
    # A deleted note cannot be changed again: conflict, nothing changed.
    before = seeded.dump()
    assert seeded.run("note", "delete", note["id"], as_="alice").exit_code == 4
    assert seeded.run("note", "edit", note["id"], "x", as_="alice").exit_code == 4
    assert seeded.dump() == before


def test_note_output_formats(seeded):
    cid = make_conversation(seeded)
    assert seeded.ok("note", cid, "=SUM(A1)", as_="alice", fmt="ids").stdout == f"{cid}\n"
    csv_out = seeded.ok("note", cid, "=SUM(A1)", as_="alice", fmt="csv").stdout.splitlines()
    assert csv_out[0] == "id,conversation_id,author,at,text,updated_at,deleted_at"
    assert ",'=SUM(A1)," in csv_out[1]
    assert seeded.ok("note", cid, "plain", as_="alice", fmt="jsonl").jsonl()[0]["text"] == "plain"
    assert "plain" in seeded.ok("note", cid, "plain", as_="alice", fmt="table").stdout


def test_note_ids_beyond_the_id_column_are_not_found(seeded):
    assert seeded.run("note", "edit", "99999999999", "x").exit_code == 3
    assert seeded.run("note", "delete", "999999999999999999").exit_code == 3
