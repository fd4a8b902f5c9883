"""`deskctl transfer`: references, groups and users, --message notes, keep-informed,
--from / --limit, the rules, warnings and notifications."""

from __future__ import annotations

import json
from datetime import timedelta

from tests.factories import T0, make_conversation


def conv(desk, cid):
    [row] = desk.rows("SELECT c.status, u.handle AS assignee, g.name AS grp, l.name AS loc, c.boomerang_at "
                      "FROM conversations c LEFT JOIN users u ON u.id = c.assignee_id "
                      "LEFT JOIN groups g ON g.id = c.group_id LEFT JOIN locations l ON l.id = c.location_id "
                      "WHERE c.id = :id", id=cid)
    return row


def transfer_events(desk):
    rows = desk.rows("SELECT conversation_id, actor, data, id FROM events WHERE kind = 'transferred' ORDER BY id")
    for row in rows:
        if isinstance(row["data"], str):
            row["data"] = json.loads(row["data"])
    return rows


def watchers(desk, cid):
    return [r["handle"] for r in desk.rows("SELECT u.handle FROM watchers w JOIN users u ON u.id = w.user_id "
                                           "WHERE w.conversation_id = :id ORDER BY u.handle", id=cid)]


def test_transfer_to_a_group_clears_the_assignee_and_moves_location(seeded):
    cid = make_conversation(seeded, assignee="alice", status="open")
    result = seeded.run("transfer", cid, "--to", "group:sales", "--reason", "wrong queue", as_="alice", fmt="json")
    assert result.exit_code == 0, result
    assert result.json() == [{"id": cid, "status": "new", "assignee": None, "group": "sales",
                              "previous_status": "open", "previous_assignee": "alice",
                              "previous_group": "billing"}]
    assert result.stderr.strip() == "transferred 1 conversation"
    assert conv(seeded, cid) == {"status": "new", "assignee": None, "grp": "sales", "loc": "lyon",
                                 "boomerang_at": None}
    [event] = transfer_events(seeded)
    assert event["actor"] == "alice"
    assert event["data"] == {"from_user": "alice", "to_user": None, "from_group": "billing", "to_group": "sales",
                             "reason": "wrong queue", "note_id": None}
    assert watchers(seeded, cid) == ["alice"]  # keep-informed is the default


def test_transfer_to_a_user_assigns_notifies_and_links_the_message(seeded):
    cid = make_conversation(seeded, status="pending", boomerang_at=T0 + timedelta(days=1))
    records = seeded.json("transfer", cid, "--to", "user:bob", "--message", "Needs a refund, see invoice",
                          "--no-keep-informed", as_="alice")
    assert records[0]["assignee"] == "bob" and records[0]["status"] == "new" and records[0]["group"] == "billing"
    assert conv(seeded, cid)["boomerang_at"] is None
    [event] = transfer_events(seeded)
    assert event["data"]["to_user"] == "bob" and event["data"]["from_user"] is None
    [note] = seeded.rows("SELECT id, text, event_id, author_id FROM notes WHERE conversation_id = :id", id=cid)
    assert note["text"] == "Needs a refund, see invoice"
    assert note["event_id"] == event["id"] and event["data"]["note_id"] == note["id"]
    assert watchers(seeded, cid) == []
    [outbox] = seeded.rows("SELECT recipient, subject, body FROM outbox WHERE dedupe_key LIKE 'transferred:%'")
    assert outbox["recipient"] == "bob@desk.example" and "alice" in outbox["subject"]
    assert "Needs a refund" in outbox["body"]
    # the note is internal: shown to agents, never in a transcript or a contact message
    assert seeded.scalar("SELECT count(*) FROM messages WHERE text LIKE '%refund%'") == 0


