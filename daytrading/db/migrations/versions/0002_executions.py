"""The execution ledger: one row per IB execution (execId), entries and exits.

Revision ID: 0002_executions
Revises: 0001_baseline
Create Date: 2026-12-01 09:10:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0002_executions'
down_revision = '0001_baseline'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('executions',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('exec_id', sa.String(length=64), nullable=False),
    sa.Column('session_date', sa.Date(), nullable=False),
    sa.Column('symbol', sa.String(length=16), nullable=False),
    sa.Column('side', sa.String(length=4), nullable=False),
    sa.Column('shares', sa.Float(), nullable=False),
    sa.Column('price', sa.Float(), nullable=False),
    sa.Column('commission', sa.Float(), nullable=True),
    sa.Column('realized_pnl', sa.Float(), nullable=True),
    sa.Column('time', sa.String(length=32), nullable=False),
    sa.Column('perm_id', sa.Integer(), nullable=True),
    sa.Column('order_id', sa.Integer(), nullable=True),
    sa.Column('client_id', sa.Integer(), nullable=True),
    sa.Column('order_ref', sa.String(length=64), nullable=True),
    sa.Column('account', sa.String(length=32), nullable=True),
    sa.Column('bot', sa.String(length=32), nullable=False),
    sa.Column('recorded_at', sa.String(length=32), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('exec_id', name='uq_executions_exec_id')
    )
    with op.batch_alter_table('executions', schema=None) as batch_op:
        batch_op.create_index('ix_executions_symbol_session', ['symbol', 'session_date'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('executions', schema=None) as batch_op:
        batch_op.drop_index('ix_executions_symbol_session')
    op.drop_table('executions')
