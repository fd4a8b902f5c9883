"""`id_in(column, ids)` (the id list as one parameter) selects, updates and deletes
exactly the rows `column.in_(ids)` does, on SQLite and PostgreSQL, and each statement
shape compiles once whatever the list's length."""

from __future__ import annotations

from sqlalchemy import select, update

from deskctl.db.idlist import id_in
from deskctl.models import Conversation, Event
from tests.factories import make_conversation


def test_id_in_matches_in_for_select_update_and_subqueries(seeded):
    ids = [make_conversation(seeded, subject=f"s{i}") for i in range(7)]
    lists = [[], [ids[0]], ids[::2], ids + [ids[1], 10**9], [10**9]]  # empty, one, some, duplicates and unknown
    with seeded.engine.connect() as conn:
        for wanted in lists:
            old = conn.execute(select(Conversation.id).where(Conversation.id.in_(wanted))
                               .order_by(Conversation.id)).scalars().all()
            new = conn.execute(select(Conversation.id).where(id_in(Conversation.id, wanted))
                               .order_by(Conversation.id)).scalars().all()
            assert new == old
            events_old = conn.execute(select(Event.id).where(Event.conversation_id.in_(wanted))).scalars().all()
            events_new = conn.execute(select(Event.id).where(id_in(Event.conversation_id, wanted))).scalars().all()
            assert sorted(events_new) == sorted(events_old)
    with seeded.engine.begin() as conn:
        changed = conn.execute(update(Conversation.__table__).where(id_in(Conversation.__table__.c.id, ids[:3]))
                               .values(priority="urgent")).rowcount
    assert changed == 3
    assert seeded.scalar("SELECT count(*) FROM conversations WHERE priority = 'urgent'") == 3


def test_id_in_is_one_parameter_whatever_the_length(seeded):
    """One statement text for every list length: compiled once, cached by SQLAlchemy."""
    dialect = seeded.engine.dialect
    texts = {str(select(Conversation.id).where(id_in(Conversation.id, list(range(n)))).compile(dialect=dialect))
             for n in (1, 10, 5000)}
    assert len(texts) == 1
