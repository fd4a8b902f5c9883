"""outbox: the channel a row leaves by (two-way channels, SPEC §11); retries shown as such

Rows already in the outbox are email or notifications: channel `email`. A row waiting
after a failed try is now stored as `retrying` (it was `queued` with attempts > 0).

Revision ID: 0005
Revises: 0004
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('channel', sa.String(length=32), server_default='email', nullable=False))
    op.execute("UPDATE outbox SET status = 'retrying' WHERE status = 'queued' AND attempts > 0")


def downgrade() -> None:
    op.execute("UPDATE outbox SET status = 'queued' WHERE status = 'retrying'")
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_column('channel')
