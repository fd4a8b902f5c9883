"""`deskctl template`: team and personal saved replies, checked at add time."""

from __future__ import annotations

import pytest

from tests.factories import make_conversation


def names(records):
    return [(r["name"], r["scope"], r["owner"]) for r in records]


def test_add_list_show_delete_team_template(seeded):
    [record] = seeded.json("template", "add", "greeting", "Hello {contact.name},", as_="carol")
    assert record["name"] == "greeting" and record["scope"] == "team" and record["owner"] is None
    assert names(seeded.json("template", "list", as_="bob")) == [("greeting", "team", None)]
    shown = seeded.json("template", "show", "greeting", as_="alice")[0]
    assert shown["body"] == "Hello {contact.name},"
    # table format: the body itself, ready to read
    assert seeded.ok("template", "show", "greeting", fmt="table").stdout == "Hello {contact.name},\n"
    result = seeded.ok("template", "delete", "greeting", as_="carol")
    assert "deleted team template greeting" in result.stderr
    assert seeded.json("template", "list") == []
    assert seeded.run("template", "show", "greeting").exit_code == 3


def test_team_templates_need_a_supervisor_personal_ones_do_not(seeded):
    before = seeded.dump()
    result = seeded.run("template", "add", "mine", "x", as_="alice")
    assert result.exit_code == 5 and "--personal" in result.stderr
    assert seeded.dump() == before
    seeded.ok("template", "add", "mine", "alice's own", "--personal", as_="alice")
    seeded.ok("template", "add", "shared", "team body", as_="root")
    assert seeded.run("template", "delete", "shared", as_="alice").exit_code == 5
    assert seeded.run("template", "delete", "mine", as_="bob").exit_code == 3  # not bob's team template
    assert seeded.run("template", "delete", "mine", "--personal", as_="bob").exit_code == 3
    seeded.ok("template", "delete", "mine", "--personal", as_="alice")
    assert seeded.rows("SELECT name FROM templates") == [{"name": "shared"}]


def test_personal_templates_are_private_and_shadow_team_ones(seeded):
    seeded.ok("template", "add", "closing", "Team closing", as_="carol")
    seeded.ok("template", "add", "closing", "Alice's closing", "--personal", as_="alice")
    seeded.ok("template", "add", "notes", "Alice only", "--personal", as_="alice")

    assert names(seeded.json("template", "list", as_="alice")) == [
        ("closing", "personal", "alice"), ("closing", "team", None), ("notes", "personal", "alice")]
    assert names(seeded.json("template", "list", "--personal", as_="alice")) == [
        ("closing", "personal", "alice"), ("notes", "personal", "alice")]
    assert names(seeded.json("template", "list", as_="bob")) == [("closing", "team", None)]
    assert seeded.json("template", "list", "--personal", as_="bob") == []

    assert seeded.json("template", "show", "closing", as_="alice")[0]["body"] == "Alice's closing"
    assert seeded.json("template", "show", "closing", as_="bob")[0]["body"] == "Team closing"
    assert seeded.run("template", "show", "notes", as_="bob").exit_code == 3

    cid = make_conversation(seeded, assignee="alice")
    other = make_conversation(seeded, assignee="bob", group="support")
    seeded.ok("reply", cid, "--template", "closing", as_="alice")
    seeded.ok("reply", other, "--template", "closing", as_="bob")
    assert seeded.rows("SELECT text FROM messages WHERE direction = 'outbound' ORDER BY id") == [
        {"text": "Alice's closing"}, {"text": "Team closing"}]
    assert seeded.run("reply", other, "--template", "notes", as_="bob").exit_code == 3


@pytest.mark.parametrize("body, message", [
    ("Hello {contact.nam}", "unknown template field {contact.nam}"),
    ("Hello {customer}", "unknown template field {customer}"),
    ("Hello {}", "unknown template field {}"),
    ("Hello {contact.name", "bad template syntax"),
    ("Hello }", "bad template syntax"),
    ("Hello {contact.name!r}", "no format spec or conversion"),
    ("Hello {conversation.id:>5}", "no format spec or conversion"),
    ("   ", "empty"),
])
def test_bad_bodies_are_rejected_at_add_time(seeded, body, message):
    before = seeded.dump()
    result = seeded.run("template", "add", "t", body, as_="carol")
    assert result.exit_code == 2, result
    assert message in result.stderr
    assert seeded.dump() == before


def test_names_sources_and_duplicates(seeded, tmp_path):
    assert seeded.run("template", "add", "bad name", "x", as_="carol").exit_code == 2
    assert seeded.run("template", "add", "t", as_="carol").exit_code == 2  # no body
    seeded.ok("template", "add", "from-stdin", "-", input="Literal {{braces}} and {agent.handle}\n", as_="carol")
    path = tmp_path / "body.txt"
    path.write_text("Bonjour {contact.name} — merci\n", encoding="utf-8")
    seeded.ok("template", "add", "from-file", "--file", path, as_="carol")
    bodies = {r["name"]: r["body"] for r in seeded.json("template", "list")}
    assert bodies == {"from-file": "Bonjour {contact.name} — merci\n",
                      "from-stdin": "Literal {{braces}} and {agent.handle}\n"}
    result = seeded.run("template", "add", "from-file", "again", as_="carol")
    assert result.exit_code == 4 and "already exists" in result.stderr
    # The same name may exist once in the team set and once per user.
    seeded.ok("template", "add", "from-file", "mine", "--personal", as_="carol")
    seeded.ok("template", "add", "from-file", "mine too", "--personal", as_="alice")
