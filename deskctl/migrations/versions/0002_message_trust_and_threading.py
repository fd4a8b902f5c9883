"""message trust and threading

Messages get `sent_at` (what an email's Date: header claims; `created_at` stays the
time of receipt) and `body_sha256` (a re-delivery must match it). Both start NULL on
existing rows: NULL `sent_at` is "not given", NULL `body_sha256` is "unknown", and a
re-delivery with the same sender then counts as a duplicate.

`message_references` holds each email's ancestor Message-IDs for threading by shared
ancestors; it is filled here from the stored In-Reply-To and References of existing
email messages, in batches. `conversations.linked_to_id` gets an index (follow-ups are
looked up by it).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 16:14:02.007488
"""
import re

import sqlalchemy as sa
from alembic import op

import deskctl.db.types

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

# The rule of deskctl.services.messages.ancestors as of this revision, frozen here so
# that the migration does not change when the application does.
_MSGID = re.compile(r"<([^<>\s]+)>")
_MAX_ANCESTORS = 40
_MAX_REFERENCE = 250
_BATCH = 5000


def _ids(value):
    if not value:
        return []
    found = _MSGID.findall(value)
    return found or [v.strip("<>") for v in value.split() if v.strip("<>")]


def _ancestors(own_id, in_reply_to, references):
    chain = _ids(references)
    out = {}
    for ref in _ids(in_reply_to)[:1] + chain[::-1]:
        out.setdefault(ref, None)
    out.pop(own_id, None)
    ids = list(out)
    if len(ids) > _MAX_ANCESTORS:
        ids = ids[:_MAX_ANCESTORS - 1] + ([chain[0]] if chain and chain[0] != own_id else [])
    return [ref for ref in dict.fromkeys(ids) if len(ref) <= _MAX_REFERENCE]


def _fill_references() -> None:
    conn = op.get_bind()
    messages = sa.table("messages", sa.column("id"), sa.column("channel"), sa.column("external_id"),
                        sa.column("in_reply_to"), sa.column("references"))
    references = sa.table("message_references", sa.column("message_id"), sa.column("ref"))
    last = 0
    while True:
        rows = conn.execute(
            sa.select(messages.c.id, messages.c.external_id, messages.c.in_reply_to, messages.c.references)
            .where(messages.c.channel == "email", messages.c.id > last,
                   sa.or_(messages.c.in_reply_to.is_not(None), messages.c.references.is_not(None)))
            .order_by(messages.c.id).limit(_BATCH)).all()
        if not rows:
            return
        params = [{"message_id": mid, "ref": ref} for mid, own, in_reply_to, refs in rows
                  for ref in _ancestors(own, in_reply_to, refs)]
        if params:
            conn.execute(references.insert(), params)
        last = rows[-1][0]


def upgrade() -> None:
    op.create_table('message_references',
    sa.Column('message_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('ref', sa.String(length=250), nullable=False),
    sa.ForeignKeyConstraint(['message_id'], ['messages.id'], name=op.f('fk_message_references_message_id_messages'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('message_id', 'ref', name=op.f('pk_message_references'))
    )
    with op.batch_alter_table('conversations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_conversations_linked_to_id'), ['linked_to_id'], unique=False)

    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sent_at', deskctl.db.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('body_sha256', sa.String(length=64), nullable=True))

    _fill_references()
    # After the fill: one index build instead of an update per inserted row.
    with op.batch_alter_table('message_references', schema=None) as batch_op:
        batch_op.create_index('ix_message_references_ref_message', ['ref', 'message_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_column('body_sha256')
        batch_op.drop_column('sent_at')

    with op.batch_alter_table('conversations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_conversations_linked_to_id'))

    with op.batch_alter_table('message_references', schema=None) as batch_op:
        batch_op.drop_index('ix_message_references_ref_message')

    op.drop_table('message_references')
