"""Each limit check: one case that allows, one that denies, and the edges."""

from __future__ import annotations

from datetime import datetime, time, timezone
from decimal import Decimal as D

import pytest

from backend.errors import ValidationError
from backend.risk import (
    AccountSnapshot, MarketHours, PositionSnapshot, RiskProfile, SizingMode, TradingState, check_buying_power,
    check_daily_loss, check_market_hours, check_max_leverage, check_max_open_positions, check_max_position_notional,
    check_signal_rate, check_stop_side, check_symbol, check_trading_state,
)

UTC = timezone.utc


def prof(**kw) -> RiskProfile:
    return RiskProfile(sizing_mode=SizingMode.FIXED_UNITS, sizing_value=D("1"), **kw)


def account(positions=None, equity="10000", bp="10000", realized="0", unrealized="0") -> AccountSnapshot:
    return AccountSnapshot(equity=D(equity), buying_power=D(bp), open_positions=positions or {},
                           realized_pnl_today=D(realized), unrealized_pnl=D(unrealized))


def pos(qty: str, price: str = "100") -> PositionSnapshot:
    return PositionSnapshot(quantity=D(qty), avg_price=D(price), market_price=D(price))


# --- trading state --------------------------------------------------------------------
def test_trading_state():
    assert check_trading_state(TradingState.ACTIVE, reducing=False) is None
    assert check_trading_state(TradingState.REDUCING, reducing=False).code == "trading_reducing"
    assert check_trading_state(TradingState.HALTED, reducing=False).code == "trading_halted"
    assert check_trading_state(TradingState.REDUCING, reducing=True) is None
    assert check_trading_state(TradingState.HALTED, reducing=True) is None


# --- symbols --------------------------------------------------------------------------
def test_symbol_lists():
    assert check_symbol("AAPL", prof()) is None  # empty allow list = everything
    assert check_symbol("aapl", prof(allowed_symbols=["AAPL", "MSFT"])) is None  # case-insensitive
    assert check_symbol("TSLA", prof(allowed_symbols=["AAPL"])).code == "symbol_not_allowed"
    assert check_symbol("GME", prof(denied_symbols=["gme"])).code == "symbol_denied"
    assert check_symbol("BTC/USDT", prof(allowed_symbols=["BTC/USDT"], denied_symbols=["BTC/USDT"])).code == \
        "symbol_denied"  # deny wins


def test_symbol_list_must_be_a_list():
    with pytest.raises(ValidationError):
        prof(allowed_symbols="AAPL")


# --- max open positions ------------------------------------------------------------------
def test_max_open_positions():
    two = account({"AAPL": pos("10"), "MSFT": pos("-5"), "FLAT": pos("0")})
    assert check_max_open_positions("TSLA", two, None) is None
    assert check_max_open_positions("TSLA", two, 3) is None
    denied = check_max_open_positions("TSLA", two, 2)
    assert denied.code == "max_open_positions" and "2 positions" in denied.message
    assert check_max_open_positions("AAPL", two, 2) is None  # adding to a held symbol
    assert check_max_open_positions("FLAT", two, 2).code == "max_open_positions"  # a flat row is not held


# --- max position notional -------------------------------------------------------------------
def test_max_position_notional_counts_existing_plus_new():
    acct = account({"AAPL": pos("10")})
    assert check_max_position_notional("AAPL", "buy", D("5"), D("100"), acct, None) is None
    assert check_max_position_notional("AAPL", "buy", D("5"), D("100"), acct, D("1500")) is None  # equal is fine
    denied = check_max_position_notional("AAPL", "buy", D("5"), D("100"), acct, D("1499.99"))
    assert denied.code == "max_position_notional" and "$1,500.00" in denied.message


def test_max_position_notional_ignores_reductions_and_counts_flips():
    acct = account({"AAPL": pos("10")})
    assert check_max_position_notional("AAPL", "sell", D("5"), D("100"), acct, D("100")) is None
    assert check_max_position_notional("AAPL", "sell", D("25"), D("100"), acct, D("1000")).code == \
        "max_position_notional"  # flips to -15 = $1,500


def test_max_position_notional_with_multiplier():
    acct = account()
    assert check_max_position_notional("OPT", "buy", D("2"), D("2.5"), acct, D("400"),
                                       multiplier=D("100")).code == "max_position_notional"


# --- max leverage ------------------------------------------------------------------------
def test_max_leverage():
    acct = account({"MSFT": pos("50")})  # $5,000 held, equity $10,000
    assert check_max_leverage("AAPL", "buy", D("50"), D("100"), acct, D("1")) is None  # exactly 1.0x
    denied = check_max_leverage("AAPL", "buy", D("51"), D("100"), acct, D("1"))
    assert denied.code == "max_leverage" and "1.01x" in denied.message
    assert check_max_leverage("AAPL", "buy", D("51"), D("100"), acct, D("2")) is None
    assert check_max_leverage("AAPL", "buy", D("1000"), D("100"), acct, None) is None


