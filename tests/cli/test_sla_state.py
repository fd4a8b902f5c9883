"""The SLA as read (SPEC §9): `sla.state` and `sla.breached` always agree, at whatever
time they are read, with or without a sweep in between; a resolved or closed
conversation shows its final outcome (`met`, `late 2h`), which stops growing."""

from __future__ import annotations

from datetime import timedelta

from deskctl.config import load_settings
from deskctl.services.sla import deadlines as sla
from tests.factories import T0, make_conversation

# The built-in default policy: first response 4h, next response 8h, resolution 3d, 24x7.


def at(desk, delta: timedelta) -> None:
    desk.now = (T0 + delta).isoformat()


def created(desk, **kw) -> int:
    """A conversation received at T0 whose SLA was computed then (as ingest does)."""
    cid = make_conversation(desk, **kw)
    with desk.session() as session:
        sla.refresh(session, [cid], now=T0, settings=load_settings(None, desk.url))
    return cid


def sweep(desk, delta: timedelta) -> None:
    with desk.session() as session:
        sla.sweep(session, now=T0 + delta, settings=load_settings(None, desk.url))


def reading(desk, cid) -> dict:
    [record] = [r for r in desk.json("list") if r["id"] == cid]
    return record["sla"]


def sla_ids(desk, state: str) -> list[int]:
    return [r["id"] for r in desk.json("list", "--sla", state)]


def table_cell(desk, cid) -> str:
    out = desk.ok("list", fmt="table").stdout
    [line] = [ln for ln in out.splitlines() if ln.split() and ln.split()[0] == str(cid)]
    return line


def assert_agree(desk) -> None:
    """Every record: state breached exactly when its breached list is not empty, and
    `list --sla STATE` selects exactly the records that print STATE."""
    records = desk.json("list")
    for record in records:
        assert (record["sla"]["state"] == "breached") == bool(record["sla"]["breached"]), record
    for state in ("ok", "warning", "breached", "none"):
        assert sla_ids(desk, state) == [r["id"] for r in records if r["sla"]["state"] == state]


def test_a_running_target_past_due_is_breached_when_read_before_any_sweep(seeded):
    cid = created(seeded, assignee="alice")
    at(seeded, timedelta(hours=2))
    assert reading(seeded, cid)["state"] == "ok"
    at(seeded, timedelta(hours=3, minutes=30))  # past 75% of 4h: warning, no sweep needed
    assert reading(seeded, cid)["state"] == "warning"
    assert sla_ids(seeded, "warning") == [cid]
    at(seeded, timedelta(hours=5))
    got = reading(seeded, cid)
    assert (got["state"], got["breached"], got["late_s"], got["outcome"]) == \
        ("breached", ["first_response"], 3600, None)
    assert sla_ids(seeded, "breached") == [cid] and sla_ids(seeded, "ok") == []
    assert "late 1h" in table_cell(seeded, cid)
    assert_agree(seeded)


def test_state_and_breached_agree_after_a_change_refreshed_the_sla_without_a_sweep(seeded):
    # Issue 13 bug 6: a refresh (here by `claim`) stored `breached` while the list stayed
    # empty until the next sweep.
    cid = created(seeded)
    other = created(seeded, contact_email="max@example.org")
    at(seeded, timedelta(hours=5))
    seeded.ok("claim", cid, as_="alice")
    got = reading(seeded, cid)
    assert (got["state"], got["breached"]) == ("breached", ["first_response"])
    assert_agree(seeded)
    sweep(seeded, timedelta(hours=6))  # the sweep records the mark: the reading is the same
    at(seeded, timedelta(hours=6))
    got = reading(seeded, cid)
    assert (got["state"], got["breached"]) == ("breached", ["first_response"])
    assert reading(seeded, other)["breached"] == ["first_response"]
    assert_agree(seeded)


def test_a_closed_late_conversation_shows_its_final_delay_which_stops_growing(seeded):
    cid = created(seeded, assignee="alice")
    at(seeded, timedelta(hours=6))
    seeded.ok("reply", cid, "Sorry for the wait.", as_="alice")  # first response 2h late
    at(seeded, timedelta(hours=7))
    seeded.ok("close", cid, as_="alice")
    for later in (timedelta(hours=7), timedelta(days=5), timedelta(days=30)):
        at(seeded, later)
        got = reading(seeded, cid)
        assert (got["state"], got["breached"], got["outcome"], got["late_s"]) == \
            ("breached", ["first_response"], "late", 7200), later
        assert "late 2h" in table_cell(seeded, cid)
    # The thread view (`show` in a pipe) says the same, not a bare state.
    assert "sla: default (late 2h)   breached: first_response" in seeded.ok("show", cid).stdout
    assert_agree(seeded)


def test_a_conversation_closed_in_time_shows_met_forever(seeded):
    cid = created(seeded, assignee="alice")
    at(seeded, timedelta(hours=1))
    seeded.ok("reply", cid, "Done.", as_="alice")
    at(seeded, timedelta(hours=2))
    seeded.ok("resolve", cid, as_="alice")
    for later in (timedelta(hours=2), timedelta(days=40)):
        at(seeded, later)
        got = reading(seeded, cid)
        assert (got["state"], got["breached"], got["outcome"], got["late_s"]) == ("ok", [], "met", None)
        assert " met " in table_cell(seeded, cid) + " "
        assert sla_ids(seeded, "ok") == [cid]


def test_closing_an_unanswered_conversation_after_its_due_time_is_late_without_a_sweep(seeded):
    cid = created(seeded, assignee="alice")
    at(seeded, timedelta(hours=5))
    seeded.ok("close", cid, as_="alice")
    at(seeded, timedelta(days=10))
    got = reading(seeded, cid)
    assert (got["state"], got["breached"], got["outcome"], got["late_s"]) == \
        ("breached", ["first_response"], "late", 3600)
    assert seeded.scalar("SELECT count(*) FROM sla_marks WHERE level = 'breached'") == 1
    assert_agree(seeded)
