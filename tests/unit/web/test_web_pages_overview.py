"""Overview state called directly: P&L split, charts as plain points, risk state, follow track record."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from sqlmodel import Session, select

from backend.db.models import BrokerAccount, EquitySnapshot, RealizedPnl, RiskProfileRecord
from backend.db.types import utcnow
from state.trader import TraderOverviewState
from webstate import sign_in


def test_total_pnl_is_split_and_charts_are_plain_numbers(db, users):
    dana = users["dana"]
    with Session(db) as s:
        account = s.exec(select(BrokerAccount).where(BrokerAccount.user_id == dana.id)).one()
        s.add(RealizedPnl(user_id=dana.id, broker_account_id=account.id, symbol="MSFT", amount=Decimal("-12.5"),
                          realized_at=utcnow() - timedelta(days=1)))
        s.add(EquitySnapshot(broker_account_id=account.id, equity=Decimal("100020"), cash=Decimal("98100"),
                             taken_at=utcnow() - timedelta(hours=6)))
        s.commit()
    state = sign_in(TraderOverviewState, db, dana)
    assert state.load() is None
    assert (state.total_pnl, state.realized_pnl, state.unrealized_pnl) == ("+37.50", "-12.50", "+50.00")
    # Yesterday's seeded snapshot, the one from 6 hours ago, and the live figure now.
    assert [p["equity"] for p in state.equity_points] == [100000.0, 100020.0, 100050.0]
    assert all(isinstance(p["at"], str) and p["at"] for p in state.equity_points)
    assert len(state.pnl_days) == 14
    yesterday, today = state.pnl_days[-2], state.pnl_days[-1]
    assert (yesterday["realized"], yesterday["unrealized"]) == (-12.5, 0.0)
    assert (today["realized"], today["unrealized"]) == (0.0, 50.0)


def test_risk_state_is_shown_when_active_and_with_its_reason_when_not(db, users):
    dana = users["dana"]
    state = sign_in(TraderOverviewState, db, dana)
    state.load()
    assert state.trading_state == "ACTIVE" and state.trading_state_reason == ""
    assert "traded within your risk limits" in state.trading_state_text
    with Session(db) as s:
        profile = s.exec(select(RiskProfileRecord).where(RiskProfileRecord.user_id == dana.id)).one()
        profile.trading_state, profile.state_reason = "HALTED", "Daily loss limit of 2,000.00 reached."
        s.commit()
    state.load()
    assert state.trading_state == "HALTED"
    assert state.trading_state_reason == "Daily loss limit of 2,000.00 reached."
    assert state.trading_state_text == "No new orders are sent."


def test_a_user_without_risk_settings_is_shown_active(db, users):
    state = sign_in(TraderOverviewState, db, users["pat"])  # the provider follows nobody: no risk profile
    state.load()
    assert state.trading_state == "ACTIVE" and state.equity_points == []


def test_each_follow_shows_its_providers_recent_record(db, users):
    state = sign_in(TraderOverviewState, db, users["dana"])
    state.load()
    by_source = {f["source"]: f for f in state.follows}
    assert by_source["Pat's trade calls"]["recent"] == "No closed trade yet · 1 signal"
    assert by_source["Pat's TradingView alerts"]["recent"] == "No closed trade yet · 0 signals"
    assert by_source["Pat's trade calls"]["recent_tone"] == "gray"
