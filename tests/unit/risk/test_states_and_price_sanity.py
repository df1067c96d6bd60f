"""The loss rule shared by signals and fills (``loss_change``), the soft close-only threshold, and the
limit-price sanity check against the venue's last price."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal as D

import pytest

from backend.errors import ValidationError
from backend.risk import (
    AccountSnapshot, InstrumentRules, PositionSnapshot, RiskProfile, SizingMode, TradingState, check_limit_near_quote,
    evaluate, loss_change,
)

NOW = datetime(2025, 1, 6, 15, 0, tzinfo=timezone.utc)  # Monday 10:00 New York
RULES = InstrumentRules(quantity_step=D("1"), fractional=False, price_tick=D("0.01"))
HELD = {"AAPL": PositionSnapshot(quantity=D("10"), avg_price=D("140"), market_price=D("150"))}


class Sig:
    def __init__(self, **kw):
        self.action, self.side, self.symbol, self.asset_class = "open", "buy", "AAPL", "stock"
        self.order_type, self.entry_prices, self.stop_loss, self.take_profits = "market", [], None, []
        self.quantity = self.quantity_unit = self.leverage = None
        self.option_right = self.strike = self.expiry = None
        self.__dict__.update(kw)


def acct(state=TradingState.ACTIVE, realized="0", unrealized="0", positions=None):
    return AccountSnapshot(equity=D("10000"), buying_power=D("10000"), open_positions=positions or {},
                           realized_pnl_today=D(realized), unrealized_pnl=D(unrealized), trading_state=state)


def profile(**kw) -> RiskProfile:
    return RiskProfile(sizing_mode=SizingMode.FIXED_UNITS, sizing_value=D("1"), **kw)


def codes(d):
    return [r.code for r in d.reasons]


# --- loss_change: one rule for signals, fills and marks --------------------------------------------
@pytest.mark.parametrize("state,realized,unrealized,expected", [
    (TradingState.ACTIVE, "-300", "-200", TradingState.HALTED),      # exactly the limit
    (TradingState.REDUCING, "-600", "0", TradingState.HALTED),       # close-only does not stop a halt
    (TradingState.ACTIVE, "-380", "0", TradingState.REDUCING),       # past 75 % of 500
    (TradingState.ACTIVE, "-374.99", "0", None),                     # not yet
    (TradingState.REDUCING, "-400", "0", None),                      # already close-only
    (TradingState.HALTED, "-900", "0", None),                        # already halted: no second halt
])
def test_loss_change_by_state_and_result(state, realized, unrealized, expected):
    change = loss_change(acct(state, realized, unrealized), daily_loss_limit=D(500), reduce_at_percent=D(75),
                         flatten=True)
    assert (change.state if change else None) is expected
    if expected is TradingState.HALTED:
        assert change.flatten and change.reason.code == "daily_loss_limit"
    if expected is TradingState.REDUCING:
        assert not change.flatten and change.reason.code == "daily_loss_soft"
        assert "75% of your $500.00 daily loss limit (-$375.00)" in change.reason.message


def test_no_limit_means_no_change_whatever_the_loss():
    assert loss_change(acct(realized="-99999"), daily_loss_limit=None, reduce_at_percent=D(50)) is None


def test_soft_threshold_is_a_percentage_below_100():
    with pytest.raises(ValidationError) as err:
        profile(daily_loss_limit=D(500), reduce_at_loss_percent=D(100))
    assert err.value.field == "reduce_at_loss_percent"


# --- the soft threshold through the engine ------------------------------------------------------
def test_past_the_soft_threshold_opens_are_denied_and_the_account_turns_close_only():
    p = profile(daily_loss_limit=D(500), reduce_at_loss_percent=D(75))
    d = evaluate(Sig(), p, acct(realized="-400"), RULES, reference_price=D(150), now=NOW, recent_signal_count=0)
    assert not d.approved and codes(d) == ["daily_loss_soft"]
    assert d.new_trading_state is TradingState.REDUCING and d.flatten is False


def test_a_close_past_the_soft_threshold_is_approved_and_still_turns_close_only():
    p = profile(daily_loss_limit=D(500), reduce_at_loss_percent=D(75), flatten_on_daily_loss=True)
    d = evaluate(Sig(action="close", side=None), p, acct(realized="-400", positions=HELD), RULES,
                 reference_price=D(150), now=NOW, recent_signal_count=0)
    assert d.approved and d.quantity == D(10) and codes(d) == ["approved", "daily_loss_soft"]
    assert d.new_trading_state is TradingState.REDUCING and d.flatten is False


def test_reducing_denies_opens_with_its_reason_and_allows_closes():
    p = profile()
    reducing = acct(TradingState.REDUCING, positions=HELD)
    d = evaluate(Sig(), p, reducing, RULES, reference_price=D(150), now=NOW, recent_signal_count=0)
    assert not d.approved and codes(d) == ["trading_reducing"]
    assert "reduce-only" in d.reasons[0].message
    c = evaluate(Sig(action="close", side=None), p, reducing, RULES, reference_price=D(150), now=NOW,
                 recent_signal_count=0)
    assert c.approved and c.quantity == D(10) and c.side == "sell"


# --- limit price sanity ----------------------------------------------------------------------------
def limit_buy(price: str, **kw) -> Sig:
    return Sig(order_type="limit", entry_prices=[D(price)], **kw)


def test_a_limit_far_below_the_last_price_is_refused_with_both_prices():
    d = evaluate(limit_buy("1.00"), profile(), acct(), RULES, reference_price=D("250.10"), now=NOW,
                 recent_signal_count=0)
    assert not d.approved and codes(d) == ["price_far_from_market"]
    assert d.reasons[0].message.startswith("The buy limit $1.00 is 99.6% below the last price $250.10")
    assert d.inputs["quote"] == "250.10"


def test_a_sell_limit_far_above_or_below_is_refused_too():
    far = evaluate(Sig(side="sell", order_type="limit", entry_prices=[D("2.50")]), profile(), acct(), RULES,
                   reference_price=D("250"), now=NOW, recent_signal_count=0)
    assert codes(far) == ["price_far_from_market"] and "99% below" in far.reasons[0].message
    high = check_limit_near_quote("buy", D("120"), D("100"), "stock", max_percent=D(10), max_option_percent=None)
    assert high is not None and "20% above" in high.message


def test_within_the_allowed_distance_the_limit_is_accepted():
    d = evaluate(limit_buy("90"), profile(), acct(), RULES, reference_price=D("100"), now=NOW,
                 recent_signal_count=0)
    assert d.approved and d.limit_price == D("90")  # exactly 10 % away: allowed
    assert not evaluate(limit_buy("89.99"), profile(), acct(), RULES, reference_price=D("100"), now=NOW,
                        recent_signal_count=0).approved


def test_the_quote_not_the_signals_own_price_is_the_yardstick():
    # The venue had no quote: the reference price is the signal's own, so there is nothing to compare with.
    d = evaluate(limit_buy("1.00"), profile(), acct(), RULES, reference_price=D("1.00"), now=NOW,
                 recent_signal_count=0, quote=None)
    assert d.approved and d.inputs["quote"] is None
    # Given explicitly, the quote is used even when the reference price is something else.
    d = evaluate(limit_buy("1.00"), profile(), acct(), RULES, reference_price=D("1.00"), now=NOW,
                 recent_signal_count=0, quote=D("250"))
    assert codes(d) == ["price_far_from_market"]


def test_options_have_their_own_looser_bound_and_a_check_can_be_switched_off():
    option = dict(asset_class="option", option_right="call", strike=D(450), expiry=None)
    rules = InstrumentRules(quantity_step=D("1"), fractional=False, price_tick=D("0.01"), contract_multiplier=D(100))
    ok = evaluate(limit_buy("3.00", **option), profile(), acct(), rules, reference_price=D("2.40"), now=NOW,
                  recent_signal_count=0)
    assert ok.approved  # 25 % away: fine for an option (default 50 %)
    bad = evaluate(limit_buy("250", **option), profile(), acct(), rules, reference_price=D("2.40"), now=NOW,
                   recent_signal_count=0)
    assert codes(bad)[0] == "price_far_from_market"  # with the exposure it would have had at $250
    assert "for options you allow at most 50%" in bad.reasons[0].message
    off = profile(max_price_deviation_percent=None)
    assert evaluate(limit_buy("1.00"), off, acct(), RULES, reference_price=D("250"), now=NOW,
                    recent_signal_count=0).approved


def test_market_orders_and_closes_are_not_price_checked():
    assert evaluate(Sig(), profile(), acct(), RULES, reference_price=D("250"), now=NOW,
                    recent_signal_count=0).approved
    close = Sig(action="close", side=None, order_type="limit", entry_prices=[D("1.00")])
    assert evaluate(close, profile(), acct(positions=HELD), RULES, reference_price=D("150"), now=NOW,
                    recent_signal_count=0).approved
