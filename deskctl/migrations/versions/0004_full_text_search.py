"""Full-text search indexes (SPEC §12): subjects, contacts, messages and notes.

SQLite: FTS5 tables over the stored columns (external content: the text is not stored
twice), kept up to date by triggers in the writing transaction, filled for existing
rows by FTS5's own `rebuild`. PostgreSQL: GIN indexes on the `to_tsvector('simple',
...)` expressions deskctl.services.views.search queries with.

Names start with `search_` (tables) and `ix_search_` (indexes); env.py leaves them out
of the model comparison. NOTE for later migrations on SQLite: a batch ALTER of messages,
notes, conversations or contacts recreates the table and drops its triggers: recreate
them with `create_sqlite_triggers` after such a step.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# name → (content table, indexed columns); the same as search.SQLITE_INDEXES, written
# out because a migration must not change when the application code does.
SQLITE_INDEXES = {
    "search_messages": ("messages", ("text",)),
    "search_notes": ("notes", ("text",)),
    "search_subjects": ("conversations", ("subject",)),
    "search_contacts": ("contacts", ("name", "email")),
}

# Punctuation becomes a space before parsing, as in search.tsvector: the expression
# must be the very one the queries use, or the planner ignores the index.
_TSV = "to_tsvector('simple'::regconfig, regexp_replace({}, '[[:punct:]]+', ' ', 'g'))"
PG_INDEXES = {
    "ix_search_messages": ("messages", _TSV.format("text")),
    "ix_search_notes": ("notes", _TSV.format("text")),
    "ix_search_subjects": ("conversations", _TSV.format("coalesce(subject, '')")),
    "ix_search_contacts": ("contacts", _TSV.format("coalesce(name, '') || ' ' || coalesce(email, '')")),
}


def create_sqlite_triggers(name: str, table: str, columns: tuple[str, ...]) -> None:
    cols = ", ".join(columns)
    new = ", ".join(f"new.{c}" for c in columns)
    old = ", ".join(f"old.{c}" for c in columns)
    watched = ", ".join(columns)
    op.execute(f"CREATE TRIGGER {name}_ai AFTER INSERT ON {table} BEGIN "
               f"INSERT INTO {name}(rowid, {cols}) VALUES (new.id, {new}); END")
    op.execute(f"CREATE TRIGGER {name}_ad AFTER DELETE ON {table} BEGIN "
               f"INSERT INTO {name}({name}, rowid, {cols}) VALUES ('delete', old.id, {old}); END")
    op.execute(f"CREATE TRIGGER {name}_au AFTER UPDATE OF {watched} ON {table} BEGIN "
               f"INSERT INTO {name}({name}, rowid, {cols}) VALUES ('delete', old.id, {old}); "
               f"INSERT INTO {name}(rowid, {cols}) VALUES (new.id, {new}); END")


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name, (table, columns) in SQLITE_INDEXES.items():
            # unicode61 without removing diacritics: accent-sensitive, like PostgreSQL's
            # `simple` configuration, so both engines find the same conversations.
            op.execute(f"CREATE VIRTUAL TABLE {name} USING fts5({', '.join(columns)}, content='{table}', "
                       f"content_rowid='id', tokenize='unicode61 remove_diacritics 0')")
            create_sqlite_triggers(name, table, columns)
            op.execute(f"INSERT INTO {name}({name}) VALUES ('rebuild')")
        return
    for name, (table, expression) in PG_INDEXES.items():
        op.execute(f"CREATE INDEX {name} ON {table} USING gin ({expression})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in SQLITE_INDEXES:
            for suffix in ("ai", "ad", "au"):
                op.execute(f"DROP TRIGGER IF EXISTS {name}_{suffix}")
            op.execute(f"DROP TABLE IF EXISTS {name}")
        return
    for name in PG_INDEXES:
        op.execute(f"DROP INDEX IF EXISTS {name}")
