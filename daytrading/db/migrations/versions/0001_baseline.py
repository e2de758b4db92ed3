"""Baseline schema: coordination tables, trades, orders, heartbeats, gate decisions, flags, events.

Revision ID: 0001_baseline
Revises: 
Create Date: 2026-11-23 01:05:57.120077
"""
from alembic import op
import sqlalchemy as sa


revision = '0001_baseline'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('active_positions',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('symbol', sa.String(length=16), nullable=False),
    sa.Column('quantity', sa.Float(), nullable=False),
    sa.Column('requested_quantity', sa.Float(), nullable=False),
    sa.Column('entry_price', sa.Float(), nullable=True),
    sa.Column('entry_timestamp', sa.String(length=32), nullable=True),
    sa.Column('agent_name', sa.String(length=32), nullable=False),
    sa.Column('profit_target_price', sa.Float(), nullable=True),
    sa.Column('stop_loss_price', sa.Float(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('last_updated', sa.String(length=32), nullable=False),
    sa.Column('metadata', sa.Text(), nullable=True),
    sa.Column('session_date', sa.Date(), nullable=False),
    sa.Column('claimed_at', sa.String(length=32), nullable=True),
    sa.Column('claimed_by', sa.String(length=32), nullable=True),
    sa.Column('claim_pid', sa.Integer(), nullable=True),
    sa.Column('entry_client_id', sa.Integer(), nullable=True),
    sa.Column('entry_order_id', sa.Integer(), nullable=True),
    sa.Column('entry_perm_id', sa.Integer(), nullable=True),
    sa.Column('target_order_id', sa.Integer(), nullable=True),
    sa.Column('target_perm_id', sa.Integer(), nullable=True),
    sa.Column('exit_order_id', sa.Integer(), nullable=True),
    sa.Column('exit_perm_id', sa.Integer(), nullable=True),
    sa.Column('exit_reason', sa.String(length=16), nullable=True),
    sa.Column('exit_started_at', sa.String(length=32), nullable=True),
    sa.Column('exit_attempts', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('symbol')
    )
    op.create_table('closed_positions_today',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('symbol', sa.String(length=16), nullable=False),
    sa.Column('close_date', sa.Date(), nullable=False),
    sa.Column('quantity', sa.Float(), nullable=False),
    sa.Column('entry_price', sa.Float(), nullable=True),
    sa.Column('exit_price', sa.Float(), nullable=True),
    sa.Column('exit_reason', sa.String(length=16), nullable=False),
    sa.Column('profit_loss_pct', sa.Float(), nullable=True),
    sa.Column('agent_name', sa.String(length=32), nullable=False),
    sa.Column('timestamp', sa.String(length=32), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('symbol', 'close_date', name='uq_closed_symbol_date')
    )
    op.create_table('events',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('ts', sa.String(length=32), nullable=False),
    sa.Column('session_date', sa.Date(), nullable=False),
    sa.Column('bot', sa.String(length=32), nullable=False),
    sa.Column('level', sa.String(length=10), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('symbol', sa.String(length=16), nullable=True),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('data', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index('ix_events_session_level', ['session_date', 'level'], unique=False)

    op.create_table('flags',
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.Column('set_by', sa.String(length=32), nullable=True),
    sa.Column('set_at', sa.String(length=32), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('gate_decisions',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('ts', sa.String(length=32), nullable=False),
    sa.Column('session_date', sa.Date(), nullable=False),
    sa.Column('symbol', sa.String(length=16), nullable=False),
    sa.Column('gate', sa.String(length=32), nullable=False),
    sa.Column('passed', sa.Boolean(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('values', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('gate_decisions', schema=None) as batch_op:
        batch_op.create_index('ix_gate_session_gate', ['session_date', 'gate'], unique=False)
        batch_op.create_index('ix_gate_symbol_time', ['symbol', 'ts'], unique=False)

    op.create_table('heartbeats',
    sa.Column('bot', sa.String(length=32), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=32), nullable=False),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.Column('started_at', sa.String(length=32), nullable=True),
    sa.Column('last_seen', sa.String(length=32), nullable=False),
    sa.Column('market_time', sa.String(length=32), nullable=True),
    sa.PrimaryKeyConstraint('bot')
    )
    op.create_table('orders',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('session_date', sa.Date(), nullable=False),
    sa.Column('client_id', sa.Integer(), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=False),
    sa.Column('perm_id', sa.Integer(), nullable=True),
    sa.Column('symbol', sa.String(length=16), nullable=False),
    sa.Column('side', sa.String(length=4), nullable=False),
    sa.Column('order_type', sa.String(length=8), nullable=False),
    sa.Column('quantity', sa.Float(), nullable=False),
    sa.Column('limit_price', sa.Float(), nullable=True),
    sa.Column('time_in_force', sa.String(length=4), nullable=False),
    sa.Column('order_ref', sa.String(length=64), nullable=True),
    sa.Column('purpose', sa.String(length=16), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('filled_quantity', sa.Float(), nullable=False),
    sa.Column('avg_fill_price', sa.Float(), nullable=True),
    sa.Column('bot', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.String(length=32), nullable=False),
    sa.Column('updated_at', sa.String(length=32), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.create_index('ix_orders_client_order', ['client_id', 'order_id'], unique=False)
        batch_op.create_index('ix_orders_perm_id', ['perm_id'], unique=False)
        batch_op.create_index('ix_orders_symbol_session', ['symbol', 'session_date'], unique=False)

    op.create_table('trades',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('symbol', sa.String(length=16), nullable=False),
    sa.Column('session_date', sa.Date(), nullable=False),
    sa.Column('quantity', sa.Float(), nullable=False),
    sa.Column('entry_time', sa.String(length=32), nullable=True),
    sa.Column('entry_price', sa.Float(), nullable=True),
    sa.Column('exit_time', sa.String(length=32), nullable=False),
    sa.Column('exit_price', sa.Float(), nullable=False),
    sa.Column('pnl', sa.Float(), nullable=True),
    sa.Column('pnl_pct', sa.Float(), nullable=True),
    sa.Column('commission', sa.Float(), nullable=False),
    sa.Column('exit_reason', sa.String(length=16), nullable=False),
    sa.Column('bot', sa.String(length=32), nullable=False),
    sa.Column('exit_bot', sa.String(length=32), nullable=True),
    sa.Column('entry_perm_id', sa.Integer(), nullable=True),
    sa.Column('exit_perm_id', sa.Integer(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('trades', schema=None) as batch_op:
        batch_op.create_index('ix_trades_bot_exit_time', ['bot', 'exit_time'], unique=False)
        batch_op.create_index('ix_trades_exit_reason', ['exit_reason', 'session_date'], unique=False)
        batch_op.create_index('ix_trades_session_date', ['session_date'], unique=False)
        batch_op.create_index('ix_trades_symbol_session', ['symbol', 'session_date'], unique=False)




def downgrade() -> None:

    with op.batch_alter_table('trades', schema=None) as batch_op:
        batch_op.drop_index('ix_trades_symbol_session')
        batch_op.drop_index('ix_trades_session_date')
        batch_op.drop_index('ix_trades_exit_reason')
        batch_op.drop_index('ix_trades_bot_exit_time')

    op.drop_table('trades')
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_index('ix_orders_symbol_session')
        batch_op.drop_index('ix_orders_perm_id')
        batch_op.drop_index('ix_orders_client_order')

    op.drop_table('orders')
    op.drop_table('heartbeats')
    with op.batch_alter_table('gate_decisions', schema=None) as batch_op:
        batch_op.drop_index('ix_gate_symbol_time')
        batch_op.drop_index('ix_gate_session_gate')

    op.drop_table('gate_decisions')
    op.drop_table('flags')
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index('ix_events_session_level')

    op.drop_table('events')
    op.drop_table('closed_positions_today')
    op.drop_table('active_positions')

