"""`--query`: full-text search of subjects, contacts, messages and notes (SPEC §12), on
the engine's index (SQLite FTS5, PostgreSQL GIN on tsvector), kept in the storing
transaction, with edits, deletes and erasures leaving it."""

from __future__ import annotations

import pytest

from tests.factories import make_conversation


def ids(desk, *args):
    return [r["id"] for r in desk.json("list", *args)]


@pytest.fixture
def corpus(seeded):
    a = make_conversation(seeded, subject="Card problem", contact_email="anne@example.fr", assignee="alice",
                          status="open")
    seeded.ok("reply", a, "We saw a double charge on your card; a refund is on its way.", as_="alice")
    b = make_conversation(seeded, subject="Refunded order 4711", contact_email="bruno@example.fr")
    c = make_conversation(seeded, subject="Question", contact_email="chloe.martin@example.fr", assignee="alice",
                          status="open")
    seeded.ok("note", c, "She says the charge was double but the bank disagrees", as_="alice")
    return seeded, a, b, c


def test_words_are_anded_across_the_conversation_documents(corpus):
    desk, a, b, c = corpus
    assert ids(desk, "--query", "double charge") == [a, c]
    assert ids(desk, "--query", "card refund") == [a]        # subject + reply
    assert ids(desk, "--query", "chloe question") == [c]      # contact + subject
    assert ids(desk, "--query", "nothing-like-this") == []


def test_phrase_and_prefix(corpus):
    desk, a, b, c = corpus
    assert ids(desk, "--query", '"double charge"') == [a]
    assert ids(desk, "--query", '"charge double"') == []
    assert ids(desk, "--query", "refund*") == [a, b]
    assert ids(desk, "--query", "refund") == [a]
    assert ids(desk, "--query", "4711") == [b]


def test_relevance_puts_the_most_matching_first(corpus):
    desk, a, b, c = corpus
    desk.ok("note", a, "Second refund note: refund confirmed", as_="alice")
    assert ids(desk, "--query", "refund*", "--sort", "relevance") == [a, b]
    assert ids(desk, "--query", "refund*", "--sort", "-relevance") == [b, a]
    assert desk.run("list", "--sort", "relevance").exit_code == 2


def test_indexed_in_the_storing_transaction_and_edits_leave_it(corpus):
    desk, a, b, c = corpus
    [note] = desk.rows("SELECT id FROM notes WHERE conversation_id = :c", c=c)
    desk.ok("note", "edit", note["id"], "Bank confirmed the chargeback", as_="alice")
    assert ids(desk, "--query", "disagrees") == []
    assert ids(desk, "--query", "chargeback") == [c]
    desk.ok("note", "delete", note["id"], as_="alice")
    assert ids(desk, "--query", "chargeback") == []
    desk.ok("contact", "forget", "anne@example.fr", "--yes")
    assert ids(desk, "--query", '"double charge"') == []
    assert ids(desk, "--query", "anne") == []


def test_queries_without_words_and_bad_quotes_are_usage_errors(corpus):
    desk, *_ = corpus
    for query in ("***", '"unclosed', "%"):
        result = desk.run("list", "--query", query, fmt="json")
        assert result.exit_code == 2 and result.stdout == "", (query, result)


def test_new_conversations_are_searchable_at_once(seeded):
    seeded.ok("new", "--channel", "phone", "--contact", "walkin@example.fr", "--subject", "Broken kettle",
              "Customer called about a broken kettle", as_="alice")
    [cid] = ids(seeded, "--query", "kettle")
    assert ids(seeded, "--query", "walkin") == [cid]


def test_postgresql_plans_use_the_search_indexes(desk):
    """The expressions the queries spell must be the indexed ones, or every search is a
    sequential scan of all messages."""
    if desk.engine_name != "postgresql":
        pytest.skip("PostgreSQL expression indexes")
    from sqlalchemy import select, text
    from sqlalchemy.orm import Session

    from deskctl.models import Conversation
    from deskctl.services.views import search
    with Session(desk.engine) as session:
        session.execute(text("SET enable_seqscan = off"))
        stmt = search.matching(select(Conversation.id), "refund*", "postgresql")
        compiled = stmt.compile(desk.engine, compile_kwargs={"literal_binds": True})
        plan = "\n".join(row[0] for row in session.execute(text(f"EXPLAIN {compiled}")))
    for index in ("ix_search_messages", "ix_search_notes", "ix_search_subjects", "ix_search_contacts"):
        assert index in plan, plan
