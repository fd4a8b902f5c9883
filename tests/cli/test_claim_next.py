"""`deskctl claim` and `deskctl next`: assignment, conflicts, roles, audit rows, and the
shared bulk behaviour (atomic, dry run, targets, confirmation)."""

from __future__ import annotations

from datetime import timedelta

from tests.factories import T0, make_conversation


def conv(desk, cid):
    [row] = desk.rows("SELECT c.status, u.handle AS assignee, g.name AS grp, c.version, c.claimed_at "
                      "FROM conversations c LEFT JOIN users u ON u.id = c.assignee_id "
                      "LEFT JOIN groups g ON g.id = c.group_id WHERE c.id = :id", id=cid)
    return row


def events(desk, kind=None):
    sql = "SELECT conversation_id, actor, kind, data FROM events"
    if kind:
        sql += " WHERE kind = :kind"
    rows = desk.rows(sql + " ORDER BY id", kind=kind)
    import json

    for row in rows:
        if isinstance(row["data"], str):
            row["data"] = json.loads(row["data"])
    return rows


def test_claim_sets_assignee_opens_and_records_the_event(seeded):
    a = make_conversation(seeded)
    b = make_conversation(seeded)
    result = seeded.run("claim", a, f"#{b}", as_="alice", fmt="json")
    assert result.exit_code == 0, result
    records = result.json()
    assert records == [
        {"id": a, "status": "open", "assignee": "alice", "group": "billing", "previous_status": "new",
         "previous_assignee": None, "previous_group": "billing"},
        {"id": b, "status": "open", "assignee": "alice", "group": "billing", "previous_status": "new",
         "previous_assignee": None, "previous_group": "billing"},
    ]
    assert result.stderr.strip() == "claimed 2 conversations"
    row = conv(seeded, a)
    assert row["status"] == "open" and row["assignee"] == "alice" and row["version"] == 2
    assert [(e["conversation_id"], e["actor"], e["kind"]) for e in events(seeded, "claimed")] == \
        [(a, "alice", "claimed"), (b, "alice", "claimed")]


def test_claim_keeps_pending_status(seeded):
    cid = make_conversation(seeded, status="pending")
    [record] = seeded.json("claim", cid, as_="alice")
    assert record["status"] == "pending" and record["assignee"] == "alice"


def test_claim_of_own_conversation_is_a_no_op(seeded):
    cid = make_conversation(seeded, assignee="alice", status="open")
    before = seeded.dump()
    [record] = seeded.json("claim", cid, as_="alice")
    assert record["status"] == "open" and record["previous_assignee"] == "alice"
    assert seeded.dump() == before


def test_claimed_by_someone_else_is_a_conflict_and_steal_needs_a_supervisor(seeded):
    cid = make_conversation(seeded, assignee="bob", status="open", group="support")
    before = seeded.dump()
    result = seeded.run("claim", cid, as_="carol")
    assert result.exit_code == 4 and "claimed by bob" in result.stderr and "--steal" in result.stderr
    result = seeded.run("claim", cid, "--steal", as_="bob")
    assert result.exit_code == 5 and "supervisor" in result.stderr
    assert seeded.dump() == before

    [record] = seeded.json("claim", cid, "--steal", as_="carol")
    assert record["assignee"] == "carol" and record["previous_assignee"] == "bob"
    [event] = events(seeded, "stolen")
    assert event["actor"] == "carol" and event["data"] == {"from_user": "bob"}
    # bob hears about it
    [note] = seeded.rows("SELECT recipient, subject FROM outbox WHERE dedupe_key LIKE 'stolen:%'")
    assert note["recipient"] == "bob@desk.example" and "carol" in note["subject"]


def test_claim_out_of_scope_closed_and_missing_fail_atomically(seeded):
    ok = make_conversation(seeded)
    closed = make_conversation(seeded, status="closed", closed_at=T0, resolved_at=T0)
    lyon = make_conversation(seeded, group="sales")
    before = seeded.dump()
    result = seeded.run("claim", ok, closed, 999, lyon, as_="alice")
    assert result.exit_code == 4  # the first failure in target order: the closed one
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith(f"deskctl: #{closed}: ") and "closed" in lines[0]
    assert lines[1].startswith("deskctl: #999: ") and "not found" in lines[1]
    assert lines[2].startswith(f"deskctl: #{lyon}: ") and "may not act" in lines[2]
    assert "nothing was changed" in lines[-1]
    assert seeded.dump() == before
    # single failures: their own code, one line
    result = seeded.run("claim", 999, as_="alice")
    assert result.exit_code == 3 and result.stderr.count("\n") == 1
    result = seeded.run("claim", lyon, as_="alice")
    assert result.exit_code == 5
    assert seeded.dump() == before


def test_agents_act_on_their_location_only_when_the_rule_allows(seeded, tmp_path):
    cid = make_conversation(seeded, group="support")  # paris, not alice's group
    config = tmp_path / "strict.yaml"
    config.write_text("rules: {agents_act_on_location: false}\n")
    before = seeded.dump()
    result = seeded.run("claim", cid, as_="alice", env={"DESKCTL_CONFIG": str(config)})
    assert result.exit_code == 5
    assert seeded.dump() == before
    assert seeded.json("claim", cid, as_="alice")[0]["assignee"] == "alice"


