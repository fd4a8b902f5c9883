"""`db.bulk.execute_many`: the driver's executemany with the column types' conversions,
the columns' scalar defaults and the statement's own values, on both engines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import bindparam, insert, select, update

from deskctl.db.bulk import execute_many
from deskctl.db.dml import dialect_insert
from deskctl.models import Conversation, Event, Outbox
from tests.factories import make_conversation

NOW = datetime(2026, 11, 23, 9, 30, 15, 123456, tzinfo=UTC)


def outbox_row(key: str, cid: int) -> dict:
    return {"kind": "notification", "dedupe_key": key, "conversation_id": cid, "user_id": None,
            "recipient": "carol@desk.example", "subject": "s", "body": "b", "status": "queued", "attempts": 0,
            "next_attempt_at": NOW, "created_at": NOW}


def test_inserts_with_defaults_and_counts_what_a_conflict_skips(seeded):
    cid = make_conversation(seeded)
    with seeded.session() as s:
        stmt = dialect_insert(s)(Outbox.__table__).on_conflict_do_nothing()
        assert execute_many(s.connection(), stmt, [outbox_row("a", cid), outbox_row("b", cid)]) == 2
        assert execute_many(s.connection(), stmt, [outbox_row("b", cid), outbox_row("c", cid)]) == 1
        rows = s.execute(select(Outbox.dedupe_key, Outbox.channel, Outbox.next_attempt_at)
                         .order_by(Outbox.dedupe_key)).all()
    assert [r.dedupe_key for r in rows] == ["a", "b", "c"]
    assert {r.channel for r in rows} == {"email"}  # the column's default, not given in the rows
    assert {r.next_attempt_at for r in rows} == {NOW}  # microseconds and zone kept


def test_json_and_times_round_trip_and_an_update_keeps_its_own_values(seeded):
    cid = make_conversation(seeded)
    with seeded.session() as s:
        execute_many(s.connection(), insert(Event.__table__), [
            {"conversation_id": cid, "actor": "system", "kind": "sla_breached", "at": NOW,
             "data": {"target": "first_response", "due": "2026-11-23T09:00:00+00:00", "n": [1, 2]}}])
        c = Conversation.__table__
        stmt = (update(c).where(c.c.id == bindparam("_id"))
                .values(sla_state="breached", sla_next_check_at=bindparam("_next")))
        assert execute_many(s.connection(), stmt, [{"_id": cid, "_next": NOW + timedelta(hours=1)}]) == 1
        event = s.execute(select(Event.data, Event.at).where(Event.kind == "sla_breached")).one()
        conv = s.execute(select(c.c.sla_state, c.c.sla_next_check_at).where(c.c.id == cid)).one()
    assert event.data == {"target": "first_response", "due": "2026-11-23T09:00:00+00:00", "n": [1, 2]}
    assert event.at == NOW
    assert conv.sla_state == "breached" and conv.sla_next_check_at == NOW + timedelta(hours=1)


def test_a_computed_default_must_be_given(seeded):
    cid = make_conversation(seeded)
    with seeded.session() as s, pytest.raises(ValueError, match="data"):
        execute_many(s.connection(), insert(Event.__table__),
                     [{"conversation_id": cid, "actor": "system", "kind": "note", "at": NOW}])
