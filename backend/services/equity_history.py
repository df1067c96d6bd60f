"""The Overview's two charts: the equity curve and P&L by day, as plain points.

**Equity curve.**  The scheduler's reconciliation job writes one
``equity_snapshots`` row per connected account every run (5 minutes), and
connecting an account writes the first one.  The curve is the sum over the
user's accounts of each account's latest snapshot at every snapshot time
(an account's value is carried forward until its next snapshot), thinned to
at most ``max_points`` (the last point of each time bucket is kept, so the
curve always ends on real values), and closed with the live total the
Overview shows now.  An account connected halfway through the window starts
counting at its first snapshot, so its money shows as a step up, as a
deposit would.

**P&L by day.**  Realised P&L per UTC day from the ``realized_pnl`` ledger
(net of fees, summed as ``Decimal`` in Python: SQLite keeps Numeric as
text), one entry for every day of the window including quiet days, plus
today's unrealised P&L of the open positions on today's entry.

Only the snapshots of the window (and one per account before it) are read,
three columns each; nothing here calls a broker.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal

from sqlmodel import Session, select

from backend.db.models import EquitySnapshot, RealizedPnl

ZERO = Decimal(0)
CURVE_DAYS = 30
PNL_DAYS = 14
MAX_POINTS = 120


@dataclass(frozen=True)
class EquityPoint:
    at: datetime
    equity: Decimal


@dataclass(frozen=True)
class DayPnl:
    day: date
    realized: Decimal
    unrealized: Decimal  # only today's entry has one: yesterday's open P&L is not known

    @property
    def total(self) -> Decimal:
        return self.realized + self.unrealized


def _utc_day(moment: datetime) -> date:
    return moment.astimezone(timezone.utc).date()


def equity_curve(session: Session, account_ids: list[int], current_equity: Decimal | None, *, now: datetime,
                 days: int = CURVE_DAYS, max_points: int = MAX_POINTS) -> list[EquityPoint]:
    """Total equity over the last ``days`` days, oldest first, ending with ``current_equity`` at ``now``."""
    if not account_ids:
        return []
    since = now - timedelta(days=days)
    latest: dict[int, Decimal] = {}
    for account_id in account_ids:  # the value each account starts the window with
        before = session.exec(
            select(EquitySnapshot.equity)
            .where(EquitySnapshot.broker_account_id == account_id, EquitySnapshot.taken_at < since)
            .order_by(EquitySnapshot.taken_at.desc(), EquitySnapshot.id.desc()).limit(1)).first()
        if before is not None:
            latest[account_id] = before
    rows = session.exec(
        select(EquitySnapshot.broker_account_id, EquitySnapshot.taken_at, EquitySnapshot.equity)
        .where(EquitySnapshot.broker_account_id.in_(account_ids), EquitySnapshot.taken_at >= since,
               EquitySnapshot.taken_at <= now)
        .order_by(EquitySnapshot.taken_at, EquitySnapshot.id)).all()
    bucket = (now - since) / max(max_points - 1, 1)
    kept: dict[int, EquityPoint] = {}  # bucket number -> last point in it
    for account_id, taken_at, equity in rows:
        latest[account_id] = equity
        kept[int((taken_at - since) / bucket)] = EquityPoint(taken_at, sum(latest.values(), ZERO))
    points = [kept[k] for k in sorted(kept)]
    if current_equity is not None:
        if points and int((now - since) / bucket) == int((points[-1].at - since) / bucket):
            points.pop()  # the live figure replaces the last snapshot of the same bucket
        points.append(EquityPoint(now, current_equity))
    return points


def pnl_by_day(session: Session, user_id: int, unrealized_now: Decimal, *, now: datetime,
               days: int = PNL_DAYS) -> list[DayPnl]:
    """One entry per UTC day for the last ``days`` days (today last): realised, and today's unrealised."""
    today = _utc_day(now)
    first = today - timedelta(days=days - 1)
    start = datetime.combine(first, time(0), tzinfo=timezone.utc)
    realized = {first + timedelta(days=i): ZERO for i in range(days)}
    for at, amount in session.exec(select(RealizedPnl.realized_at, RealizedPnl.amount)
                                   .where(RealizedPnl.user_id == user_id, RealizedPnl.realized_at >= start)).all():
        day = _utc_day(at)
        if day in realized:
            realized[day] += amount
    return [DayPnl(day, amount, unrealized_now if day == today else ZERO) for day, amount in realized.items()]
