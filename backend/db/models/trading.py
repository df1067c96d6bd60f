"""Accounts, risk settings, decisions, orders, fills and positions."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from backend.db.models._fields import now_field, fk, json_field, money, opt_money, timestamp


class BrokerKind(str, Enum):
    PAPER = "paper"
    ALPACA = "alpaca"
    CCXT = "ccxt"
    IBKR = "ibkr"


class AccountStatus(str, Enum):
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"    # by the member: credentials forgotten
    ERROR = "error"
    LOGGED_OUT = "logged_out"        # the broker session is up but logged out (IB Gateway cut off from IBKR)
    CONNECTION_LOST = "connection_lost"  # the broker session dropped; retried on the next request


class OrderStatus(str, Enum):
    NEW = "new"
    SUBMITTED = "submitted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    EXPIRED = "expired"
    FAILED = "failed"

    @property
    def is_final(self) -> bool:
        return self in FINAL_ORDER_STATUSES


FINAL_ORDER_STATUSES = frozenset(
    {OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.EXPIRED, OrderStatus.FAILED}
)


class BrokerAccount(SQLModel, table=True):
    __tablename__ = "broker_accounts"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = fk("users.id", ondelete="CASCADE")
    broker: str = Field(max_length=16)
    label: str = Field(max_length=100)
    exchange_id: str | None = Field(default=None, max_length=40, description="ccxt exchange id")
    live: bool = Field(default=False, description="False = the venue's paper/sandbox environment")
    credentials_enc: str | None = Field(default=None, sa_type=sa.Text)
    credentials_key_id: str | None = Field(default=None, max_length=32, index=True)
    permissions: str = Field(default="trade", max_length=16)
    status: str = Field(default=AccountStatus.CONNECTED.value, max_length=16)
    status_message: str | None = Field(default=None, max_length=500)
    created_at: datetime = now_field()
    last_checked_at: datetime | None = timestamp()


PROVIDER_DEFAULT_SIZING = "provider_default"


class RiskProfileRecord(SQLModel, table=True):
    """A follower's account-wide risk settings and current trading state.

    ``sizing_mode`` ``provider_default``: the follower has not chosen a sizing
    of their own, so the signal source's default applies (``sizing_value`` is
    then unused).  ``trading_state`` is what the money path obeys; the engine
    sets it on a daily-loss breach (HALTED) or past the soft threshold
    ``reduce_at_loss_percent`` (REDUCING), with ``halted_on`` = the trading day,
    and lifts it on the next one.  ``close_only`` is the follower's own switch:
    REDUCING with no ``halted_on`` (no expiry) while it is on, and what a lifted
    halt returns to.
    """

    __tablename__ = "risk_profiles"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", unique=True, index=True, ondelete="CASCADE")
    sizing_mode: str = Field(default=PROVIDER_DEFAULT_SIZING, max_length=32)
    sizing_value: Decimal = money(Decimal("2"))
    max_position_notional: Decimal | None = opt_money()
    max_open_positions: int | None = Field(default=10)
    max_leverage: Decimal | None = opt_money()
    allowed_symbols: list[str] = json_field(list)
    denied_symbols: list[str] = json_field(list)
    enforce_market_hours: bool = Field(default=True)
    market_open: str = Field(default="09:30", max_length=5)
    market_close: str = Field(default="16:00", max_length=5)
    market_tz: str = Field(default="America/New_York", max_length=40)
    max_signals_per_minute: int | None = Field(default=None)
    daily_loss_limit: Decimal | None = opt_money()
    flatten_on_daily_loss: bool = Field(default=False)
    use_signal_quantity: bool = Field(default=False)
    reduce_at_loss_percent: Decimal | None = opt_money()
    max_price_deviation_percent: Decimal | None = money(Decimal("10"), nullable=True)
    max_option_price_deviation_percent: Decimal | None = money(Decimal("50"), nullable=True)
    close_only: bool = Field(default=False)
    trading_state: str = Field(default="ACTIVE", max_length=16)
    state_reason: str | None = Field(default=None, max_length=500)
    halted_on: date | None = Field(default=None)
    updated_at: datetime = now_field()


class RiskDecisionRecord(SQLModel, table=True):
    """Every sizing/risk verdict, approved or denied, with what it was based on."""

    __tablename__ = "risk_decisions"
    __table_args__ = (sa.UniqueConstraint("signal_id", "follower_id", name="uq_decision_signal_follower"),)

    id: int | None = Field(default=None, primary_key=True)
    signal_id: int = fk("signals.id", ondelete="CASCADE")
    follower_id: int = fk("users.id", ondelete="CASCADE")
    follow_id: int | None = fk("follows.id", nullable=True, ondelete="SET NULL")
    broker_account_id: int | None = fk("broker_accounts.id", nullable=True, ondelete="SET NULL")
    approved: bool
    quantity: Decimal = money(Decimal("0"))
    reasons: list[dict[str, Any]] = json_field(list)
    inputs: dict[str, Any] = json_field(dict)
    created_at: datetime = now_field()


class Order(SQLModel, table=True):
    """An order intent and its life at the broker; ``client_order_id`` is deterministic."""

    __tablename__ = "orders"
    # The Orders page's keyset pages, newest first, unfiltered or by status or symbol: each one
    # ordered range read (services/orders.py, benchmarks/bench_orders_page.py).
    __table_args__ = (
        sa.Index("ix_orders_user_created", "user_id", "created_at", "id"),
        sa.Index("ix_orders_user_status_created", "user_id", "status", "created_at", "id"),
        sa.Index("ix_orders_user_symbol_created", "user_id", "symbol", "created_at", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    client_order_id: str = Field(unique=True, index=True, max_length=64)
    user_id: int = fk("users.id", ondelete="CASCADE")
    broker_account_id: int = fk("broker_accounts.id", ondelete="CASCADE")
    signal_id: int | None = fk("signals.id", nullable=True, ondelete="SET NULL")
    decision_id: int | None = fk("risk_decisions.id", nullable=True, ondelete="SET NULL")
    parent_order_id: int | None = fk("orders.id", nullable=True, ondelete="SET NULL")
    leg: str = Field(default="entry", max_length=16)
    oco_group: str | None = Field(default=None, max_length=64, index=True)
    symbol: str = Field(max_length=40, index=True)
    asset_class: str = Field(default="stock", max_length=16)
    side: str = Field(max_length=4)
    order_type: str = Field(default="market", max_length=16)
    time_in_force: str = Field(default="day", max_length=8)
    quantity: Decimal = money()
    limit_price: Decimal | None = opt_money()
    stop_price: Decimal | None = opt_money()
    reduce_only: bool = Field(default=False)
    leverage: Decimal | None = opt_money()
    option_right: str | None = Field(default=None, max_length=4)
    strike: Decimal | None = opt_money()
    expiry: date | None = Field(default=None)
    status: str = Field(default=OrderStatus.NEW.value, max_length=20, index=True)
    filled_quantity: Decimal = money(Decimal("0"))
    avg_fill_price: Decimal | None = opt_money()
    fees: Decimal = money(Decimal("0"))
    broker_order_id: str | None = Field(default=None, max_length=64, index=True)
    error_code: str | None = Field(default=None, max_length=40)
    error_message: str | None = Field(default=None, max_length=500)
    attempts: int = Field(default=0)
    next_attempt_at: datetime | None = timestamp()
    wait_for_order_id: int | None = Field(default=None, description="close-then-reverse: submit after this order fills")
    created_at: datetime = now_field()
    updated_at: datetime = now_field()
    submitted_at: datetime | None = timestamp()
    closed_at: datetime | None = timestamp()


class OrderEvent(SQLModel, table=True):
    """Every state transition of an order, in order."""

    __tablename__ = "order_events"

    id: int | None = Field(default=None, primary_key=True)
    order_id: int = fk("orders.id", ondelete="CASCADE")
    from_status: str | None = Field(default=None, max_length=20)
    to_status: str = Field(max_length=20)
    message: str | None = Field(default=None, max_length=500)
    data: dict[str, Any] = json_field(dict)
    created_at: datetime = now_field()


class Fill(SQLModel, table=True):
    __tablename__ = "fills"
    __table_args__ = (sa.UniqueConstraint("order_id", "broker_fill_id", name="uq_fill_broker_id"),)

    id: int | None = Field(default=None, primary_key=True)
    order_id: int = fk("orders.id", ondelete="CASCADE")
    broker_fill_id: str = Field(max_length=64)
    quantity: Decimal = money()
    price: Decimal = money()
    fee: Decimal = money(Decimal("0"))
    filled_at: datetime = now_field()


class Position(SQLModel, table=True):
    """Net position per account and symbol; realised P&L is FIFO over ``PositionLot``s."""

    __tablename__ = "positions"
    __table_args__ = (sa.UniqueConstraint("broker_account_id", "symbol", name="uq_position_account_symbol"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = fk("users.id", ondelete="CASCADE")
    broker_account_id: int = fk("broker_accounts.id", ondelete="CASCADE")
    symbol: str = Field(max_length=40)
    asset_class: str = Field(default="stock", max_length=16)
    quantity: Decimal = money(Decimal("0"))
    avg_price: Decimal = money(Decimal("0"))
    realized_pnl: Decimal = money(Decimal("0"))
    fees: Decimal = money(Decimal("0"))
    last_price: Decimal | None = opt_money()
    stop_loss: Decimal | None = opt_money()
    take_profits: list[str] = json_field(list)
    opened_at: datetime | None = timestamp()
    updated_at: datetime = now_field()


class PositionLot(SQLModel, table=True):
    __tablename__ = "position_lots"

    id: int | None = Field(default=None, primary_key=True)
    position_id: int = fk("positions.id", ondelete="CASCADE")
    quantity: Decimal = money()  # signed: negative lots are short
    price: Decimal = money()
    opened_at: datetime = now_field()


class RealizedPnl(SQLModel, table=True):
    """One row per closing fill: the ledger the daily loss limit and reports sum."""

    __tablename__ = "realized_pnl"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = fk("users.id", ondelete="CASCADE")
    broker_account_id: int = fk("broker_accounts.id", ondelete="CASCADE")
    fill_id: int | None = fk("fills.id", nullable=True, ondelete="SET NULL")
    symbol: str = Field(max_length=40)
    amount: Decimal = money()
    realized_at: datetime = now_field()


class EquitySnapshot(SQLModel, table=True):
    __tablename__ = "equity_snapshots"

    id: int | None = Field(default=None, primary_key=True)
    broker_account_id: int = fk("broker_accounts.id", ondelete="CASCADE")
    equity: Decimal = money()
    cash: Decimal = money()
    taken_at: datetime = now_field()


class Notification(SQLModel, table=True):
    __tablename__ = "notifications"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = fk("users.id", ondelete="CASCADE")
    kind: str = Field(max_length=32)
    title: str = Field(max_length=200)
    body: str = Field(default="", sa_type=sa.Text)
    data: dict[str, Any] = json_field(dict)
    created_at: datetime = now_field()
    read_at: datetime | None = timestamp()
    dm_status: str | None = Field(default=None, max_length=16, description="pending / sent / failed / off")
