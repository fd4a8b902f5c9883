"""Full-text search behind `--query` (SPEC §12): subjects, contacts, message texts and
notes, through the engine's own index.

Syntax: words are AND-ed (each may be found in any document of the conversation: its
subject, its contact's name and email, a message, a note), `refund*` is a prefix,
`"double charge"` a phrase. Matching is on words (letters and digits; any other
character separates words), case-insensitive and accent-sensitive on both engines.

The index is the database's, kept in the storing transaction by the database itself:
- SQLite: FTS5 tables over the stored columns (external content), kept by triggers;
- PostgreSQL: GIN indexes on `to_tsvector('simple', ...)` of the same columns, which
  the planner uses because the queries below spell the indexed expressions exactly.
Both are created by migration 0004 (see there for the names).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import ColumnClause, bindparam, func, literal_column, select, text, union_all
from sqlalchemy.orm import aliased

from deskctl.errors import UsageError
from deskctl.models import Contact, Conversation, Message, Note

_WORD = re.compile(r"[^\W_]+")
_CHUNK = re.compile(r'"([^"]*)"|(\S+)')

# The FTS5 tables of migration 0004: name → (content table, indexed columns).
SQLITE_INDEXES = {
    "search_messages": ("messages", ("text",)),
    "search_notes": ("notes", ("text",)),
    "search_subjects": ("conversations", ("subject",)),
    "search_contacts": ("contacts", ("name", "email")),
}


@dataclass(frozen=True)
class Term:
    words: tuple[str, ...]  # one word, or a phrase
    prefix: bool = False    # the last word is a prefix


def parse(query: str) -> list[Term]:
    """The terms of a query; a query with no word at all is a usage error."""
    if query.count('"') % 2:
        raise UsageError(f"invalid search text {query!r}: a phrase quote is not closed", option="query")
    terms = []
    for phrase, bare in _CHUNK.findall(query):
        chunk = phrase if phrase else bare
        prefix = not phrase and chunk.endswith("*")
        words = tuple(w.lower() for w in _WORD.findall(chunk))
        if words:
            terms.append(Term(words, prefix))
    if not terms:
        raise UsageError(f"invalid search text {query!r}: no word to search for", option="query")
    return terms


def _fts5(term: Term) -> str:
    # Words are letters and digits only, so they need no escaping inside the quotes.
    return '"' + " ".join(term.words) + '"' + ("*" if term.prefix else "")


def _tsquery(term: Term) -> str:
    lexemes = [f"'{w}'" for w in term.words]
    if term.prefix:
        lexemes[-1] += ":*"
    return " <-> ".join(lexemes)


def _sqlite_matches(name: str, expression: str):
    # unique: one statement holds a MATCH per table and term, each with its own value.
    return text(f"SELECT rowid FROM {name} WHERE {name} MATCH :expr") \
        .bindparams(bindparam("expr", value=expression, unique=True)).columns(literal_column("rowid"))


def documents(term: Term, dialect: str):
    """Conversation ids with a document matching the term (one row per document)."""
    # An alias: a plain `conversations` here would be correlated with the caller's query.
    c = aliased(Conversation)
    if dialect == "sqlite":
        expr = _fts5(term)
        hits = {name: select(_sqlite_matches(name, expr).subquery().c.rowid) for name in SQLITE_INDEXES}
        return union_all(
            select(Message.conversation_id.label("cid")).where(Message.id.in_(hits["search_messages"])),
            select(Note.conversation_id).where(Note.id.in_(hits["search_notes"]), Note.deleted_at.is_(None)),
            select(c.id).where(c.id.in_(hits["search_subjects"])),
            select(c.id).where(c.contact_id.in_(hits["search_contacts"])),
        )
    query = func.to_tsquery(_SIMPLE, _tsquery(term))

    def matches(document):
        return tsvector(document).op("@@")(query)

    return union_all(
        select(Message.conversation_id.label("cid")).where(matches(Message.text)),
        select(Note.conversation_id).where(matches(Note.text), Note.deleted_at.is_(None)),
        select(c.id).where(matches(func.coalesce(c.subject, _EMPTY))),
        select(c.id).where(c.contact_id.in_(select(Contact.id).where(matches(contact_document())))),
    )


# Constants written into the SQL, not bound: PostgreSQL uses an expression index only for
# a query expression equal to the indexed one, and migration 0004 indexes these.
_SIMPLE: ColumnClause[str] = literal_column("'simple'::regconfig")
_EMPTY: ColumnClause[str] = literal_column("''")
_SPACE: ColumnClause[str] = literal_column("' '")


_PUNCT: ColumnClause[str] = literal_column("'[[:punct:]]+'")
_GLOBAL: ColumnClause[str] = literal_column("'g'")


def tsvector(document):
    """Punctuation becomes a space first: PostgreSQL's parser would keep an email or a
    host name as one token, where FTS5 (and the query's words) split it."""
    return func.to_tsvector(_SIMPLE, func.regexp_replace(document, _PUNCT, _SPACE, _GLOBAL))


def contact_document():
    """The contact's searchable text (name and email)."""
    return func.coalesce(Contact.name, _EMPTY).op("||")(_SPACE).op("||")(func.coalesce(Contact.email, _EMPTY))


def matching(stmt, query: str, dialect: str):
    """`stmt` (over conversations) narrowed to those matching every term."""
    for term in parse(query):
        hits = documents(term, dialect).subquery()
        stmt = stmt.where(Conversation.id.in_(select(hits.c.cid)))
    return stmt


def relevance(query: str, dialect: str):
    """A score for `--sort relevance`: how many of the conversation's documents match
    a term (a term found in many messages counts more), for each term."""
    parts = [documents(term, dialect) for term in parse(query)]
    hits = union_all(*parts).subquery() if len(parts) > 1 else parts[0].subquery()
    return (select(func.count()).select_from(hits).where(hits.c.cid == Conversation.id)
            .correlate(Conversation).scalar_subquery())


def optimize(session) -> None:
    """SQLite: merge the index so that erased words leave its pages (after erasure);
    PostgreSQL needs nothing here (VACUUM reclaims dead index entries)."""
    if session.get_bind().dialect.name != "sqlite":
        return
    for name in SQLITE_INDEXES:
        session.connection().exec_driver_sql(f"INSERT INTO {name}({name}) VALUES ('optimize')")


__all__ = ["Term", "parse", "matching", "relevance", "documents", "optimize", "SQLITE_INDEXES"]
