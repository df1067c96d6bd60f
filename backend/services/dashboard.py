"""Read models for the trader dashboard: plain dataclasses, computed from the database.

The pages never query tables themselves; they call these functions with the
signed-in user's id and get back small immutable values with ``Decimal``
money.  Every query is scoped by ``user_id`` at the SQL level, so a page can
only ever show the caller's own accounts, orders and positions.

Account figures: for a paper account, cash is the paper venue's cash and
equity is cash plus the marked value of the open positions (last price, or
average price when no quote has been seen).  For a real broker the figures
come from the latest equity snapshot the scheduler took (the dashboard never
calls a broker on page load).  Today's P&L is equity now minus equity at the
last snapshot before today (UTC); total P&L is the realised ledger plus the
open positions' unrealised P&L, both kept apart in ``Totals``.

The Overview also carries its two charts (``equity_history``: the equity
curve from the scheduler's snapshots, realised P&L per day) and each
follow's last-30-days track record (``provider_performance``, the same
figures the Providers page shows for the whole history).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, timezone
from decimal import Decimal

import sqlalchemy as sa
from sqlmodel import Session, select

from backend.db.models import (
    BrokerAccount, Community, EquitySnapshot, Follow, Order, PaperAccount, Position, RealizedPnl,
    RiskProfileRecord, Signal, SignalSource, User,
)
from backend.db.types import utcnow
from backend.execution.brackets import is_engine_held
from backend.services.equity_history import DayPnl, EquityPoint, equity_curve, pnl_by_day
from backend.services.provider_performance import Performance, performance_for

ZERO = Decimal("0")
RECENT = timedelta(days=30)  # "recent performance" next to a follow


@dataclass(frozen=True)
class AccountView:
    id: int
    label: str
    broker: str
    live: bool
    status: str
    status_message: str | None
    cash: Decimal | None
    equity: Decimal | None
    buying_power: Decimal | None
    market_value: Decimal
    unrealized_pnl: Decimal
    figures_as_of: datetime | None


@dataclass(frozen=True)
class PositionView:
    id: int
    account_id: int
    account_label: str
    symbol: str
    quantity: Decimal
    avg_price: Decimal
    last_price: Decimal | None
    market_value: Decimal
    unrealized_pnl: Decimal
    realized_pnl: Decimal
    stop_loss: Decimal | None


@dataclass(frozen=True)
class OrderView:
    id: int
    created_at: datetime
    account_label: str
    symbol: str
    side: str
    order_type: str
    quantity: Decimal
    filled_quantity: Decimal
    avg_fill_price: Decimal | None
    limit_price: Decimal | None
    status: str
    leg: str
    source_name: str | None
    error_message: str | None
    held_by_engine: bool = False  # a take-profit the engine sends when its price is reached (brackets.is_engine_held)


@dataclass(frozen=True)
class FollowView:
    id: int
    source_id: int
    source_name: str
    source_kind: str
    community_name: str
    provider_name: str
    auto_trade: bool
    sizing_mode: str | None
    sizing_value: Decimal | None
    account_label: str | None
    recent: Performance = field(default_factory=Performance)  # filled by ``follow_views(recent_since=...)``


@dataclass(frozen=True)
class RiskStateView:
    trading_state: str
    reason: str | None
    sizing_mode: str
    sizing_value: Decimal
    daily_loss_limit: Decimal | None


@dataclass(frozen=True)
class Totals:
    equity: Decimal
    cash: Decimal
    buying_power: Decimal
    today_pnl: Decimal
    total_pnl: Decimal
    realized_pnl: Decimal
    unrealized_pnl: Decimal


@dataclass(frozen=True)
class TraderOverview:
    totals: Totals
    accounts: list[AccountView]
    positions: list[PositionView]
    latest_orders: list[OrderView]
    follows: list[FollowView]
    risk: RiskStateView | None
    equity_curve: list[EquityPoint] = field(default_factory=list)
    pnl_days: list[DayPnl] = field(default_factory=list)


def _mark(position: Position) -> Decimal:
    return position.last_price if position.last_price is not None else position.avg_price


def position_views(session: Session, user_id: int, *, open_only: bool = True) -> list[PositionView]:
    query = (
        select(Position, BrokerAccount.label)
        .join(BrokerAccount, BrokerAccount.id == Position.broker_account_id)
        .where(Position.user_id == user_id)
        .order_by(Position.symbol)
    )
    views = []
    for pos, label in session.exec(query).all():
        if open_only and pos.quantity == ZERO:
            continue
        mark = _mark(pos)
        views.append(PositionView(
            id=pos.id, account_id=pos.broker_account_id, account_label=label, symbol=pos.symbol,
            quantity=pos.quantity, avg_price=pos.avg_price, last_price=pos.last_price,
            market_value=pos.quantity * mark, unrealized_pnl=(mark - pos.avg_price) * pos.quantity,
            realized_pnl=pos.realized_pnl, stop_loss=pos.stop_loss,
        ))
    return views


def account_views(session: Session, user_id: int, positions: list[PositionView] | None = None) -> list[AccountView]:
    positions = positions if positions is not None else position_views(session, user_id)
    accounts = session.exec(
        select(BrokerAccount).where(BrokerAccount.user_id == user_id).order_by(BrokerAccount.id)
    ).all()
    views = []
    for account in accounts:
        mine = [p for p in positions if p.account_id == account.id]
        market_value = sum((p.market_value for p in mine), ZERO)
        unrealized = sum((p.unrealized_pnl for p in mine), ZERO)
        cash = equity = buying_power = None
        as_of = None
        if account.broker == "paper":
            paper = session.exec(select(PaperAccount).where(PaperAccount.broker_account_id == account.id)).first()
            if paper is not None:
                cash, equity, buying_power, as_of = paper.cash, paper.cash + market_value, paper.cash, utcnow()
        else:
            snap = _latest_snapshot(session, account.id)
            if snap is not None:
                cash, equity, buying_power, as_of = snap.cash, snap.equity, snap.cash, snap.taken_at
        views.append(AccountView(
            id=account.id, label=account.label, broker=account.broker, live=account.live, status=account.status,
            status_message=account.status_message, cash=cash, equity=equity, buying_power=buying_power,
            market_value=market_value, unrealized_pnl=unrealized, figures_as_of=as_of,
        ))
    return views


def _latest_snapshot(session: Session, account_id: int, before: datetime | None = None) -> EquitySnapshot | None:
    query = select(EquitySnapshot).where(EquitySnapshot.broker_account_id == account_id)
    if before is not None:
        query = query.where(EquitySnapshot.taken_at < before)
    return session.exec(query.order_by(EquitySnapshot.taken_at.desc()).limit(1)).first()


def _start_of_day(now: datetime) -> datetime:
    return datetime.combine(now.astimezone(timezone.utc).date(), time(0), tzinfo=timezone.utc)


def totals_for(session: Session, user_id: int, accounts: list[AccountView], positions: list[PositionView],
               *, now: datetime | None = None) -> Totals:
    now = now or utcnow()
    equity = sum((a.equity or ZERO for a in accounts), ZERO)
    cash = sum((a.cash or ZERO for a in accounts), ZERO)
    buying_power = sum((a.buying_power or ZERO for a in accounts), ZERO)
    unrealized = sum((p.unrealized_pnl for p in positions), ZERO)
    # Summed in Python: SQLite stores Decimal as text, and SQL SUM would go through float.
    realized_total = sum(session.exec(select(RealizedPnl.amount).where(RealizedPnl.user_id == user_id)).all(), ZERO)
    day_start = _start_of_day(now)
    opening = ZERO
    for account in accounts:
        snap = _latest_snapshot(session, account.id, before=day_start)
        opening += snap.equity if snap is not None else (account.equity or ZERO)
    return Totals(
        equity=equity, cash=cash, buying_power=buying_power, today_pnl=equity - opening,
        total_pnl=realized_total + unrealized, realized_pnl=realized_total, unrealized_pnl=unrealized,
    )


def order_views(session: Session, user_id: int, *, limit: int = 10, offset: int = 0,
                status: str | None = None, symbol: str | None = None) -> list[OrderView]:
    query = (
        select(Order, BrokerAccount.label, SignalSource.name)
        .join(BrokerAccount, BrokerAccount.id == Order.broker_account_id)
        .outerjoin(Signal, Signal.id == Order.signal_id)
        .outerjoin(SignalSource, SignalSource.id == Signal.source_id)
        .where(Order.user_id == user_id)
    )
    if status:
        query = query.where(Order.status == status)
    if symbol:
        query = query.where(Order.symbol == symbol.strip().upper())
    query = query.order_by(Order.created_at.desc(), Order.id.desc()).offset(offset).limit(limit)
    return [
        OrderView(
            id=o.id, created_at=o.created_at, account_label=label, symbol=o.symbol, side=o.side,
            order_type=o.order_type, quantity=o.quantity, filled_quantity=o.filled_quantity,
            avg_fill_price=o.avg_fill_price, limit_price=o.limit_price, status=o.status, leg=o.leg,
            source_name=source_name, error_message=o.error_message, held_by_engine=is_engine_held(o),
        )
        for o, label, source_name in session.exec(query).all()
    ]


def follow_views(session: Session, user_id: int, *, recent_since: datetime | None = None) -> list[FollowView]:
    """The user's follows; with ``recent_since``, each with its source's performance since then."""
    provider = sa.orm.aliased(User)
    query = (
        select(Follow, SignalSource, Community.name, provider, BrokerAccount.label)
        .join(SignalSource, SignalSource.id == Follow.source_id)
        .join(Community, Community.id == SignalSource.community_id)
        .join(provider, provider.id == SignalSource.provider_id)
        .outerjoin(BrokerAccount, BrokerAccount.id == Follow.broker_account_id)
        .where(Follow.follower_id == user_id)
        .order_by(Follow.id)
    )
    rows = session.exec(query).all()
    recent = (performance_for(session, [src.id for _f, src, *_ in rows], since=recent_since)
              if recent_since is not None else {})
    return [
        FollowView(
            id=f.id, source_id=src.id, source_name=src.name, source_kind=src.kind, community_name=community_name,
            provider_name=prov.display_name or prov.username, auto_trade=f.auto_trade,
            sizing_mode=f.sizing_mode, sizing_value=f.sizing_value, account_label=label,
            recent=recent.get(src.id, Performance()),
        )
        for f, src, community_name, prov, label in rows
    ]


def risk_state(session: Session, user_id: int) -> RiskStateView | None:
    profile = session.exec(select(RiskProfileRecord).where(RiskProfileRecord.user_id == user_id)).first()
    if profile is None:
        return None
    return RiskStateView(
        trading_state=profile.trading_state, reason=profile.state_reason, sizing_mode=profile.sizing_mode,
        sizing_value=profile.sizing_value, daily_loss_limit=profile.daily_loss_limit,
    )


def trader_overview(session: Session, user_id: int, *, now: datetime | None = None,
                    order_limit: int = 10) -> TraderOverview:
    """Everything the Overview page shows, in one call."""
    now = now or utcnow()
    positions = position_views(session, user_id)
    accounts = account_views(session, user_id, positions)
    totals = totals_for(session, user_id, accounts, positions, now=now)
    return TraderOverview(
        totals=totals,
        accounts=accounts,
        positions=positions,
        latest_orders=order_views(session, user_id, limit=order_limit),
        follows=follow_views(session, user_id, recent_since=now - RECENT),
        risk=risk_state(session, user_id),
        equity_curve=equity_curve(session, [a.id for a in accounts], totals.equity if accounts else None, now=now),
        pnl_days=pnl_by_day(session, user_id, totals.unrealized_pnl, now=now),
    )
