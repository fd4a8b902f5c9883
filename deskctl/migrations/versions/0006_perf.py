"""Event counts without JSON: `events.close_status`, generated from `kind` and `data`.

Reports counted closings that closed (`auto_closed`, or `closed` whose data status is
`closed`) by decoding the JSON of every closing in the period. The column is generated
by the database, so existing rows have it at once (virtual on SQLite: computed when
read, stored in the index; stored on PostgreSQL: the table is rewritten). The (kind, at)
index becomes (kind, at, conversation_id, close_status): it covers the reports' event
counts.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# The same as deskctl.models.event.CLOSE_STATUS_SQL, written out: a migration must not
# change when the application code does.
CLOSE_STATUS_SQL = {
    "sqlite": "CASE kind WHEN 'auto_closed' THEN 'closed' WHEN 'closed' "
              "THEN coalesce(json_extract(data, '$.status'), 'closed') END",
    "postgresql": "CASE kind WHEN 'auto_closed' THEN 'closed' WHEN 'closed' "
                  "THEN coalesce(data ->> 'status', 'closed') END",
}


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    # SQLite adds only VIRTUAL generated columns to a table; PostgreSQL before 18 only STORED.
    computed = sa.Computed(sa.text(CLOSE_STATUS_SQL[dialect]), persisted=True if dialect == "postgresql" else None)
    op.add_column("events", sa.Column("close_status", sa.String(length=16), computed, nullable=True))
    op.drop_index("ix_events_kind_at", table_name="events")
    op.create_index("ix_events_kind_at_conversation", "events", ["kind", "at", "conversation_id", "close_status"],
                    unique=False)


def downgrade() -> None:
    op.drop_index("ix_events_kind_at_conversation", table_name="events")
    op.create_index("ix_events_kind_at", "events", ["kind", "at"], unique=False)
    with op.batch_alter_table("events") as batch_op:
        batch_op.drop_column("close_status")