def test_max_leverage_allows_reductions_and_refuses_without_equity():
    acct = account({"AAPL": pos("300")}, equity="10000")  # already 3x
    assert check_max_leverage("AAPL", "sell", D("100"), D("100"), acct, D("1")) is None
    broke = account(equity="0")
    assert check_max_leverage("AAPL", "buy", D("1"), D("100"), broke, D("1")).code == "max_leverage"


# --- buying power --------------------------------------------------------------------------
def test_buying_power():
    acct = account(bp="1000")
    assert check_buying_power("AAPL", "buy", D("10"), D("100"), acct) is None
    assert check_buying_power("AAPL", "buy", D("11"), D("100"), acct).code == "insufficient_buying_power"
    assert check_buying_power("AAPL", "buy", D("20"), D("100"), acct, leverage=D("2")) is None
    long = account({"AAPL": pos("50")}, bp="0")
    assert check_buying_power("AAPL", "sell", D("50"), D("100"), long) is None  # a pure reduction


# --- market hours ------------------------------------------------------------------------
NY = MarketHours()


@pytest.mark.parametrize("when,open_", [
    (datetime(2025, 1, 6, 15, 0, tzinfo=UTC), True),     # Monday 10:00 EST
    (datetime(2025, 1, 6, 14, 30, tzinfo=UTC), True),    # Monday 09:30 EST, opening bell
    (datetime(2025, 1, 6, 14, 29, tzinfo=UTC), False),   # 09:29, before the open
    (datetime(2025, 1, 6, 20, 59, tzinfo=UTC), True),    # 15:59
    (datetime(2025, 1, 6, 21, 0, tzinfo=UTC), False),    # 16:00, the close is exclusive
    (datetime(2025, 1, 11, 15, 0, tzinfo=UTC), False),   # Saturday
    (datetime(2025, 1, 12, 15, 0, tzinfo=UTC), False),   # Sunday
    (datetime(2025, 7, 7, 13, 30, tzinfo=UTC), True),    # Monday 09:30 EDT (summer time)
    (datetime(2025, 7, 7, 13, 29, tzinfo=UTC), False),
])
def test_market_hours_for_stocks(when, open_):
    reason = check_market_hours("stock", when, enforce=True, hours=NY)
    assert (reason is None) is open_
    if reason:
        assert reason.code == "market_closed"
        assert "09:30-16:00, Monday to Friday" in reason.message


def test_market_hours_options_checked_crypto_exempt_and_switch_off():
    saturday = datetime(2025, 1, 11, 15, 0, tzinfo=UTC)
    assert check_market_hours("option", saturday, enforce=True, hours=NY).code == "market_closed"
    assert check_market_hours("crypto", saturday, enforce=True, hours=NY) is None
    assert check_market_hours("stock", saturday, enforce=False, hours=NY) is None


def test_custom_market_hours_and_holidays():
    london = MarketHours(open_time="08:00", close_time="16:30", timezone="Europe/London")
    assert london.open_time == time(8, 0)
    assert check_market_hours("stock", datetime(2025, 1, 6, 8, 0, tzinfo=UTC), enforce=True, hours=london) is None
    holiday = MarketHours(holidays=frozenset({datetime(2025, 1, 6).date()}))
    assert check_market_hours("stock", datetime(2025, 1, 6, 15, 0, tzinfo=UTC), enforce=True,
                              hours=holiday).code == "market_closed"
    with pytest.raises(ValidationError):
        MarketHours(timezone="Mars/Olympus")
    with pytest.raises(ValidationError):
        MarketHours(open_time="17:00", close_time="09:00")


# --- signal rate ---------------------------------------------------------------------------
def test_signal_rate():
    assert check_signal_rate(100, None) is None
    assert check_signal_rate(4, 5) is None
    denied = check_signal_rate(5, 5)
    assert denied.code == "rate_limited" and "5 a minute" in denied.message


# --- daily loss ----------------------------------------------------------------------------
@pytest.mark.parametrize("realized,unrealized,breach", [
    ("0", "0", False), ("-499.99", "0", False), ("-500", "0", True), ("-300", "-250", True),
    ("200", "-650", False), ("-600", "200", False), ("100", "100", False),
])
def test_daily_loss(realized, unrealized, breach):
    acct = account(realized=realized, unrealized=unrealized)
    reason = check_daily_loss(acct, D("500"))
    assert (reason is not None) is breach
    if reason:
        assert reason.code == "daily_loss_limit" and "$500.00" in reason.message
    assert check_daily_loss(acct, None) is None


# --- stop side ------------------------------------------------------------------------------
def test_stop_side():
    assert check_stop_side("buy", D("100"), D("95")) is None
    assert check_stop_side("sell", D("100"), D("105")) is None
    assert check_stop_side("buy", D("100"), None) is None
    assert check_stop_side("buy", D("100"), D("100")).code == "stop_wrong_side"
    assert check_stop_side("sell", D("100"), D("95")).code == "stop_wrong_side"
