"""Sizing: every mode with exact Decimals, rounding down only, venue rules, closes."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal as D
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backend.errors import ValidationError
from backend.risk import (
    AccountSnapshot, InstrumentRules, PositionSnapshot, RiskProfile, SizingMode, compute_sizing, effective_step,
    round_price, round_quantity, size_order,
)


@dataclass(frozen=True)
class Sig:
    action: str = "open"
    side: str | None = "buy"
    symbol: str = "AAPL"
    asset_class: str = "stock"
    order_type: str = "market"
    entry_prices: list = field(default_factory=list)
    stop_loss: D | None = None
    take_profits: list = field(default_factory=list)
    quantity: D | None = None
    quantity_unit: str | None = None
    leverage: D | None = None
    option_right: str | None = None
    strike: D | None = None
    expiry: object = None


ACCOUNT = AccountSnapshot(equity=D("10000"), buying_power=D("10000"))
FRACTIONAL = InstrumentRules(quantity_step=D("0.001"), fractional=True)
WHOLE = InstrumentRules(quantity_step=D("1"), fractional=False)


def profile(mode: SizingMode, value: str, **kw) -> RiskProfile:
    return RiskProfile(sizing_mode=mode, sizing_value=D(value), **kw)


def size(sig=None, prof=None, account=ACCOUNT, rules=FRACTIONAL, price="150"):
    return size_order(sig or Sig(), prof or profile(SizingMode.FIXED_UNITS, "10"), account, rules,
                      reference_price=None if price is None else D(price))


def codes(reasons):
    return [r.code for r in reasons]


# --- the four modes ---------------------------------------------------------------
def test_fixed_units():
    qty, reasons = size(prof=profile(SizingMode.FIXED_UNITS, "10"), price=None)
    assert qty == D("10")
    assert codes(reasons) == ["sized"]
    assert "10 shares" in reasons[0].message


def test_fixed_notional_divides_by_reference_price_and_rounds_down():
    qty, reasons = size(prof=profile(SizingMode.FIXED_NOTIONAL, "1000"), price="150")
    assert qty == D("6.666")  # 6.6666... never 6.667
    assert "quantity_rounded" in codes(reasons)


def test_fixed_notional_whole_units():
    qty, _ = size(prof=profile(SizingMode.FIXED_NOTIONAL, "1000"), rules=WHOLE, price="150")
    assert qty == D("6")


def test_percent_equity():
    qty, reasons = size(prof=profile(SizingMode.PERCENT_EQUITY, "5"), price="100")
    assert qty == D("5")  # 10000 * 5% = 500 / 100
    assert reasons[0].code == "sized" and "$500.00" in reasons[0].message


def test_percent_equity_leverage_within_max():
    prof = profile(SizingMode.PERCENT_EQUITY, "5", max_leverage=D("5"))
    qty, reasons = size(Sig(leverage=D("2")), prof, price="100")
    assert qty == D("10")  # 500 x 2
    assert "leverage_capped" not in codes(reasons)


def test_percent_equity_leverage_capped_at_max():
    prof = profile(SizingMode.PERCENT_EQUITY, "5", max_leverage=D("2"))
    qty, reasons = size(Sig(leverage=D("10")), prof, price="100")
    assert qty == D("10")  # 500 x min(10, 2)
    assert "leverage_capped" in codes(reasons)


def test_percent_equity_no_max_leverage_uses_signal_leverage():
    prof = profile(SizingMode.PERCENT_EQUITY, "5", max_leverage=None)
    qty, _ = size(Sig(leverage=D("3")), prof, price="100")
    assert qty == D("15")


def test_leverage_does_not_scale_fixed_notional():
    prof = profile(SizingMode.FIXED_NOTIONAL, "1000", max_leverage=D("5"))
    qty, _ = size(Sig(leverage=D("5")), prof, price="100")
    assert qty == D("10")


def test_risk_percent_buy():
    qty, reasons = size(Sig(stop_loss=D("145")), profile(SizingMode.RISK_PERCENT, "1"), price="150")
    assert qty == D("20")  # 10000 * 1% = 100 / (150 - 145)
    assert "$100.00" in reasons[0].message


def test_risk_percent_sell():
    qty, _ = size(Sig(side="sell", stop_loss=D("104")), profile(SizingMode.RISK_PERCENT, "1"), price="100")
    assert qty == D("25")  # 100 / 4


def test_risk_percent_limit_range_uses_entry_furthest_from_stop():
    sig = Sig(order_type="limit", entry_prices=[D("148"), D("150")], stop_loss=D("145"))
    result = compute_sizing(sig, profile(SizingMode.RISK_PERCENT, "1"), ACCOUNT, FRACTIONAL,
                            reference_price=D("149"))
    assert result.quantity == D("20")  # entry 150 (worst for a buy), not 148 (33.333)
    assert result.limit_price == D("150")
    sell = Sig(side="sell", order_type="limit", entry_prices=[D("100"), D("102")], stop_loss=D("105"))
    result = compute_sizing(sell, profile(SizingMode.RISK_PERCENT, "1"), ACCOUNT, FRACTIONAL,
                            reference_price=D("101"))
    assert result.limit_price == D("100") and result.quantity == D("20")


def test_risk_percent_without_stop_is_refused():
    qty, reasons = size(Sig(stop_loss=None), profile(SizingMode.RISK_PERCENT, "1"))
    assert qty == 0
    assert codes(reasons) == ["no_stop_loss"]
    assert reasons[0].message == "Risk-based sizing needs a stop loss; this signal has none."


@pytest.mark.parametrize("side,stop", [("buy", "155"), ("buy", "150"), ("sell", "140")])
def test_risk_percent_stop_on_wrong_side_is_refused(side, stop):
    qty, reasons = size(Sig(side=side, stop_loss=D(stop)), profile(SizingMode.RISK_PERCENT, "1"), price="150")
    assert qty == 0
    assert codes(reasons) == ["stop_wrong_side"]


def test_risk_percent_option_uses_contract_multiplier():
    rules = InstrumentRules(quantity_step=D("1"), fractional=False, contract_multiplier=D("100"))
    sig = Sig(symbol="AAPL250117C00150000", asset_class="option", stop_loss=D("2.00"))
    qty, reasons = size(sig, profile(SizingMode.RISK_PERCENT, "1"), rules=rules, price="2.50")
    assert qty == D("2")  # $100 risk / ($0.50 x 100) per contract
    assert "contracts" in reasons[0].message


def test_percent_equity_option_uses_contract_multiplier():
    rules = InstrumentRules(quantity_step=D("1"), fractional=False, contract_multiplier=D("100"))
    qty, _ = size(Sig(asset_class="option"), profile(SizingMode.PERCENT_EQUITY, "10"), rules=rules, price="2.50")
    assert qty == D("4")  # $1000 / $250 per contract


def test_no_price_and_no_equity_are_refused():
    qty, reasons = size(prof=profile(SizingMode.FIXED_NOTIONAL, "1000"), price=None)
    assert qty == 0 and codes(reasons) == ["no_price"]
    broke = AccountSnapshot(equity=D("0"), buying_power=D("0"))
    qty, reasons = size(prof=profile(SizingMode.PERCENT_EQUITY, "5"), account=broke)
    assert qty == 0 and codes(reasons) == ["no_equity"]


# --- rounding and venue rules ------------------------------------------------------
def test_round_quantity_rounds_down_never_up():
    rules = InstrumentRules(quantity_step=D("0.01"))
    assert round_quantity(D("0.669999"), rules) == D("0.66")
    assert round_quantity(D("33.3399999999999999999999999"), rules) == D("33.33")
    assert round_quantity(D("5.00"), rules) == D("5.00")  # exact multiple stays
    assert round_quantity(D("-3"), rules) == 0
    assert round_quantity(D("0.009"), rules) == 0


def test_fixed_notional_two_thirds_rounds_down():
    rules = InstrumentRules(quantity_step=D("0.01"))
    qty, _ = size(prof=profile(SizingMode.FIXED_NOTIONAL, "2"), rules=rules, price="3")
    assert qty == D("0.66")


@pytest.mark.parametrize("step,fractional,expected", [
    (None, True, D("0.00000001")), (D("0.5"), True, D("0.5")),
    (None, False, D("1")), (D("0.5"), False, D("1")), (D("1.5"), False, D("3")), (D("5"), False, D("5")),
])
def test_effective_step(step, fractional, expected):
    assert effective_step(InstrumentRules(quantity_step=step, fractional=fractional)) == expected


def test_step_of_five_lots():
    rules = InstrumentRules(quantity_step=D("5"), fractional=False)
    qty, _ = size(prof=profile(SizingMode.FIXED_UNITS, "14"), rules=rules, price="10")
    assert qty == D("10")


def test_below_min_quantity_is_too_small_but_equal_is_fine():
    rules = InstrumentRules(quantity_step=D("0.001"), min_quantity=D("0.01"))
    qty, reasons = size(prof=profile(SizingMode.FIXED_NOTIONAL, "1"), rules=rules, price="150")
    assert qty == 0 and codes(reasons) == ["order_too_small"]  # 0.006 < 0.01
    qty, _ = size(prof=profile(SizingMode.FIXED_NOTIONAL, "1.5"), rules=rules, price="150")
    assert qty == D("0.010")


def test_below_min_notional_is_too_small():
    rules = InstrumentRules(quantity_step=D("0.001"), min_notional=D("10"))
    qty, reasons = size(prof=profile(SizingMode.FIXED_NOTIONAL, "9.99"), rules=rules, price="1")
    assert qty == 0 and codes(reasons) == ["order_too_small"]
    assert "$10.00" in reasons[0].message
    qty, _ = size(prof=profile(SizingMode.FIXED_NOTIONAL, "10"), rules=rules, price="1")
    assert qty == D("10")


def test_rounds_to_zero_is_too_small_not_rounded_up():
    qty, reasons = size(prof=profile(SizingMode.FIXED_NOTIONAL, "100"), rules=WHOLE, price="150")
    assert qty == 0
    assert codes(reasons) == ["order_too_small"]
    assert "rounds down to 0" in reasons[0].message


@pytest.mark.parametrize("price,tick,side,expected", [
    ("100.037", "0.01", "buy", "100.03"), ("100.037", "0.01", "sell", "100.04"),
    ("100.03", "0.01", "buy", "100.03"), ("100.03", "0.01", "sell", "100.03"),
    ("0.123456", "0.0005", "buy", "0.1230"), ("0.123456", "0.0005", "sell", "0.1235"),
    ("101", "5", "sell", "105"), ("101", "5", "buy", "100"),
])
def test_round_price_toward_safer_side(price, tick, side, expected):
    assert round_price(D(price), D(tick), side) == D(expected)


def test_round_price_without_tick_and_bad_tick():
    assert round_price(D("1.23456"), None, "buy") == D("1.23456")
    with pytest.raises(ValidationError):
        round_price(D("1"), D("0"), "buy")


def test_limit_and_stop_rounded_to_tick():
    rules = InstrumentRules(quantity_step=D("1"), fractional=False, price_tick=D("0.01"))
    sig = Sig(order_type="limit", entry_prices=[D("150.037")], stop_loss=D("145.004"))
    result = compute_sizing(sig, profile(SizingMode.RISK_PERCENT, "1"), ACCOUNT, rules, reference_price=D("150"))
    assert result.limit_price == D("150.03")  # buy limit down
    assert result.stop_price == D("145.01")   # a long's stop (a sell) up, toward the entry
    assert result.quantity == D("19")         # 100 / 5.02 = 19.92 -> 19


# --- the signal's own size ---------------------------------------------------------
def test_signal_quantity_ignored_by_default():
    qty, reasons = size(Sig(quantity=D("500"), quantity_unit="units"), profile(SizingMode.FIXED_UNITS, "10"))
    assert qty == D("10")
    assert "signal_quantity_ignored" in codes(reasons)


@pytest.mark.parametrize("q,unit,expected", [
    ("7", "units", "7"), ("1500", "usd", "10"), ("10", "percent_equity", "10"),
])
def test_signal_quantity_honoured_when_enabled(q, unit, expected):
    prof = profile(SizingMode.FIXED_UNITS, "1", use_signal_quantity=True)
    qty, _ = size(Sig(quantity=D(q), quantity_unit=unit), prof, price="100" if unit != "usd" else "150")
    assert qty == D(expected)


def test_signal_quantity_with_unusable_unit_falls_back():
    prof = profile(SizingMode.FIXED_UNITS, "3", use_signal_quantity=True)
    qty, reasons = size(Sig(quantity=D("50"), quantity_unit="percent_position"), prof)
    assert qty == D("3")
    assert "signal_quantity_ignored" in codes(reasons)


# --- closes ------------------------------------------------------------------------
LONG = AccountSnapshot(equity=D("10000"), buying_power=D("10000"),
                       open_positions={"AAPL": PositionSnapshot(D("10"), D("140"), D("150"))})
SHORT = AccountSnapshot(equity=D("10000"), buying_power=D("10000"),
                        open_positions={"AAPL": PositionSnapshot(D("-8"), D("140"), D("150"))})


def close(quantity=None, unit=None, account=LONG, rules=WHOLE, prof=None):
    sig = Sig(action="close", side=None, quantity=quantity, quantity_unit=unit)
    return compute_sizing(sig, prof or profile(SizingMode.FIXED_UNITS, "1"), account, rules,
                          reference_price=D("150"))


def test_full_close_when_quantity_missing():
    result = close()
    assert result.quantity == D("10") and result.side == "sell"
    assert close(account=SHORT).quantity == D("8") and close(account=SHORT).side == "buy"


def test_partial_close_percent_position_rounds_down():
    assert close(D("50"), "percent_position").quantity == D("5")
    assert close(D("33"), "percent_position").quantity == D("3")  # 3.3 -> 3
    assert close(D("150"), "percent_position").quantity == D("10")  # capped at the position


def test_partial_close_rounding_to_zero_is_too_small():
    result = close(D("5"), "percent_position")  # 0.5 share, whole shares only
    assert result.quantity == 0 and result.reasons[0].code == "order_too_small"


def test_close_without_position():
    flat = AccountSnapshot(equity=D("1"), buying_power=D("1"))
    result = close(account=flat)
    assert result.quantity == 0 and result.reasons[0].code == "no_position"


def test_close_absolute_units_closes_everything_unless_signal_quantity_used():
    result = close(D("4"), "units")
    assert result.quantity == D("10") and "close_full" in codes(result.reasons)
    honoured = close(D("4"), "units", prof=profile(SizingMode.FIXED_UNITS, "1", use_signal_quantity=True))
    assert honoured.quantity == D("4")
    capped = close(D("40"), "units", prof=profile(SizingMode.FIXED_UNITS, "1", use_signal_quantity=True))
    assert capped.quantity == D("10")


# --- construction refuses floats / nonsense ----------------------------------------
def test_profile_refuses_floats_and_bad_values():
    with pytest.raises(ValidationError):
        RiskProfile(sizing_mode=SizingMode.FIXED_UNITS, sizing_value=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        RiskProfile(sizing_mode=SizingMode.PERCENT_EQUITY, sizing_value=D("101"))
    with pytest.raises(ValidationError):
        RiskProfile(sizing_mode="martingale", sizing_value=D("1"))  # type: ignore[arg-type]
    assert RiskProfile(sizing_mode="risk_percent", sizing_value="2").sizing_value == D("2")  # type: ignore[arg-type]


# --- property ----------------------------------------------------------------------
money = st.decimals(min_value=D("1"), max_value=D("10000000"), places=2)
pct = st.decimals(min_value=D("0.01"), max_value=D("100"), places=2)
prices = st.decimals(min_value=D("0.0001"), max_value=D("100000"), places=4)
steps = st.sampled_from([D("0.00000001"), D("0.0001"), D("0.001"), D("0.01"), D("0.1"), D("0.25"),
                         D("0.5"), D("1"), D("1.5"), D("5"), D("100")])
leverages = st.none() | st.decimals(min_value=D("0.5"), max_value=D("20"), places=1)


@settings(max_examples=400, deadline=None)
@given(mode=st.sampled_from(list(SizingMode)), equity=money, value=pct, units=money, price=prices,
       distance_frac=st.decimals(min_value=D("0.0001"), max_value=D("0.9999"), places=4),
       side=st.sampled_from(["buy", "sell"]), step=steps, fractional=st.booleans(),
       leverage=leverages, max_leverage=leverages)
def test_sized_quantity_never_negative_never_above_mode_and_on_step(
        mode, equity, value, units, price, distance_frac, side, step, fractional, leverage, max_leverage):
    sizing_value = units if mode in (SizingMode.FIXED_UNITS, SizingMode.FIXED_NOTIONAL) else value
    prof = RiskProfile(sizing_mode=mode, sizing_value=sizing_value, max_leverage=max_leverage)
    offset = price * distance_frac
    stop = price - offset if side == "buy" else price + offset
    sig = Sig(side=side, stop_loss=stop, leverage=leverage)
    rules = InstrumentRules(quantity_step=step, fractional=fractional)
    account = AccountSnapshot(equity=equity, buying_power=equity)

    qty, reasons = size_order(sig, prof, account, rules, reference_price=price)

    lev = Fraction(leverage) if leverage is not None and leverage > 0 else Fraction(1)
    if max_leverage is not None:
        lev = min(lev, Fraction(max_leverage))
    bound = {
        SizingMode.FIXED_UNITS: Fraction(sizing_value),
        SizingMode.FIXED_NOTIONAL: Fraction(sizing_value) / Fraction(price),
        SizingMode.PERCENT_EQUITY: Fraction(equity) * Fraction(value) / 100 * lev / Fraction(price),
        SizingMode.RISK_PERCENT: Fraction(equity) * Fraction(value) / 100 / abs(Fraction(price) - Fraction(stop)),
    }[mode]
    eff = Fraction(effective_step(rules))
    assert qty >= 0
    assert Fraction(qty) <= bound
    assert (Fraction(qty) / Fraction(step)).denominator == 1  # a multiple of the venue's step
    assert (Fraction(qty) / eff).denominator == 1
    if qty == 0:
        assert bound < eff and [r.code for r in reasons] == ["order_too_small"]
    else:
        assert bound < Fraction(qty) + eff  # rounded down by less than one step
        assert reasons[0].code == "sized"


@dataclass(frozen=True)
class TrimSig(Sig):
    partial_close: bool = True


def test_trim_without_amount_closes_half_never_everything():
    sig = TrimSig(action="close", side=None)
    result = compute_sizing(sig, profile(SizingMode.FIXED_UNITS, "10"), LONG, WHOLE, reference_price=D("150"))
    assert result.quantity == D("5")  # half of the 10 held, never all of it
    assert result.details["partial_close_default"] == "50"
