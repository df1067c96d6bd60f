"""orders: composite indexes for the Orders page's keyset pages

Revision ID: c3a8e5f0d2b1
Revises: b7d41c2e9f10
Create Date: 2026-11-24 09:00:00

The trader's order history is read newest first, one page of 50 at a time,
unfiltered or by status or symbol (``backend/services/orders.py``).  Each of
these indexes starts with ``user_id`` and ends with ``created_at, id``, so a
page at any depth is one ordered range read instead of sorting the user's
whole history (100,000 orders: first page 98 ms -> 5 ms on Postgres, see
``benchmarks/bench_orders_page.py``).
"""
from typing import Sequence, Union

from alembic import op

revision: str = 'c3a8e5f0d2b1'
down_revision: Union[str, None] = 'b7d41c2e9f10'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.create_index('ix_orders_user_created', ['user_id', 'created_at', 'id'], unique=False)
        batch_op.create_index('ix_orders_user_status_created', ['user_id', 'status', 'created_at', 'id'],
                              unique=False)
        batch_op.create_index('ix_orders_user_symbol_created', ['user_id', 'symbol', 'created_at', 'id'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_index('ix_orders_user_symbol_created')
        batch_op.drop_index('ix_orders_user_status_created')
        batch_op.drop_index('ix_orders_user_created')
