"""`deskctl contact add/find/show/set` and `deskctl attach`: records, rows, events, exit codes."""

from __future__ import annotations

import csv
import io

from tests.factories import make_conversation


def test_add_stores_a_normalised_contact_and_prints_its_record(seeded):
    [record] = seeded.json("contact", "add", "--name", "Léa Dubois", "--email", "Lea@Example.FR",
                           "--phone", "+33 1 23", "--account-id", "ACME-1", "--vip", "--attr", "plan=gold",
                           "--attr", "lang=fr", as_="alice")
    assert record["email"] == "lea@example.fr" and record["vip"] is True
    assert record["attributes"] == {"plan": "gold", "lang": "fr"} and record["conversations"] == 0
    [row] = seeded.rows("SELECT name, email, phone, account_id, vip FROM contacts")
    assert row == {"name": "Léa Dubois", "email": "lea@example.fr", "phone": "+33 1 23", "account_id": "ACME-1",
                   "vip": True}


def test_add_refusals_change_nothing(seeded):
    seeded.ok("contact", "add", "--email", "lea@example.fr")
    before = seeded.dump()
    assert seeded.run("contact", "add", "--email", "LEA@example.fr").exit_code == 4  # duplicate email
    assert seeded.run("contact", "add", "--email", "not-an-address").exit_code == 2
    assert seeded.run("contact", "add", "--vip").exit_code == 2  # no identifying field
    assert seeded.run("contact", "add", "--name", "X", "--attr", "novalue").exit_code == 2
    assert seeded.run("contact", "add", "--name", "X", as_="nobody").exit_code == 5
    assert seeded.dump() == before


def test_find_matches_text_and_exact_fields_and_streams_csv(seeded):
    seeded.ok("contact", "add", "--name", "Léa Dubois", "--email", "lea@example.fr", "--vip", "--attr", "plan=gold")
    seeded.ok("contact", "add", "--name", "Max Power", "--email", "max@example.com", "--phone", "555-1234")
    seeded.ok("contact", "add", "--name", "=cmd()", "--account-id", "ACC-9")
    make_conversation(seeded, contact_email="max@example.com")
    assert [c["id"] for c in seeded.json("contact", "find", "EXAMPLE")] == [1, 2]
    assert [c["name"] for c in seeded.json("contact", "find", "555")] == ["Max Power"]
    assert [c["id"] for c in seeded.json("contact", "find", "--vip")] == [1]
    assert [c["id"] for c in seeded.json("contact", "find", "--no-vip")] == [2, 3]
    assert [c["id"] for c in seeded.json("contact", "find", "--attr", "plan=gold")] == [1]
    assert [c["id"] for c in seeded.json("contact", "find", "--attr", "plan=")] == [2, 3]
    assert [c["id"] for c in seeded.json("contact", "find", "--account", "ACC-9")] == [3]
    assert seeded.json("contact", "find", "--email", "MAX@example.com")[0]["conversations"] == 1
    assert [c["id"] for c in seeded.json("contact", "find", "--limit", "2")] == [1, 2]
    result = seeded.ok("contact", "find", "%", fmt="json")
    assert result.json() == [] and "no contacts matched" in result.stderr
    rows = list(csv.DictReader(io.StringIO(seeded.ok("contact", "find", fmt="csv").stdout)))
    assert [r["name"] for r in rows] == ["Léa Dubois", "Max Power", "'=cmd()"]  # formula neutralised
    assert seeded.ok("contact", "find", "--vip", fmt="jsonl").jsonl()[0]["email"] == "lea@example.fr"


def test_show_by_id_or_email_and_unknown_refs(seeded):
    seeded.ok("contact", "add", "--name", "Léa", "--email", "lea@example.fr")
    assert seeded.json("contact", "show", "#1")[0]["name"] == "Léa"
    assert seeded.json("contact", "show", "LEA@example.fr")[0]["id"] == 1
    assert seeded.run("contact", "show", "42").exit_code == 3
    assert seeded.run("contact", "show", "who@example.fr").exit_code == 3
    result = seeded.run("contact", "show", "lea")
    assert result.exit_code == 2 and "contact id or an email" in result.stderr


def test_set_changes_fields_attributes_and_vip(seeded):
    seeded.ok("contact", "add", "--name", "Léa", "--email", "lea@example.fr", "--attr", "plan=gold",
              "--attr", "lang=fr")
    seeded.ok("contact", "add", "--email", "max@example.com")
    [record] = seeded.json("contact", "set", "lea@example.fr", "--vip", "--attr", "plan=", "--attr", "tier=2",
                           "--phone", "0102", "--name", "Léa Dubois")
    assert record["vip"] is True and record["attributes"] == {"lang": "fr", "tier": "2"}
    assert record["phone"] == "0102" and record["name"] == "Léa Dubois"
    assert seeded.scalar("SELECT vip FROM contacts WHERE id = 1") in (True, 1)
    seeded.ok("contact", "set", "1", "--phone", "")
    assert seeded.scalar("SELECT phone FROM contacts WHERE id = 1") is None
    before = seeded.dump()
    assert seeded.run("contact", "set", "1", "--email", "max@example.com").exit_code == 4
    assert seeded.run("contact", "set", "1").exit_code == 2  # nothing to change
    assert seeded.run("contact", "set", "9", "--name", "x").exit_code == 3
    assert seeded.dump() == before