def test_dry_run_prints_the_records_and_changes_nothing(seeded):
    cid = make_conversation(seeded)
    before = seeded.dump()
    result = seeded.run("claim", cid, "--dry-run", as_="alice", fmt="json")
    assert result.exit_code == 0
    assert result.json()[0]["status"] == "open" and result.json()[0]["assignee"] == "alice"
    assert "dry run" in result.stderr
    assert seeded.dump() == before


def test_targets_from_stdin_filter_all_and_limit(seeded):
    ids = [make_conversation(seeded, created_at=T0 + timedelta(minutes=i)) for i in range(4)]
    other = make_conversation(seeded, group="support")
    result = seeded.run("claim", "-", input=f"# morning batch\n{ids[0]}\n\n#{ids[1]}  # vip\n",
                        as_="alice", fmt="json")
    assert [r["id"] for r in result.json()] == ids[:2]
    result = seeded.run("claim", as_="alice")
    assert result.exit_code == 2 and "no targets" in result.stderr
    records = seeded.json("claim", "--group", "billing", "--unassigned", "--limit", "1", as_="carol")
    assert [r["id"] for r in records] == [ids[2]]
    records = seeded.json("claim", "--all", "--unassigned", as_="root")
    assert sorted(r["id"] for r in records) == sorted([ids[3], other])
    result = seeded.run("claim", "--status", "new", as_="root")
    assert result.exit_code == 0 and "no conversations matched" in result.stderr
    result = seeded.run("claim", ids[0], "--group", "billing", as_="root")
    assert result.exit_code == 2


def test_confirmation_only_on_a_terminal_for_large_filtered_sets(seeded, monkeypatch):
    ids = [make_conversation(seeded) for _ in range(21)]
    from deskctl import term

    monkeypatch.setattr(term, "can_prompt", lambda: True)
    before = seeded.dump()
    result = seeded.run("claim", "--group", "billing", input="n\n", as_="carol")
    assert result.exit_code == 2 and "claim 21 conversations?" in result.stderr
    assert seeded.dump() == before
    result = seeded.run("claim", "--group", "billing", input="y\n", as_="carol", fmt="ids")
    assert result.exit_code == 0 and len(result.stdout.split()) == 21
    # explicit ids and --yes never ask
    seeded.ok("claim", *ids, "--steal", as_="root")
    seeded.ok("claim", "--group", "billing", "--steal", "--yes", as_="carol")
    monkeypatch.setattr(term, "can_prompt", lambda: False)
    seeded.ok("claim", "--group", "billing", "--steal", as_="root")


# -- next -----------------------------------------------------------------------------------

def test_next_takes_the_most_urgent_of_my_groups(seeded):
    old_low = make_conversation(seeded, created_at=T0 - timedelta(hours=5))
    high_late = make_conversation(seeded, priority="high", created_at=T0,
                                  first_response_due=T0 + timedelta(hours=4))
    high_soon = make_conversation(seeded, priority="high", created_at=T0 + timedelta(hours=1),
                                  first_response_due=T0 + timedelta(hours=2))
    make_conversation(seeded, priority="urgent", group="support")  # not alice's group
    make_conversation(seeded, priority="urgent", assignee="bob")   # already taken
    got = [seeded.json("next", as_="alice")[0]["id"] for _ in range(3)]
    assert got == [high_soon, high_late, old_low]
    result = seeded.run("next", as_="alice")
    assert result.exit_code == 3 and "no conversation waiting in billing" in result.stderr
    assert conv(seeded, high_soon)["status"] == "open"
    assert [e["conversation_id"] for e in events(seeded, "claimed")] == got


def test_next_needs_availability_and_membership(seeded):
    cid = make_conversation(seeded, group="support")
    seeded.ok("availability", "set", "away", as_="bob")
    before = seeded.dump()
    result = seeded.run("next", as_="bob")
    assert result.exit_code == 4 and "away" in result.stderr
    result = seeded.run("next", "--group", "support", as_="alice")
    assert result.exit_code == 5
    result = seeded.run("next", "--group", "nope", as_="alice")
    assert result.exit_code == 3
    assert seeded.dump() == before
    [record] = seeded.json("next", "--group", "support", as_="carol")
    assert record["id"] == cid and record["assignee"] == "carol"


def test_a_change_made_after_our_read_makes_us_exit_4_with_nothing_changed(seeded, monkeypatch):
    """Simulate the lost race: the snapshot says version 1, the row is already at 2."""
    from deskctl.services.conversations import lifecycle
    a = make_conversation(seeded)
    b = make_conversation(seeded)
    with seeded.session() as session:
        from deskctl.models import Conversation

        session.get(Conversation, b).subject = "edited elsewhere"  # bumps the version to 2
    real = lifecycle._write_chunks

    def stale(spooled):
        for chunk in real(spooled):
            yield [s._replace(version=1) for s in chunk]

    monkeypatch.setattr(lifecycle, "_write_chunks", stale)
    before = seeded.dump()
    result = seeded.run("claim", a, b, as_="alice")
    assert result.exit_code == 4 and "changed by someone else" in result.stderr and "retry" in result.stderr
    assert seeded.dump() == before
