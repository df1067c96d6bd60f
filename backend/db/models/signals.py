"""Where signals come from, the signals themselves, and who follows whom."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from backend.db.models._fields import now_field, fk, json_field, opt_money, timestamp


class SourceKind(str, Enum):
    DISCORD = "discord"
    TRADINGVIEW = "tradingview"
    CONSOLE = "console"


class SignalStatus(str, Enum):
    RECEIVED = "received"      # stored, fan-out not yet done (durable work queue)
    DISPATCHED = "dispatched"  # decisions and order intents written for every follower
    IGNORED = "ignored"        # chatter, or an edit that changed nothing
    STALE = "stale"            # older than the source's max lag: recorded, not traded
    REJECTED = "rejected"      # malformed; the error says why


def default_max_lag_seconds() -> int:
    """``SIGNAL_MAX_LAG_SECONDS`` as whole seconds (at least 1): a new source's max lag unless it sets its own."""
    from backend.config import get_settings

    return max(1, round(get_settings().signal_max_lag_seconds))


class SignalSource(SQLModel, table=True):
    """A provider's Discord channel or TradingView endpoint inside a community."""

    __tablename__ = "signal_sources"

    id: int | None = Field(default=None, primary_key=True)
    community_id: int = fk("communities.id", ondelete="CASCADE")
    provider_id: int = fk("users.id")
    name: str = Field(max_length=100)
    kind: str = Field(default=SourceKind.DISCORD.value, max_length=16)
    discord_channel_id: str | None = Field(default=None, unique=True, index=True, max_length=32)
    webhook_token: str | None = Field(default=None, unique=True, index=True, max_length=64)
    webhook_secret_hash: str | None = Field(default=None, max_length=128)
    max_lag_seconds: int = Field(default_factory=default_max_lag_seconds,
                                 description="older signals are stale; default: SIGNAL_MAX_LAG_SECONDS")
    max_signals_per_minute: int | None = Field(default=30)
    default_sizing_mode: str = Field(default="percent_equity", max_length=32)
    default_sizing_value: Decimal | None = opt_money()
    tp_allocation: list[str] = Field(default_factory=list, sa_type=sa.JSON, nullable=False,
                                     description="take-profit split in percent, e.g. ['50','30','20']; empty = even")
    last_message_id: str | None = Field(default=None, max_length=32)
    active: bool = Field(default=True)
    created_at: datetime = now_field()


class Signal(SQLModel, table=True):
    """One message or alert, stored once per (source, source message id)."""

    __tablename__ = "signals"
    __table_args__ = (sa.UniqueConstraint("source_id", "source_message_id", name="uq_signal_source_message"),)

    id: int | None = Field(default=None, primary_key=True)
    source_id: int = fk("signal_sources.id", ondelete="CASCADE")
    source_message_id: str = Field(max_length=64)
    author_id: str | None = Field(default=None, max_length=32)
    raw_text: str = Field(sa_type=sa.Text)
    parsed: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)
    action: str | None = Field(default=None, max_length=16)
    symbol: str | None = Field(default=None, max_length=40, index=True)
    status: str = Field(default=SignalStatus.RECEIVED.value, max_length=16, index=True)
    status_reason: str | None = Field(default=None, max_length=500)
    sent_at: datetime | None = timestamp()
    received_at: datetime = now_field()
    edited_at: datetime | None = timestamp()
    deleted_at: datetime | None = timestamp()
    revision: int = Field(default=1)


class SignalRevision(SQLModel, table=True):
    """An edit of a Discord message: recorded, never traded a second time."""

    __tablename__ = "signal_revisions"

    id: int | None = Field(default=None, primary_key=True)
    signal_id: int = fk("signals.id", ondelete="CASCADE")
    revision: int
    raw_text: str = Field(sa_type=sa.Text)
    parsed: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)
    changed: bool = Field(default=False, description="parsed content differs from the original")
    received_at: datetime = now_field()


class Follow(SQLModel, table=True):
    __tablename__ = "follows"
    __table_args__ = (sa.UniqueConstraint("follower_id", "source_id", name="uq_follow"),)

    id: int | None = Field(default=None, primary_key=True)
    follower_id: int = fk("users.id", ondelete="CASCADE")
    source_id: int = fk("signal_sources.id", ondelete="CASCADE")
    broker_account_id: int | None = fk("broker_accounts.id", nullable=True, ondelete="SET NULL")
    auto_trade: bool = Field(default=True, index=True)
    sizing_mode: str | None = Field(default=None, max_length=32)
    sizing_value: Decimal | None = opt_money()
    tp_allocation: list[str] | None = Field(default=None, sa_type=sa.JSON, nullable=True,
                                            description="overrides the source's take-profit split")
    created_at: datetime = now_field()


__all__ = ["SourceKind", "SignalStatus", "SignalSource", "Signal", "SignalRevision", "Follow", "json_field"]
