"""Queries that name a few conversations and an event kind must walk the
(conversation_id, id) index. Without ANALYZE statistics SQLite prefers the (kind, at)
index for `kind = …`, which walks every event of that kind on the desk for each chunk
of ids (the boomerang's reminders read all 246,000 `pending` events of the 1M desk five
times). PostgreSQL plans from statistics: SQLite only."""

from __future__ import annotations

import pytest

from deskctl.services.conversations.events import reminders_select
from deskctl.services.keeping.erasure import event_texts_select


@pytest.mark.parametrize("build", [reminders_select, event_texts_select], ids=["reminders", "erasure"])
def test_kind_filters_over_a_few_conversations_use_the_conversation_index(desk, build):
    if desk.engine_name != "sqlite":
        pytest.skip("the plan choice is SQLite's; PostgreSQL plans from its statistics")
    stmt = build([1, 2, 3]).compile(dialect=desk.engine.dialect, compile_kwargs={"literal_binds": True})
    with desk.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'").scalar() == 0
        plan = " ".join(row[-1] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + stmt.string))
    assert "ix_events_conversation_id_id" in plan
    assert "ix_events_kind_at" not in plan