def test_bare_names_ambiguity_and_unknown_references(seeded):
    cid = make_conversation(seeded)
    seeded.ok("user", "add", "support", "--location", "paris")  # a user named like a group
    before = seeded.dump()
    result = seeded.run("transfer", cid, "--to", "support", as_="alice")
    assert result.exit_code == 2 and "user:support" in result.stderr and "group:support" in result.stderr
    for ref, code in (("user:nobody", 3), ("group:nowhere", 3), ("nothing", 3), ("team:x", 2), ("user:", 2)):
        result = seeded.run("transfer", cid, "--to", ref, as_="alice")
        assert result.exit_code == code, (ref, result)
    assert seeded.dump() == before
    assert seeded.json("transfer", cid, "--to", "bob", as_="alice")[0]["assignee"] == "bob"
    assert seeded.json("transfer", cid, "--to", "sales", as_="carol")[0]["group"] == "sales"


def test_transfer_to_an_away_user_warns(seeded):
    cid = make_conversation(seeded)
    seeded.ok("availability", "set", "away", as_="bob")
    result = seeded.run("transfer", cid, "--to", "user:bob", as_="alice")
    assert result.exit_code == 0
    assert "warning: bob is away" in result.stderr
    result = seeded.run("transfer", cid, "--to", "user:carol", as_="alice")
    assert "warning" not in result.stderr


def test_from_selects_every_not_closed_conversation_oldest_first_with_limit(seeded):
    mine = [make_conversation(seeded, assignee="alice", status="open", created_at=T0 + timedelta(hours=i))
            for i in range(4)]
    make_conversation(seeded, assignee="alice", status="closed", closed_at=T0, resolved_at=T0)
    make_conversation(seeded, assignee="bob", status="open", group="support")
    records = seeded.json("transfer", "--from", "alice", "--to", "group:support", "--limit", "2",
                          "--message", "Alice is on leave", as_="carol")
    assert [r["id"] for r in records] == mine[:2]
    assert seeded.scalar("SELECT count(*) FROM notes WHERE text = 'Alice is on leave'") == 2
    result = seeded.run("transfer", "--from", "alice", "--to", "user:bob", as_="carol", fmt="json")
    assert [r["id"] for r in result.json()] == mine[2:]
    assert result.stderr.strip() == "transferred 2 conversations"
    result = seeded.run("transfer", "--from", "alice", "--to", "user:bob", as_="carol")
    assert result.exit_code == 0 and "no conversations matched" in result.stderr
    assert seeded.run("transfer", "--from", "ghost", "--to", "user:bob", as_="carol").exit_code == 3
    assert seeded.run("transfer", mine[0], "--from", "alice", "--to", "bob", as_="carol").exit_code == 2


def test_transfer_from_stdin_pipeline(seeded):
    ids = [make_conversation(seeded) for _ in range(3)]
    listed = seeded.ok("list", "--group", "billing", "--format", "ids", as_="alice").stdout
    records = seeded.json("transfer", "-", "--to", "group:support", input=listed, as_="alice")
    assert [r["id"] for r in records] == ids


def test_rules_transfer_requires_claim_and_transfer_to_user(seeded, tmp_path):
    free = make_conversation(seeded)
    mine = make_conversation(seeded, assignee="alice", status="open")
    config = tmp_path / "rules.yaml"
    config.write_text("rules: {transfer_requires_claim: true, transfer_to_user: false}\n")
    env = {"DESKCTL_CONFIG": str(config)}
    before = seeded.dump()
    result = seeded.run("transfer", mine, free, "--to", "group:support", as_="alice", env=env)
    assert result.exit_code == 4 and f"#{free}: claim it first" in result.stderr
    result = seeded.run("transfer", mine, "--to", "user:bob", as_="alice", env=env)
    assert result.exit_code == 5 and "transfer_to_user" in result.stderr
    assert seeded.dump() == before
    seeded.ok("transfer", mine, "--to", "group:support", as_="alice", env=env)
    seeded.ok("transfer", free, "--to", "group:support", as_="carol", env=env)  # supervisors need no claim


