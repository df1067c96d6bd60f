"""Audit chain, billing, inbound webhooks, worker heartbeats and the paper venue."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from backend.db.models._fields import now_field, fk, json_field, money, opt_money, timestamp


class AuditEvent(SQLModel, table=True):
    """Append-only and hash-chained: ``hash`` covers the content and ``prev_hash``."""

    __tablename__ = "audit_events"

    id: int | None = Field(default=None, primary_key=True)
    seq: int = Field(unique=True, index=True)
    created_at: datetime = now_field()
    actor_user_id: int | None = Field(default=None, index=True)
    community_id: int | None = Field(default=None, index=True)
    action: str = Field(max_length=64, index=True)
    subject_type: str | None = Field(default=None, max_length=32)
    subject_id: str | None = Field(default=None, max_length=64)
    data: dict[str, Any] = json_field(dict)
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64, unique=True)


class BillingCustomer(SQLModel, table=True):
    __tablename__ = "billing_customers"
    __table_args__ = (sa.UniqueConstraint("provider", "provider_customer_id", name="uq_billing_customer"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = fk("users.id", ondelete="CASCADE")
    provider: str = Field(max_length=16)
    provider_customer_id: str = Field(max_length=64)
    created_at: datetime = now_field()


class Subscription(SQLModel, table=True):
    __tablename__ = "subscriptions"
    __table_args__ = (sa.UniqueConstraint("provider", "provider_subscription_id", name="uq_subscription"),)

    id: int | None = Field(default=None, primary_key=True)
    customer_id: int = fk("billing_customers.id", ondelete="CASCADE")
    community_id: int | None = fk("communities.id", nullable=True, ondelete="SET NULL")
    provider: str = Field(max_length=16)
    provider_subscription_id: str = Field(max_length=64)
    plan: str = Field(max_length=40)
    status: str = Field(max_length=20, index=True)
    amount: Decimal = money(Decimal("0"))
    currency: str = Field(default="usd", max_length=3)
    interval: str = Field(default="month", max_length=8)
    current_period_end: datetime | None = timestamp()
    started_at: datetime = now_field()
    canceled_at: datetime | None = timestamp()


class WebhookEvent(SQLModel, table=True):
    """Inbound webhooks, stored once per (provider, event id): retries do nothing more."""

    __tablename__ = "webhook_events"
    __table_args__ = (sa.UniqueConstraint("provider", "event_id", name="uq_webhook_event"),)

    id: int | None = Field(default=None, primary_key=True)
    provider: str = Field(max_length=16)
    event_id: str = Field(max_length=128)
    event_type: str | None = Field(default=None, max_length=64)
    status: str = Field(default="received", max_length=16)
    error: str | None = Field(default=None, max_length=500)
    payload: dict[str, Any] = json_field(dict)
    received_at: datetime = now_field()


class WorkerHeartbeat(SQLModel, table=True):
    __tablename__ = "worker_heartbeats"

    name: str = Field(primary_key=True, max_length=32)
    last_seen: datetime = now_field()
    data: dict[str, Any] = json_field(dict)


class PaperAccount(SQLModel, table=True):
    """The paper venue's own books, kept apart from the product's view of them."""

    __tablename__ = "paper_accounts"

    id: int | None = Field(default=None, primary_key=True)
    broker_account_id: int = Field(foreign_key="broker_accounts.id", unique=True, index=True, ondelete="CASCADE")
    cash: Decimal = money()
    created_at: datetime = now_field()


class PaperOrder(SQLModel, table=True):
    __tablename__ = "paper_orders"
    __table_args__ = (sa.UniqueConstraint("paper_account_id", "client_order_id", name="uq_paper_client_order"),)

    id: int | None = Field(default=None, primary_key=True)
    paper_account_id: int = fk("paper_accounts.id", ondelete="CASCADE")
    client_order_id: str = Field(max_length=64)
    symbol: str = Field(max_length=40)
    side: str = Field(max_length=4)
    order_type: str = Field(max_length=16)
    quantity: Decimal = money()
    limit_price: Decimal | None = opt_money()
    stop_price: Decimal | None = opt_money()
    oco_group: str | None = Field(default=None, max_length=64)
    leverage: Decimal | None = opt_money()
    reduce_only: bool = Field(default=False)
    status: str = Field(default="submitted", max_length=20, index=True)
    filled_quantity: Decimal = money(Decimal("0"))
    avg_fill_price: Decimal | None = opt_money()
    reject_reason: str | None = Field(default=None, max_length=300)
    created_at: datetime = now_field()
    updated_at: datetime = now_field()


class PaperFill(SQLModel, table=True):
    __tablename__ = "paper_fills"

    id: int | None = Field(default=None, primary_key=True)
    paper_order_id: int = fk("paper_orders.id", ondelete="CASCADE")
    symbol: str = Field(max_length=40)
    side: str = Field(max_length=4)
    quantity: Decimal = money()
    price: Decimal = money()
    fee: Decimal = money(Decimal("0"))
    filled_at: datetime = now_field()


class PaperPosition(SQLModel, table=True):
    """Net position per (paper account, symbol), kept so that no reader adds up the fills.

    Written in the same transaction, under the same account lock, as every
    fill that changes it (``paper_store``), so it always equals the fills folded
    in order by the average-cost method (``paper_rules.after_fill``).  A position
    closed to zero keeps its row (quantity 0, average 0).
    """

    __tablename__ = "paper_positions"

    paper_account_id: int = Field(foreign_key="paper_accounts.id", primary_key=True, ondelete="CASCADE")
    symbol: str = Field(primary_key=True, max_length=40)
    quantity: Decimal = money()
    avg_price: Decimal = money()
    updated_at: datetime = now_field()


class PaperQuote(SQLModel, table=True):
    """Last price per symbol for the paper venue (signal prices, a random walk in the demo)."""

    __tablename__ = "paper_quotes"

    symbol: str = Field(primary_key=True, max_length=40)
    price: Decimal = money()
    updated_at: datetime = now_field()
