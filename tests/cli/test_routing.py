"""Routing (SPEC §10) from the command line: the `route` job in assign and offer modes,
accept with `claim`, `decline`, offer expiry to `rona` driven by DESKCTL_NOW, immediate
routing when an agent becomes available, `inbox` offers first."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from tests.factories import T0, hours, make_conversation

NOW = T0 + hours(1)


def configure(desk, monkeypatch, mode, extra=""):
    config = desk.tmp_path / f"routing-{mode}.yaml"
    config.write_text("clock: {override: true}\n"
                      f"routing: {{mode: {mode}, offer_timeout: 2m, capacity: {{default: 2, chat: 1}}}}\n" + extra)
    monkeypatch.setenv("DESKCTL_CONFIG", str(config))
    desk.now = NOW.isoformat()


@pytest.fixture
def billing(seeded, monkeypatch):
    """billing: alice (agent) and carol (supervisor); carol is away, so alice gets the work."""
    seeded.ok("availability", "set", "away", "--user", "carol", as_="carol")
    return seeded


def holders(desk):
    return {r["id"]: (r["status"], r["assignee"], r["offered_to"]) for r in desk.json("list")}


def kinds(desk, kind):
    rows = desk.rows("SELECT conversation_id, actor, data FROM events WHERE kind = :k ORDER BY id", k=kind)
    for row in rows:  # JSON text on SQLite, JSONB on PostgreSQL
        row["data"] = json.loads(row["data"]) if isinstance(row["data"], str) else row["data"]
    return rows


def test_pull_mode_route_does_nothing(billing, monkeypatch):
    configure(billing, monkeypatch, "pull")
    cid = make_conversation(billing)
    [run] = billing.json("jobs", "run", "route")
    assert run["outcome"] == "ok" and run["counts"]["routed"] == 0
    assert holders(billing)[cid] == ("new", None, None)


def test_assign_mode_urgent_first_up_to_capacity_per_channel(billing, monkeypatch):
    configure(billing, monkeypatch, "assign")
    old = make_conversation(billing, subject="old", created_at=T0 - hours(5))
    urgent = make_conversation(billing, subject="urgent", priority="urgent")
    newest = make_conversation(billing, subject="newest", created_at=T0 + hours(0.5))
    chat1 = make_conversation(billing, channel="chat", subject="chat 1", created_at=T0 - hours(1))
    chat2 = make_conversation(billing, channel="chat", subject="chat 2")
    support = make_conversation(billing, group="support")  # bob's group
    [run] = billing.json("jobs", "run", "route")
    assert run["counts"]["routed"] == 4
    got = holders(billing)
    # capacity email 2 (default), chat 1: urgent and the oldest email, the oldest chat
    assert got[urgent] == got[old] == got[chat1] == ("open", "alice", None)
    assert got[newest] == got[chat2] == ("new", None, None)
    assert got[support] == ("open", "bob", None)
    routed = kinds(billing, "routed")
    assert Counter(r["data"]["user"] for r in routed) == {"alice": 3, "bob": 1}
    assert {r["actor"] for r in routed} == {"system"}
    # a second run changes nothing: alice is full
    assert billing.json("jobs", "run", "route")[0]["counts"]["routed"] == 0
    # resolving one frees a slot: the next email goes to her
    billing.ok("resolve", urgent, as_="alice")
    billing.ok("jobs", "run", "route")
    assert holders(billing)[newest] == ("open", "alice", None)


def test_assign_mode_least_loaded_then_longest_since_last_routing(billing, monkeypatch):
    configure(billing, monkeypatch, "assign")
    billing.ok("availability", "set", "available", "--user", "carol", as_="carol")
    billing.ok("user", "set", "carol", "--role", "agent")
    make_conversation(billing, assignee="alice", status="open", subject="alice already has one")
    ids = [make_conversation(billing, subject=f"w{i}", created_at=T0 + hours(i / 10)) for i in range(3)]
    billing.ok("jobs", "run", "route")
    got = holders(billing)
    # carol (0 open) first, then alternate by load: carol, then alice/carol tie -> longest since routed
    assert [got[i][1] for i in ids] == ["carol", "alice", "carol"]


def test_offer_accept_with_claim_and_others_get_exit_4(billing, monkeypatch):
    configure(billing, monkeypatch, "offer")
    cid = make_conversation(billing)
    watched = make_conversation(billing, subject="watched", group=None, watchers=["alice"], priority="urgent")
    [run] = billing.json("jobs", "run", "route")
    assert run["counts"]["offered"] == 1
    [record] = billing.json("show", cid)
    assert record["status"] == "new" and record["assignee"] is None and record["offered_to"] == "alice"
    assert record["offer_expires_at"] == (NOW + hours(2 / 60)).isoformat()
    assert "offered to: alice until" in billing.ok("show", cid, fmt="table", as_="alice").stdout
    [event] = kinds(billing, "offered")
    assert event["data"]["user"] == "alice" and event["conversation_id"] == cid
    [note] = billing.rows("SELECT recipient, subject, body FROM outbox WHERE dedupe_key LIKE 'offered:%'")
    assert note["recipient"] == "alice@desk.example" and f"decline {cid}" in note["body"]
    # the inbox lists the offer first, before an urgent watched conversation
    assert [r["id"] for r in billing.json("inbox", as_="alice")] == [cid, watched]
    # someone else's claim is a conflict; nothing changes
    before = billing.dump()
    refused = billing.run("claim", cid, as_="bob")
    assert refused.exit_code == 4 and "offered to alice" in refused.stderr and refused.stdout == ""
    assert billing.dump() == before
    # the offered agent accepts
    [change] = billing.json("claim", cid, as_="alice")
    assert change["status"] == "open" and change["assignee"] == "alice"
    assert holders(billing)[cid] == ("open", "alice", None)
    assert billing.scalar("SELECT offer_expires_at FROM conversations WHERE id = :i", i=cid) is None


def test_steal_takes_an_offered_conversation(billing, monkeypatch):
    configure(billing, monkeypatch, "offer")
    cid = make_conversation(billing)
    billing.ok("jobs", "run", "route")
    billing.ok("claim", cid, "--steal", as_="carol")
    assert holders(billing)[cid] == ("open", "carol", None)


def test_decline_goes_to_the_next_agent_and_never_back(billing, monkeypatch):
    configure(billing, monkeypatch, "offer")
    billing.ok("availability", "set", "available", "--user", "carol", as_="carol")
    cid = make_conversation(billing)
    billing.ok("jobs", "run", "route")
    first = holders(billing)[cid][2]
    second = "carol" if first == "alice" else "alice"
    # not offered to bob: nothing to decline
    assert billing.run("decline", cid, as_="bob").exit_code == 4
    [change] = billing.json("decline", cid, as_=first)
    assert change["id"] == cid and change["status"] == "new"
    assert holders(billing)[cid] == ("new", None, second)  # re-routed at once
    [declined] = kinds(billing, "declined")
    assert declined["actor"] == first and declined["data"]["user"] == first
    billing.ok("decline", cid, as_=second)
    billing.ok("jobs", "run", "route")
    assert holders(billing)[cid] == ("new", None, None)  # both declined: it waits for a pull
    assert billing.run("decline", cid, as_=second).exit_code == 4
    billing.ok("claim", cid, as_=first)  # pulling it is still allowed


def test_offer_expiry_rona_supervisors_and_available_again(billing, monkeypatch):
    configure(billing, monkeypatch, "offer")
    cid = make_conversation(billing)
    billing.ok("jobs", "run", "route")
    billing.now = (NOW + hours(1 / 60)).isoformat()
    billing.ok("jobs", "run", "route")  # not expired yet
    assert holders(billing)[cid] == ("new", None, "alice")
    billing.now = (NOW + hours(3 / 60)).isoformat()
    [run] = billing.json("jobs", "run", "route")
    assert run["counts"]["expired"] == 1 and run["counts"]["offered"] == 0
    assert holders(billing)[cid] == ("new", None, None)
    [expired] = kinds(billing, "offer_expired")
    assert expired["conversation_id"] == cid and expired["data"]["user"] == "alice"
    # rona is built in: config's availability_states does not list it
    [me] = billing.json("availability", as_="alice")
    assert me["availability"] == "rona"
    [note] = billing.rows("SELECT recipient, subject FROM outbox WHERE dedupe_key LIKE 'offer_expired:%'")
    assert note["recipient"] == "carol@desk.example" and "alice" in note["subject"]
    # no more offers while rona
    billing.ok("jobs", "run", "route")
    assert holders(billing)[cid] == ("new", None, None)
    # available again: offered at once, without waiting for the job
    billing.ok("availability", "set", "available", as_="alice")
    assert holders(billing)[cid] == ("new", None, "alice")


def test_login_routes_at_once_in_assign_mode(billing, monkeypatch):
    configure(billing, monkeypatch, "assign")
    billing.ok("availability", "set", "offline", as_="alice")
    cid = make_conversation(billing)
    billing.ok("jobs", "run", "route")
    assert holders(billing)[cid] == ("new", None, None)
    billing.ok("login", as_="alice")
    assert holders(billing)[cid] == ("open", "alice", None)


def test_next_skips_offered_conversations_and_verbs_withdraw_offers(billing, monkeypatch):
    configure(billing, monkeypatch, "offer")
    offered = make_conversation(billing)
    billing.ok("jobs", "run", "route")
    waiting = make_conversation(billing, subject="not offered")
    [change] = billing.json("next", as_="alice")
    assert change["id"] == waiting
    billing.ok("transfer", offered, "--to", "group:support", as_="carol")
    assert holders(billing)[offered] == ("new", None, None)


def test_bad_routing_config_is_78(billing, monkeypatch):
    config = billing.tmp_path / "bad.yaml"
    config.write_text("routing: {mode: push, capacity: {fax: 2}}\n")
    result = billing.run("list", env={"DESKCTL_CONFIG": str(config)})
    assert result.exit_code == 78 and "routing.mode" in result.stderr
    config.write_text("routing: {capacity: {fax: 2}}\n")
    result = billing.run("list", env={"DESKCTL_CONFIG": str(config)})
    assert result.exit_code == 78 and "routing.capacity.fax" in result.stderr


def test_report_agents_counts_offers_declines_and_rona(billing, monkeypatch):
    configure(billing, monkeypatch, "offer")
    billing.ok("availability", "set", "available", "--user", "carol", as_="carol")
    first = make_conversation(billing, subject="first", created_at=T0 - hours(1))
    billing.ok("jobs", "run", "route")  # one conversation, two agents: offered to one of them
    taker = holders(billing)[first][2]
    other = "carol" if taker == "alice" else "alice"
    billing.ok("decline", first, as_=taker)  # re-offered at once to the other
    billing.now = (NOW + hours(3 / 60)).isoformat()
    billing.ok("jobs", "run", "route")  # the other lets it expire
    rows = {r["agent"]: r for r in billing.json(
        "report", "agents", "--by", "agent", "--since", "2026-11-20", "--until", "2026-11-21")}
    assert (rows[taker]["offered"], rows[taker]["declined"], rows[taker]["rona"]) == (1, 1, 0)
    assert (rows[other]["offered"], rows[other]["declined"], rows[other]["rona"]) == (1, 0, 1)
    assert list(rows[taker])[-3:] == ["offered", "declined", "rona"]
