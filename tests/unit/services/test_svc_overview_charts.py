"""The Overview's charts and per-follow track record, on both databases."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlmodel import select

from backend.db.models import BrokerAccount, EquitySnapshot, Fill, Order, RealizedPnl, User
from backend.services import dashboard, follows
from backend.services.demo_seed import seed_demo
from backend.services.equity_history import equity_curve, pnl_by_day

NOW = datetime(2026, 3, 10, 15, 0, tzinfo=timezone.utc)


@pytest.fixture
def world(session, engine):
    seed_demo(engine)
    users = {u.username: u for u in session.exec(select(User)).all()}
    sam = users["sam"]
    a = BrokerAccount(user_id=sam.id, broker="alpaca", label="A", live=False)
    b = BrokerAccount(user_id=sam.id, broker="alpaca", label="B", live=False)
    session.add_all([a, b])
    session.commit()
    return users, a, b


def snap(session, account, equity: str, at: datetime) -> None:
    session.add(EquitySnapshot(broker_account_id=account.id, equity=Decimal(equity), cash=Decimal(equity), taken_at=at))


def test_equity_curve_sums_accounts_carrying_each_forward(session, world):
    _users, a, b = world
    snap(session, a, "900", NOW - timedelta(days=40))     # before the window: A's opening value
    snap(session, a, "1000", NOW - timedelta(days=20))
    snap(session, b, "500", NOW - timedelta(days=10))     # B starts counting here
    snap(session, a, "1100", NOW - timedelta(days=5))
    snap(session, b, "450", NOW + timedelta(hours=1))     # after "now": not part of the curve
    session.commit()
    points = equity_curve(session, [a.id, b.id], Decimal("1700"), now=NOW, days=30)
    assert [(p.at, p.equity) for p in points] == [
        (NOW - timedelta(days=20), Decimal("1000")),
        (NOW - timedelta(days=10), Decimal("1500")),
        (NOW - timedelta(days=5), Decimal("1600")),
        (NOW, Decimal("1700")),                         # the live figure closes the curve
    ]
    assert all(p.at.tzinfo is not None for p in points)


def test_equity_curve_is_thinned_to_the_last_value_of_each_bucket(session, world):
    _users, a, _b = world
    start = NOW - timedelta(days=30)
    for i in range(600):  # every hour or so, rising by 1 each time
        snap(session, a, str(1000 + i), start + timedelta(minutes=72 * i))
    session.commit()
    points = equity_curve(session, [a.id], Decimal("5000"), now=NOW, days=30, max_points=20)
    assert 15 <= len(points) <= 21
    assert points[-1].equity == Decimal("5000") and points[-1].at == NOW
    values = [p.equity for p in points[:-1]]
    assert values == sorted(values) and len(set(values)) == len(values)
    # Thinning keeps real snapshot values, not averages: every kept value is one that was written.
    assert all(Decimal(1000) <= v <= Decimal(1599) and v == v.to_integral_value() for v in values)


def test_equity_curve_without_accounts_or_snapshots(session, world):
    _users, a, _b = world
    assert equity_curve(session, [], Decimal("10"), now=NOW) == []
    assert [(p.at, p.equity) for p in equity_curve(session, [a.id], Decimal("10"), now=NOW)] == [(NOW, Decimal("10"))]


def test_pnl_by_day_sums_realised_per_utc_day_and_adds_todays_open_pnl(session, world):
    users, a, _b = world
    sam = users["sam"]
    for amount, at in [("10", NOW - timedelta(days=2, hours=1)), ("-4.5", NOW - timedelta(days=2, hours=3)),
                       ("7", NOW - timedelta(hours=14)),          # 01:00 today (UTC)
                       ("99", NOW - timedelta(days=30))]:         # outside the 14-day window
        session.add(RealizedPnl(user_id=sam.id, broker_account_id=a.id, symbol="X", amount=Decimal(amount),
                                realized_at=at))
    session.add(RealizedPnl(user_id=users["alex"].id, broker_account_id=a.id, symbol="X", amount=Decimal("1000"),
                            realized_at=NOW))  # someone else's
    session.commit()
    days = pnl_by_day(session, sam.id, Decimal("-3"), now=NOW, days=14)
    assert len(days) == 14 and days[0].day == date(2026, 2, 25) and days[-1].day == date(2026, 3, 10)
    by_day = {d.day: (d.realized, d.unrealized) for d in days}
    assert by_day[date(2026, 3, 8)] == (Decimal("5.5"), Decimal("0"))
    assert by_day[date(2026, 3, 10)] == (Decimal("7"), Decimal("-3"))
    assert days[-1].total == Decimal("4")
    assert sum((d.realized for d in days), Decimal(0)) == Decimal("12.5")


def test_overview_shows_each_follows_last_30_days(session, world):
    users, _a, _b = world
    dana = users["dana"]
    fill = session.exec(select(Fill).join(Order, Order.id == Fill.order_id).where(Order.user_id == dana.id)).first()
    account_id = session.exec(select(Order.broker_account_id).where(Order.user_id == dana.id)).first()
    now = datetime.now(timezone.utc)
    for amount, age in [("30", timedelta(days=2)), ("-10", timedelta(days=3)), ("500", timedelta(days=45))]:
        session.add(RealizedPnl(user_id=dana.id, broker_account_id=account_id, fill_id=fill.id, symbol="AAPL",
                                amount=Decimal(amount), realized_at=now - age))
    session.commit()
    o = dashboard.trader_overview(session, dana.id, now=now)
    calls = next(f for f in o.follows if f.source_name == "Pat's trade calls")
    assert (calls.recent.round_trips, calls.recent.wins, calls.recent.total_pnl) == (2, 1, Decimal("20"))
    assert calls.recent.signals == 1
    alerts = next(f for f in o.follows if f.source_name != "Pat's trade calls")
    assert alerts.recent == follows.Performance()
    # The whole history (the Providers page) still counts the old round trip.
    assert follows.performance_for(session, [calls.source_id])[calls.source_id].total_pnl == Decimal("520")
    assert len(o.pnl_days) == 14 and o.pnl_days[-1].unrealized == o.totals.unrealized_pnl
    assert o.equity_curve[-1].equity == o.totals.equity
