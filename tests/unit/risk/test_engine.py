"""evaluate(): state machine, daily loss halt, composition of limits, audit inputs."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal as D

import pytest

from backend.errors import ValidationError
from backend.risk import (
    AccountSnapshot, Decision, InstrumentRules, PositionSnapshot, RiskProfile, SizingMode, TradingState, evaluate,
    halt_expired, next_trading_day, trading_day,
)

UTC = timezone.utc
MONDAY_OPEN = datetime(2025, 1, 6, 15, 0, tzinfo=UTC)   # Monday 10:00 New York
SATURDAY = datetime(2025, 1, 11, 15, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Sig:
    action: str = "open"
    side: str | None = "buy"
    symbol: str = "AAPL"
    asset_class: str = "stock"
    order_type: str = "market"
    entry_prices: list = field(default_factory=list)
    stop_loss: D | None = D("145")
    take_profits: list = field(default_factory=lambda: [D("160")])
    quantity: D | None = None
    quantity_unit: str | None = None
    leverage: D | None = None
    option_right: str | None = None
    strike: D | None = None
    expiry: object = None


PROFILE = RiskProfile(sizing_mode=SizingMode.RISK_PERCENT, sizing_value=D("1"))
RULES = InstrumentRules(quantity_step=D("1"), fractional=False, price_tick=D("0.01"))
HELD = {"AAPL": PositionSnapshot(quantity=D("10"), avg_price=D("140"), market_price=D("150"))}


def acct(state=TradingState.ACTIVE, positions=None, realized="0", unrealized="0", equity="10000",
         bp=None) -> AccountSnapshot:
    return AccountSnapshot(equity=D(equity), buying_power=D(bp or equity), open_positions=positions or {},
                           realized_pnl_today=D(realized), unrealized_pnl=D(unrealized), trading_state=state)


def run(sig=None, profile=PROFILE, account=None, rules=RULES, price="150", now=MONDAY_OPEN, recent=0) -> Decision:
    return evaluate(sig or Sig(), profile, account or acct(), rules,
                    reference_price=None if price is None else D(price), now=now, recent_signal_count=recent)


def codes(decision: Decision) -> list[str]:
    return [r.code for r in decision.reasons]


# --- approvals carry a reason and every input ---------------------------------------------
def test_approved_open_explains_the_size_and_records_inputs():
    d = run()
    assert d.approved and d.quantity == D("20") and d.side == "buy"
    assert codes(d)[0] == "approved"
    assert "Risking 1% of $10,000.00 equity = $100.00" in d.reasons[0].message
    assert d.stop_price == D("145") and d.limit_price is None
    assert d.new_trading_state is None and d.flatten is False
    assert set(d.inputs) >= {"signal", "profile", "account", "rules", "reference_price", "now",
                             "recent_signal_count", "computed"}
    out = d.to_dict()
    assert json.loads(json.dumps(out)) == out  # JSON-ready as is
    assert out["quantity"] == "20"
    assert out["inputs"]["signal"]["stop_loss"] == "145"
    assert out["inputs"]["account"]["equity"] == "10000"
    assert out["inputs"]["computed"]["order_notional"] == "3000"
    assert out["inputs"]["now"] == "2025-01-06T15:00:00+00:00"


def test_denied_decision_has_zero_quantity_and_reasons():
    d = run(Sig(stop_loss=None))
    assert not d.approved and d.quantity == 0
    assert codes(d) == ["no_stop_loss"]
    assert d.to_dict()["reasons"][0]["message"] == "Risk-based sizing needs a stop loss; this signal has none."
    assert d.inputs["signal"]["stop_loss"] is None


def test_every_failure_is_reported_at_once():
    profile = RiskProfile(sizing_mode=SizingMode.FIXED_UNITS, sizing_value=D("1"), denied_symbols=["AAPL"],
                          max_signals_per_minute=3)
    d = run(profile=profile, now=SATURDAY, recent=3)
    assert codes(d) == ["symbol_denied", "market_closed", "rate_limited"]


def test_limit_order_uses_rounded_limit_price():
    d = run(Sig(order_type="limit", entry_prices=[D("148.004"), D("150.006")]), price="149")
    assert d.approved and d.limit_price == D("150.00") and d.quantity == D("20")


def test_option_contract_multiplier_flows_through_limits():
    rules = InstrumentRules(quantity_step=D("1"), fractional=False, contract_multiplier=D("100"))
    profile = RiskProfile(sizing_mode=SizingMode.FIXED_UNITS, sizing_value=D("5"),
                          max_position_notional=D("1000"))
    d = run(Sig(asset_class="option", stop_loss=None), profile=profile, rules=rules, price="2.50")
    assert codes(d) == ["max_position_notional"]  # 5 x $2.50 x 100 = $1,250


# --- limits through the engine ----------------------------------------------------------------
def test_max_open_positions_and_notional_and_leverage_via_engine():
    many = {s: PositionSnapshot(D("1"), D("10"), D("10")) for s in ("A", "B")}
    p = RiskProfile(sizing_mode=SizingMode.FIXED_UNITS, sizing_value=D("1"), max_open_positions=2)
    assert codes(run(profile=p, account=acct(positions=many))) == ["max_open_positions"]
    p = RiskProfile(sizing_mode=SizingMode.FIXED_UNITS, sizing_value=D("10"), max_position_notional=D("2000"))
    assert codes(run(profile=p, account=acct(positions=HELD))) == ["max_position_notional"]  # 20 x $150
    p = RiskProfile(sizing_mode=SizingMode.PERCENT_EQUITY, sizing_value=D("90"))
    assert codes(run(profile=p, account=acct(positions=HELD))) == ["max_leverage"]  # $1,500 + $9,000 > 1x
    assert codes(run(profile=p, account=acct(positions=HELD, bp="5000"))) == \
        ["max_leverage", "insufficient_buying_power"]


def test_missing_price_is_denied_for_fixed_units():
    p = RiskProfile(sizing_mode=SizingMode.FIXED_UNITS, sizing_value=D("1"))
    assert codes(run(Sig(stop_loss=None), profile=p, price=None)) == ["no_price"]


def test_stop_on_wrong_side_denied_in_every_mode():
    p = RiskProfile(sizing_mode=SizingMode.FIXED_UNITS, sizing_value=D("1"))
    assert codes(run(Sig(stop_loss=D("155")), profile=p)) == ["stop_wrong_side"]


def test_rate_limit_denies_opens_only():
    p = RiskProfile(sizing_mode=SizingMode.RISK_PERCENT, sizing_value=D("1"), max_signals_per_minute=5)
    assert run(profile=p, recent=4).approved
    assert codes(run(profile=p, recent=5)) == ["rate_limited"]
    assert run(Sig(action="close", side=None), profile=p, account=acct(positions=HELD), recent=50).approved


def test_market_hours_deny_opens_but_not_closes_or_crypto():
    assert codes(run(now=SATURDAY)) == ["market_closed"]
    assert run(Sig(symbol="BTC/USDT", asset_class="crypto"), price="150", now=SATURDAY).approved
    assert run(Sig(action="close", side=None), account=acct(positions=HELD), now=SATURDAY).approved
    off = RiskProfile(sizing_mode=SizingMode.RISK_PERCENT, sizing_value=D("1"), enforce_market_hours=False)
    assert run(profile=off, now=SATURDAY).approved


# --- trading states -------------------------------------------------------------------------
def test_reducing_allows_closes_but_denies_opens():
    reducing = acct(TradingState.REDUCING, positions=HELD)
    d = run(account=reducing)
    assert not d.approved and codes(d) == ["trading_reducing"]
    c = run(Sig(action="close", side=None, quantity=D("50"), quantity_unit="percent_position"), account=reducing)
    assert c.approved and c.quantity == D("5") and c.side == "sell"
    assert codes(c) == ["approved", "reducing_allowed"]


def test_halted_denies_opens_allows_close_modify_cancel():
    halted = acct(TradingState.HALTED, positions=HELD)
    assert codes(run(account=halted)) == ["trading_halted"]
    c = run(Sig(action="close", side=None), account=halted)
    assert c.approved and c.quantity == D("10")
    for action in ("modify", "cancel"):
        m = run(Sig(action=action, stop_loss=D("140")), account=halted)
        assert m.approved and m.quantity == 0 and codes(m)[0] == "approved"


def test_close_without_position_is_denied():
    d = run(Sig(action="close", side=None))
    assert not d.approved and codes(d) == ["no_position"]


def test_unknown_action_and_missing_side():
    assert codes(run(Sig(action="yolo"))) == ["invalid_signal"]
    assert codes(run(Sig(side=None))) == ["invalid_signal"]


# --- daily loss limit -------------------------------------------------------------------------
def loss_profile(flatten: bool) -> RiskProfile:
    return RiskProfile(sizing_mode=SizingMode.RISK_PERCENT, sizing_value=D("1"), daily_loss_limit=D("500"),
                       flatten_on_daily_loss=flatten)


def test_daily_loss_breach_halts_and_flattens():
    d = run(profile=loss_profile(True), account=acct(realized="-300", unrealized="-200"))
    assert not d.approved and d.quantity == 0
    assert codes(d) == ["daily_loss_limit"]
    assert d.new_trading_state is TradingState.HALTED and d.flatten is True
    assert d.to_dict()["new_trading_state"] == "HALTED"


def test_daily_loss_breach_without_flatten_flag():
    d = run(profile=loss_profile(False), account=acct(realized="-600"))
    assert d.new_trading_state is TradingState.HALTED and d.flatten is False


def test_daily_loss_already_halted_does_not_repeat_the_transition():
    d = run(profile=loss_profile(True), account=acct(TradingState.HALTED, realized="-600"))
    assert codes(d) == ["daily_loss_limit", "trading_halted"]
    assert d.new_trading_state is None and d.flatten is False


def test_daily_loss_under_limit_trades_normally():
    d = run(profile=loss_profile(True), account=acct(realized="-499.99"))
    assert d.approved and d.new_trading_state is None


def test_close_during_breach_is_approved_and_still_halts():
    d = run(Sig(action="close", side=None), profile=loss_profile(True),
            account=acct(positions=HELD, realized="-900"))
    assert d.approved and d.quantity == D("10")
    assert codes(d) == ["approved", "daily_loss_limit"]
    assert d.new_trading_state is TradingState.HALTED and d.flatten is True


# --- trading day and halt expiry ------------------------------------------------------------
def test_trading_day_uses_market_time_and_rolls_weekends_back():
    assert trading_day(datetime(2025, 1, 7, 3, 0, tzinfo=UTC)) == date(2025, 1, 6)  # Mon 22:00 NY
    assert trading_day(SATURDAY) == date(2025, 1, 10)
    assert trading_day(datetime(2025, 1, 12, 23, 0, tzinfo=UTC)) == date(2025, 1, 10)  # Sunday
    assert trading_day(datetime(2025, 1, 7, 3, 0, tzinfo=UTC), "UTC") == date(2025, 1, 7)
    assert next_trading_day(date(2025, 1, 10)) == date(2025, 1, 13)
    assert next_trading_day(date(2025, 1, 7)) == date(2025, 1, 8)


def test_friday_halt_lifts_on_monday():
    friday = date(2025, 1, 10)
    assert not halt_expired(friday, datetime(2025, 1, 10, 20, 0, tzinfo=UTC))
    assert not halt_expired(friday, datetime(2025, 1, 11, 4, 0, tzinfo=UTC))   # Fri 23:00 NY
    assert not halt_expired(friday, SATURDAY)
    assert not halt_expired(friday, datetime(2025, 1, 13, 4, 59, tzinfo=UTC))  # Sun 23:59 NY
    assert halt_expired(friday, datetime(2025, 1, 13, 5, 0, tzinfo=UTC))       # Mon 00:00 NY
    assert halt_expired(date(2025, 1, 11), datetime(2025, 1, 13, 15, 0, tzinfo=UTC))  # halted on Saturday


def test_midweek_halt_lifts_next_day():
    assert not halt_expired(date(2025, 1, 7), datetime(2025, 1, 7, 21, 0, tzinfo=UTC))
    assert halt_expired(date(2025, 1, 7), datetime(2025, 1, 8, 14, 0, tzinfo=UTC))


# --- input hygiene -----------------------------------------------------------------------------
def test_naive_now_and_float_price_are_refused():
    with pytest.raises(ValidationError):
        run(now=datetime(2025, 1, 6, 15, 0))
    with pytest.raises(ValidationError):
        evaluate(Sig(), PROFILE, acct(), RULES, reference_price=150.0, now=MONDAY_OPEN,  # type: ignore[arg-type]
                 recent_signal_count=0)
    with pytest.raises(ValidationError):
        trading_day(datetime(2025, 1, 6))


def test_same_inputs_same_decision():
    assert run().to_dict() == run().to_dict()