def test_attach_to_existing_contact_records_event(seeded):
    cid = make_conversation(seeded, contact_email="lea@example.fr", assignee="alice")
    seeded.ok("contact", "add", "--name", "Max", "--email", "max@example.com", "--vip")
    [conv] = seeded.json("attach", f"#{cid}", "--contact", "MAX@example.com", as_="alice")
    assert conv["id"] == cid and conv["contact"] == {"id": 2, "name": "Max", "email": "max@example.com",
                                                      "vip": True}
    assert seeded.scalar("SELECT contact_id FROM conversations WHERE id = :i", i=cid) == 2
    [event] = seeded.rows("SELECT actor, kind, data FROM events WHERE kind = 'contact_attached'")
    data = event["data"] if isinstance(event["data"], dict) else __import__("json").loads(event["data"])
    assert event["actor"] == "alice" and data == {"contact_id": 2, "previous_contact_id": 1}
    # The same contact again: exit 0, a notice, no second event.
    again = seeded.run("attach", cid, "--contact", "2", as_="alice", fmt="json")
    assert again.exit_code == 0 and "already attached" in again.stderr
    assert seeded.scalar("SELECT count(*) FROM events WHERE kind = 'contact_attached'") == 1


def test_attach_unknown_email_creates_the_contact(seeded):
    cid = make_conversation(seeded, contact_email=None)
    result = seeded.run("attach", cid, "--contact", "New@Example.org", "--name", "Nina New", fmt="json")
    assert result.exit_code == 0, result
    assert result.json()[0]["contact"]["email"] == "new@example.org"
    assert "created contact" in result.stderr
    [row] = seeded.rows("SELECT id, name, email FROM contacts")
    assert row["name"] == "Nina New" and row["email"] == "new@example.org"
    data = seeded.rows("SELECT data FROM events WHERE kind = 'contact_attached'")[0]["data"]
    data = data if isinstance(data, dict) else __import__("json").loads(data)
    assert data == {"contact_id": row["id"], "previous_contact_id": None}


def test_attach_refusals_change_nothing(seeded):
    cid = make_conversation(seeded, group="sales")  # lyon: alice (paris, billing) may not act on it
    before = seeded.dump()
    assert seeded.run("attach", cid, "--contact", "x@example.org", as_="alice").exit_code == 5
    assert seeded.run("attach", 999, "--contact", "x@example.org").exit_code == 3
    assert seeded.run("attach", cid, "--contact", "77").exit_code == 3  # unknown contact id
    assert seeded.run("attach", cid, "--contact", "bogus").exit_code == 2
    assert seeded.run("attach", "abc", "--contact", "1").exit_code == 2
    dry = seeded.run("attach", cid, "--contact", "x@example.org", "--dry-run", fmt="json")
    assert dry.exit_code == 0 and dry.json()[0]["contact"]["email"] == "x@example.org"
    assert seeded.dump() == before


def test_vip_change_and_attach_refresh_the_sla_of_open_conversations(seeded, monkeypatch):
    from deskctl.services.sla import deadlines as sla
    calls = []
    monkeypatch.setattr(sla, "refresh", lambda session, ids, **kw: calls.append(sorted(ids)))
    open_ = make_conversation(seeded, contact_email="lea@example.fr", status="open")
    make_conversation(seeded, contact_email="lea@example.fr", status="closed")
    seeded.ok("contact", "set", "lea@example.fr", "--name", "Léa")
    assert calls == []  # not a VIP change: nothing to recompute
    seeded.ok("contact", "set", "lea@example.fr", "--vip")
    assert calls == [[open_]]
    seeded.ok("contact", "set", "lea@example.fr", "--vip")  # unchanged flag
    assert calls == [[open_]]
    other = make_conversation(seeded, contact_email="max@example.com")
    seeded.ok("attach", other, "--contact", "lea@example.fr")
    assert calls == [[open_], [other]]


def test_contact_ids_beyond_the_id_column_are_not_found(seeded):
    assert seeded.run("contact", "show", "99999999999").exit_code == 3
    cid = make_conversation(seeded)
    assert seeded.run("attach", cid, "--contact", "#999999999999999999").exit_code == 3
