"""risk profiles: close-only switch, soft loss threshold, limit price sanity

Revision ID: b7d41c2e9f10
Revises: ae5ae9a429e4
Create Date: 2026-11-23 09:00:00

``close_only`` is the follower's own REDUCING switch; ``reduce_at_loss_percent``
turns an account close-only past that share of its daily loss limit; the two
``max_*price_deviation_percent`` columns bound how far a limit entry may be
from the last price (existing rows get the defaults: 10 % and 50 % for options).
"""
from decimal import Decimal
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import backend.db.types

revision: str = 'b7d41c2e9f10'
down_revision: Union[str, None] = 'ae5ae9a429e4'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('risk_profiles', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reduce_at_loss_percent', backend.db.types.DecimalType(), nullable=True))
        batch_op.add_column(sa.Column('max_price_deviation_percent', backend.db.types.DecimalType(), nullable=True))
        batch_op.add_column(sa.Column('max_option_price_deviation_percent', backend.db.types.DecimalType(),
                                      nullable=True))
        batch_op.add_column(sa.Column('close_only', sa.Boolean(), nullable=False, server_default=sa.false()))
    profiles = sa.table('risk_profiles',
                        sa.column('max_price_deviation_percent', backend.db.types.DecimalType()),
                        sa.column('max_option_price_deviation_percent', backend.db.types.DecimalType()))
    op.execute(profiles.update().values(max_price_deviation_percent=Decimal(10),
                                        max_option_price_deviation_percent=Decimal(50)))


def downgrade() -> None:
    with op.batch_alter_table('risk_profiles', schema=None) as batch_op:
        batch_op.drop_column('close_only')
        batch_op.drop_column('max_option_price_deviation_percent')
        batch_op.drop_column('max_price_deviation_percent')
        batch_op.drop_column('reduce_at_loss_percent')
