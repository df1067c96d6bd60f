"""paper_positions: the paper venue's net position per (account, symbol), backfilled from the fills

Revision ID: d13854e89f28
Revises: c3a8e5f0d2b1
Create Date: 2026-11-25 09:00:00

Selling, reduce-only and bracket orders need the account's net position in
the symbol; it used to be a SUM over every fill the account ever had (20 ms
at 100,000 fills on Postgres, so placement slowed down as an account traded
for months).  The venue now keeps it in this table, written with the fills
(``backend/brokers/paper_store.py``), and reads it by primary key
(``benchmarks/bench_paper_positions.py``).  The backfill folds the existing
fills in id order with the venue's own average-cost rule, so the rows are
exactly what the venue would have written.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel
import backend.db.types

revision: str = 'd13854e89f28'
down_revision: Union[str, None] = 'c3a8e5f0d2b1'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

_CHUNK = 5000


def upgrade() -> None:
    op.create_table('paper_positions',
    sa.Column('paper_account_id', sa.Integer(), nullable=False),
    sa.Column('symbol', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('quantity', backend.db.types.DecimalType(), nullable=False),
    sa.Column('avg_price', backend.db.types.DecimalType(), nullable=False),
    sa.Column('updated_at', backend.db.types.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['paper_account_id'], ['paper_accounts.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('paper_account_id', 'symbol')
    )
    backfill(op.get_bind())


def backfill(conn: sa.Connection) -> int:
    """Fold every fill (id order) into its (account, symbol) position and insert the rows; returns their number."""
    from backend.brokers.paper_rules import FLAT, after_fill

    decimal, utc = backend.db.types.DecimalType(), backend.db.types.UTCDateTime()
    fills = sa.table('paper_fills', sa.column('id', sa.Integer()), sa.column('paper_order_id', sa.Integer()),
                     sa.column('symbol', sa.String()), sa.column('side', sa.String()),
                     sa.column('quantity', decimal), sa.column('price', decimal), sa.column('filled_at', utc))
    orders = sa.table('paper_orders', sa.column('id', sa.Integer()), sa.column('paper_account_id', sa.Integer()))
    positions = sa.table('paper_positions', sa.column('paper_account_id', sa.Integer()),
                         sa.column('symbol', sa.String()), sa.column('quantity', decimal),
                         sa.column('avg_price', decimal), sa.column('updated_at', utc))
    stmt = (sa.select(orders.c.paper_account_id, fills.c.symbol, fills.c.side, fills.c.quantity, fills.c.price,
                      fills.c.filled_at)
            .select_from(fills.join(orders, orders.c.id == fills.c.paper_order_id)).order_by(fills.c.id))
    held: dict = {}
    last: dict = {}
    for account_id, symbol, side, quantity, price, filled_at in conn.execute(
            stmt.execution_options(stream_results=True, yield_per=_CHUNK)):
        key = (account_id, symbol)
        held[key] = after_fill(held.get(key, FLAT), side, quantity, price)
        last[key] = max(last.get(key, filled_at), filled_at)
    rows = [{'paper_account_id': account_id, 'symbol': symbol, 'quantity': qty, 'avg_price': avg,
             'updated_at': last[(account_id, symbol)]} for (account_id, symbol), (qty, avg) in sorted(held.items())]
    for start in range(0, len(rows), _CHUNK):
        conn.execute(positions.insert(), rows[start:start + _CHUNK])
    return len(rows)


def downgrade() -> None:
    op.drop_table('paper_positions')
