"""routing (offers, last assignment), per-user read state, message links

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

import deskctl.db.types

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('conversations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('offered_to', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('offer_expires_at', deskctl.db.types.UTCDateTime(timezone=True),
                                      nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_conversations_offered_to_users'), 'users',
                                    ['offered_to'], ['id'])
        batch_op.create_index(batch_op.f('ix_conversations_offered_to'), ['offered_to'], unique=False)
        batch_op.create_index(batch_op.f('ix_conversations_offer_expires_at'), ['offer_expires_at'],
                              unique=False)

    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_routed_at', deskctl.db.types.UTCDateTime(timezone=True),
                                      nullable=True))

    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('url', sa.String(length=2000), nullable=True))

    op.create_table('read_marks',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('conversation_id', sa.Integer(), nullable=False),
    sa.Column('read_at', deskctl.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id'],
                            name=op.f('fk_read_marks_conversation_id_conversations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_read_marks_user_id_users'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', 'conversation_id', name=op.f('pk_read_marks'))
    )
    with op.batch_alter_table('read_marks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_read_marks_conversation_id'), ['conversation_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('read_marks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_read_marks_conversation_id'))
    op.drop_table('read_marks')
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_column('url')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('last_routed_at')
    with op.batch_alter_table('conversations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_conversations_offer_expires_at'))
        batch_op.drop_index(batch_op.f('ix_conversations_offered_to'))
        batch_op.drop_constraint(batch_op.f('fk_conversations_offered_to_users'), type_='foreignkey')
        batch_op.drop_column('offer_expires_at')
        batch_op.drop_column('offered_to')
