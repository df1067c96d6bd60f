"""The dashboard, community and admin read models over the demo world."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlmodel import select

from backend.db.models import (
    BillingCustomer, BrokerAccount, Community, EquitySnapshot, Order, Position, RealizedPnl, Subscription, User,
)
from backend.db.types import utcnow
from backend.errors import PermissionDenied
from backend.services import admin, community, dashboard
from backend.services.demo_seed import seed_demo


@pytest.fixture
def users(session, engine):
    seed_demo(engine)
    return {u.username: u for u in session.exec(select(User)).all()}


def test_overview_marks_the_paper_account_to_the_last_price(session, users):
    o = dashboard.trader_overview(session, users["dana"].id)
    [account] = o.accounts
    assert account.cash == Decimal("98100")
    assert account.equity == Decimal("100050")  # 98,100 cash + 10 AAPL x 195
    assert account.buying_power == Decimal("98100")
    assert o.totals.today_pnl == Decimal("50")  # yesterday's snapshot was 100,000
    assert o.totals.total_pnl == Decimal("50") and o.totals.realized_pnl == 0
    [pos] = o.positions
    assert (pos.symbol, pos.quantity, pos.unrealized_pnl) == ("AAPL", Decimal("10"), Decimal("50"))
    assert [x.symbol for x in o.latest_orders] == ["AAPL"]
    assert o.latest_orders[0].source_name == "Pat's trade calls"
    assert [f.provider_name for f in o.follows] == ["Pat Provider", "Pat Provider"]  # chat + TradingView
    assert o.risk.trading_state == "ACTIVE"


def test_total_pnl_adds_the_realised_ledger(session, users):
    dana = users["dana"]
    account = session.exec(select(BrokerAccount).where(BrokerAccount.user_id == dana.id)).one()
    session.add(RealizedPnl(user_id=dana.id, broker_account_id=account.id, symbol="MSFT", amount=Decimal("-12.5")))
    session.commit()
    totals = dashboard.trader_overview(session, dana.id).totals
    assert totals.realized_pnl == Decimal("-12.5")
    assert totals.total_pnl == Decimal("37.5")


def test_a_real_broker_account_shows_its_latest_snapshot(session, users):
    sam = users["sam"]
    live = BrokerAccount(user_id=sam.id, broker="alpaca", label="Alpaca paper", live=False)
    session.add(live)
    session.flush()
    now = utcnow()
    session.add(EquitySnapshot(broker_account_id=live.id, equity=Decimal("5000"), cash=Decimal("4000"),
                               taken_at=now - timedelta(days=2)))
    session.add(EquitySnapshot(broker_account_id=live.id, equity=Decimal("5100"), cash=Decimal("4100"),
                               taken_at=now - timedelta(minutes=5)))
    session.commit()
    o = dashboard.trader_overview(session, sam.id)
    alpaca = next(a for a in o.accounts if a.broker == "alpaca")
    assert (alpaca.equity, alpaca.cash) == (Decimal("5100"), Decimal("4100"))
    assert o.totals.equity == Decimal("105100")
    assert o.totals.today_pnl == Decimal("100")


def test_each_user_sees_only_their_own_trading(session, users):
    sam = dashboard.trader_overview(session, users["sam"].id)
    assert sam.positions == [] and sam.latest_orders == []
    assert dashboard.order_views(session, users["pat"].id) == []
    alex_orders = dashboard.order_views(session, users["alex"].id)
    assert {o.id for o in alex_orders} == {
        o.id for o in session.exec(select(Order).where(Order.user_id == users["alex"].id)).all()
    }


def test_closed_positions_are_left_out(session, users):
    pos = session.exec(select(Position).where(Position.user_id == users["alex"].id)).one()
    pos.quantity = Decimal("0")
    session.commit()
    assert dashboard.position_views(session, users["alex"].id) == []
    assert len(dashboard.position_views(session, users["alex"].id, open_only=False)) == 1


def test_order_filters_and_pages(session, users):
    assert dashboard.order_views(session, users["dana"].id, status="rejected") == []
    assert len(dashboard.order_views(session, users["dana"].id, symbol="aapl")) == 1
    assert dashboard.order_views(session, users["dana"].id, offset=1) == []


def test_community_overview_counts_members_sources_and_orders(session, users):
    [ref] = community.managed_communities(session, users["dana"].id)
    o = community.community_overview(session, users["dana"].id, ref.id)
    assert o.name == "Demo Trading Club" and o.my_role == "owner"
    assert o.member_count == 5
    assert o.role_counts == {"owner": 1, "admin": 1, "trader": 2, "viewer": 1}
    assert [m.name for m in o.members][:2] == ["Dana Host", "Pat Provider"]
    calls = next(s for s in o.sources if s.kind == "discord")
    assert (calls.followers, calls.auto_trading_followers, calls.signals_total, calls.orders_total) == (4, 4, 1, 2)
    assert calls.last_signal_at is not None and calls.last_signal_at.tzinfo is not None
    assert (o.signals_total, o.orders_total) == (1, 2)


def test_community_overview_pages_members(session, users):
    ref = community.managed_communities(session, users["pat"].id)[0]
    page = community.community_overview(session, users["pat"].id, ref.id, member_limit=2, member_offset=4)
    assert len(page.members) == 1 and page.member_count == 5


@pytest.mark.parametrize("username", ["alex", "riley"])
def test_community_overview_refuses_traders_and_viewers(session, users, username):
    demo = session.exec(select(Community)).one()
    assert community.managed_communities(session, users[username].id) == []
    with pytest.raises(PermissionDenied):
        community.community_overview(session, users[username].id, demo.id)


@pytest.mark.parametrize("amount,interval,monthly", [
    ("49", "month", "49.00"), ("490", "year", "40.83"), ("10", "week", "43.33"), ("1", "day", "30.42"),
    ("90", "quarter", "30.00"), ("5", "fortnight", "0"),
])
def test_monthly_amount_normalises_the_interval(amount, interval, monthly):
    assert admin.monthly_amount(Decimal(amount), interval) == Decimal(monthly)


def test_platform_overview_sums_mrr_per_currency(session, users):
    o = admin.platform_overview(session, users["dana"].id)
    assert o.users_count == 5 and o.communities_count == 1
    assert o.active_subscriptions == 2
    assert o.mrr == {"USD": Decimal("89.83")}  # 49 + 490/12; the canceled one counts nothing
    assert {s.customer_name for s in o.subscriptions} == {"Alex Trader", "Sam Swing", "Riley Crypto"}
    assert [e.action for e in o.audit_events] == ["demo.seeded", "community.created"]
    cust = session.exec(select(BillingCustomer).where(BillingCustomer.user_id == users["pat"].id)).first()
    cust = cust or BillingCustomer(user_id=users["pat"].id, provider="stripe", provider_customer_id="c_pat")
    session.add(cust)
    session.flush()
    session.add(Subscription(customer_id=cust.id, provider="stripe", provider_subscription_id="s_eur", plan="EU",
                             status="trialing", amount=Decimal("20"), currency="eur", interval="month"))
    session.commit()
    assert admin.mrr_by_currency(session) == {"USD": Decimal("89.83"), "EUR": Decimal("20.00")}


def test_platform_overview_refuses_non_admins(session, users):
    with pytest.raises(PermissionDenied):
        admin.platform_overview(session, users["pat"].id)


def test_demo_seed_runs_once(session, engine, users):
    assert seed_demo(engine) is False
    assert len(session.exec(select(User)).all()) == 5