def test_refusals_are_atomic(seeded):
    ok = make_conversation(seeded)
    closed = make_conversation(seeded, status="closed", closed_at=T0, resolved_at=T0)
    lyon = make_conversation(seeded, group="sales")
    before = seeded.dump()
    result = seeded.run("transfer", ok, lyon, closed, "--to", "group:support", "--message", "x", as_="alice")
    assert result.exit_code == 5
    assert f"#{lyon}:" in result.stderr and f"#{closed}:" in result.stderr and f"#{ok}:" not in result.stderr
    assert seeded.dump() == before
    result = seeded.run("transfer", ok, "--to", "group:support", "--dry-run", as_="alice", fmt="json")
    assert result.json()[0]["group"] == "support" and "dry run" in result.stderr
    assert seeded.dump() == before
    assert seeded.run("transfer", ok, as_="alice").exit_code == 2  # --to is required


def test_a_large_transfer_to_a_user_queues_one_summary_notification(seeded):
    ids = [make_conversation(seeded, assignee="alice", status="open", with_message=False) for _ in range(51)]
    result = seeded.run("transfer", "--from", "alice", "--to", "user:bob", as_="carol", fmt="ids")
    assert result.exit_code == 0 and [int(x) for x in result.stdout.split()] == ids
    [note] = seeded.rows("SELECT recipient, subject, body, conversation_id FROM outbox "
                         "WHERE dedupe_key LIKE 'transferred:%'")
    assert note["recipient"] == "bob@desk.example" and note["conversation_id"] is None
    assert note["subject"] == "51 conversations were transferred to you by carol"
    assert f"#{ids[0]}" in note["body"] and f"#{ids[-1]}" in note["body"]
    assert seeded.scalar("SELECT count(*) FROM watchers WHERE user_id = (SELECT id FROM users "
                         "WHERE handle = 'carol')") == 51
    assert seeded.scalar("SELECT count(*) FROM events WHERE kind = 'transferred'") == 51


def sla_columns(desk, cid):
    [row] = desk.rows("SELECT sla_policy, first_response_due, resolution_due FROM conversations WHERE id = :id",
                      id=cid)
    return row


def test_transfer_refreshes_sla_when_a_policy_names_the_group(seeded, tmp_path):
    """Bulk verbs skip the SLA refresh where no input of the policy choice changed; a
    policy keyed on the group is such an input, so the transfer must re-pick it."""
    config = tmp_path / "by-group.yaml"
    config.write_text("clock: {override: true}\n"
                      "sla:\n  policies:\n"
                      "    - {name: sales-fast, when: {group: [sales]}, first_response: 15m, hours: 24x7}\n"
                      "    - {name: default, first_response: 4h, resolution: 3d, hours: 24x7}\n")
    env = {"DESKCTL_CONFIG": str(config)}
    cid = make_conversation(seeded, assignee="alice", status="open")
    seeded.ok("reply", cid, "Looking into it", as_="alice", env=env)  # picks the policy under this config
    assert sla_columns(seeded, cid)["sla_policy"] == "default"
    seeded.ok("transfer", cid, "--to", "group:sales", as_="carol", env=env)
    assert sla_columns(seeded, cid)["sla_policy"] == "sales-fast"


def test_transfer_leaves_deadlines_alone_when_no_policy_looks_at_groups(seeded):
    cid = make_conversation(seeded, assignee="alice", status="open")
    seeded.ok("reply", cid, "Looking into it", as_="alice")
    assert sla_columns(seeded, cid)["sla_policy"] == "default"
    # Mark the stored row: a refresh would rewrite it, a skipped one leaves it.
    with seeded.engine.begin() as conn:
        from sqlalchemy import text

        conn.execute(text("UPDATE conversations SET sla_policy = 'marker' WHERE id = :id"), {"id": cid})
    seeded.ok("transfer", cid, "--to", "group:sales", as_="carol")
    assert sla_columns(seeded, cid)["sla_policy"] == "marker"
    seeded.ok("pending", cid, as_="root")  # a change of phase does refresh
    assert sla_columns(seeded, cid)["sla_policy"] == "default"
