"""Turn a signal into an order quantity for one follower.

The rules, all chosen to err on the small side:

* The four ``SizingMode``s (percentages are written as percent, 2 = 2 %):
  fixed units; fixed notional / reference price; equity x pct x leverage /
  reference price; risk percent = equity x pct / |entry - stop|.
* Risk sizing without a stop, or with the stop on the wrong side of the
  entry, is refused: the risk cannot be measured, and guessing it would
  defeat the point of the mode.
* The entry used for risk sizing is the limit price for limit orders (the
  highest price of a buy range, the lowest of a sell range: the fill furthest
  from the stop, i.e. the smallest size) and ``reference_price`` otherwise.
* Leverage only scales percent-of-equity sizing (fixed notional already
  states the exposure; risk sizing is set by the stop).  It is the signal's
  leverage (1 when absent) capped at ``profile.max_leverage``.
* Quantities are rounded DOWN to the venue's step, never up; non-fractional
  instruments get whole units.  Below the minimum quantity or notional the
  order is refused (``order_too_small``) rather than rounded up.
* Intermediate arithmetic rounds toward the smaller quantity, so the result
  never exceeds the mode's formula even in the 28th digit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

from backend.errors import ValidationError

from ._util import CEIL_CTX, FLOOR_CTX, HUNDRED, ONE, WIDE_CTX, ZERO, fmt_money, fmt_num, fmt_pct, fmt_price
from .limits import check_stop_side
from .models import AccountSnapshot, InstrumentRules, Reason, RiskProfile, SignalLike, SizingMode

DEFAULT_STEP = Decimal("0.00000001")  # fractional instrument with no published step
HONOURED_UNITS = frozenset({"units", "usd", "percent_equity"})


@dataclass(frozen=True)
class Sizing:
    """Full result of sizing; ``size_order`` returns its first two fields."""

    quantity: Decimal
    reasons: tuple[Reason, ...]
    side: str | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    details: dict[str, Any] = field(default_factory=dict)


class _Refused(Exception):
    def __init__(self, reason: Reason) -> None:
        super().__init__(reason.message)
        self.reason = reason


# --- rounding -----------------------------------------------------------------
def effective_step(rules: InstrumentRules) -> Decimal:
    """The step quantities are multiples of.

    Non-fractional: the smallest whole number that is a multiple of the
    venue step (1 for no step or 0.5, 3 for a step of 1.5).
    """
    step = rules.quantity_step
    if rules.fractional:
        return step or DEFAULT_STEP
    if step is None:
        return ONE
    numerator, _ = step.as_integer_ratio()  # lcm(p/q, 1) = p for p/q in lowest terms
    return Decimal(numerator)


def round_quantity(quantity: Decimal, rules: InstrumentRules) -> Decimal:
    """Round DOWN to a multiple of the step; never negative, never up."""
    if quantity <= 0:
        return ZERO
    step = effective_step(rules)
    return WIDE_CTX.multiply(WIDE_CTX.divide_int(quantity, step), step)


def round_price(price: Decimal, tick: Decimal | None, side: str) -> Decimal:
    """Round ``price`` to ``tick`` toward the side that is safer for the trader.

    A buy order's price goes down (never pay more than asked), a sell
    order's goes up (never sell for less).  The same holds for protective
    stops when ``side`` is the stop order's side: a long's stop (a sell)
    moves up and a short's (a buy) moves down, i.e. toward the entry, which
    loses less.  ``tick=None`` leaves the price alone.
    """
    if tick is None:
        return price
    if tick <= 0:
        raise ValidationError("The price tick must be greater than zero.", field="price_tick")
    if side not in ("buy", "sell"):
        raise ValidationError(f"Unknown order side {side!r}.", field="side")
    ticks = WIDE_CTX.divide(price, tick).to_integral_value(rounding=ROUND_FLOOR if side == "buy" else ROUND_CEILING)
    return WIDE_CTX.multiply(ticks, tick)


def _opposite(side: str) -> str:
    return "sell" if side == "buy" else "buy"


def order_prices(
    signal: SignalLike, rules: InstrumentRules, reference_price: Decimal | None
) -> tuple[Decimal | None, Decimal | None, Decimal | None]:
    """(entry used for sizing, rounded limit price or None, rounded stop or None) for an open."""
    side = signal.side or "buy"
    limit = None
    if signal.order_type == "limit" and signal.entry_prices:
        worst = max(signal.entry_prices) if side == "buy" else min(signal.entry_prices)
        limit = round_price(worst, rules.price_tick, side)
    stop = None
    if signal.stop_loss is not None:
        stop = round_price(signal.stop_loss, rules.price_tick, _opposite(side))
    return (limit if limit is not None else reference_price), limit, stop


def effective_leverage(signal: SignalLike, profile: RiskProfile) -> tuple[Decimal, Reason | None]:
    """The signal's leverage (1 when absent) capped at the profile's maximum."""
    asked = signal.leverage if signal.leverage is not None and signal.leverage > 0 else ONE
    cap = profile.max_leverage
    if cap is None or asked <= cap:
        return asked, None
    note = None
    if signal.leverage is not None:
        note = Reason("leverage_capped", f"The signal asks for {fmt_num(asked)}x leverage; your limit is "
                                         f"{fmt_num(cap)}x, so {fmt_num(cap)}x was used.")
    return cap, note


def unit_word(asset_class: str) -> str:
    return {"stock": "shares", "option": "contracts"}.get(asset_class, "units")


# --- open ------------------------------------------------------------------------
def _need_price(price: Decimal | None, symbol: str) -> Decimal:
    if price is None or price <= 0:
        raise _Refused(Reason("no_price", f"There is no usable price for {symbol}, so the order size can't be worked out."))
    return price


def _need_equity(account: AccountSnapshot) -> Decimal:
    if account.equity <= 0:
        raise _Refused(Reason("no_equity", f"Your account equity is {fmt_money(account.equity)}, so a size based "
                                           "on equity can't be worked out."))
    return account.equity


def _from_notional(notional: Decimal, price: Decimal | None, rules: InstrumentRules, symbol: str) -> Decimal:
    unit_cost = CEIL_CTX.multiply(_need_price(price, symbol), rules.contract_multiplier)
    return FLOOR_CTX.divide(notional, unit_cost)


def _percent_of_equity(pct: Decimal, lev: Decimal, account: AccountSnapshot) -> tuple[Decimal, str]:
    equity = _need_equity(account)
    notional = FLOOR_CTX.multiply(FLOOR_CTX.divide(FLOOR_CTX.multiply(equity, pct), HUNDRED), lev)
    lev_text = f" x {fmt_num(lev)} leverage" if lev != ONE else ""
    return notional, f"{fmt_pct(pct)} of {fmt_money(equity)} equity{lev_text} = {fmt_money(notional)}"


def _raw_open(signal: SignalLike, profile: RiskProfile, account: AccountSnapshot, rules: InstrumentRules,
              price: Decimal | None, entry: Decimal | None, stop: Decimal | None,
              notes: list[Reason], details: dict[str, Any]) -> tuple[Decimal, str]:
    """Unrounded quantity and a sentence explaining it."""
    symbol, words = signal.symbol, unit_word(signal.asset_class)
    lev, lev_note = effective_leverage(signal, profile)
    q, unit = signal.quantity, signal.quantity_unit
    if q is not None:
        if profile.use_signal_quantity and unit in HONOURED_UNITS:
            if q <= 0:
                raise _Refused(Reason("invalid_signal", f"The signal's size ({fmt_num(q)}) is not a positive number."))
            details["source"] = f"signal_{unit}"
            if unit == "units":
                return q, f"The signal's size of {fmt_num(q)} {words}"
            if unit == "usd":
                raw = _from_notional(q, price, rules, symbol)
                return raw, f"The signal's {fmt_money(q)} at {fmt_price(price)} = {fmt_num(raw)} {words}"
            notional, text = _percent_of_equity(q, lev, account)
            notes.extend([lev_note] if lev_note else [])
            details["effective_leverage"] = str(lev)
            raw = _from_notional(notional, price, rules, symbol)
            return raw, f"The signal's {text}, at {fmt_price(price)} = {fmt_num(raw)} {words}"
        why = ("your own sizing rule was used because that unit can't be applied to your account"
               if profile.use_signal_quantity else "your profile sizes each order itself")
        notes.append(Reason("signal_quantity_ignored",
                            f"The signal's size ({fmt_num(q)} {unit or 'with no unit'}) was not used: {why}."))

    mode, value = profile.sizing_mode, profile.sizing_value
    details["source"] = mode.value
    if mode is SizingMode.FIXED_UNITS:
        return value, f"Fixed size of {fmt_num(value)} {words} per trade"
    if mode is SizingMode.FIXED_NOTIONAL:
        raw = _from_notional(value, price, rules, symbol)
        return raw, f"{fmt_money(value)} per trade at {fmt_price(price)} = {fmt_num(raw)} {words}"
    if mode is SizingMode.PERCENT_EQUITY:
        notional, text = _percent_of_equity(value, lev, account)
        notes.extend([lev_note] if lev_note else [])
        details["effective_leverage"] = str(lev)
        raw = _from_notional(notional, price, rules, symbol)
        return raw, f"{text}, at {fmt_price(price)} = {fmt_num(raw)} {words}"
    # RISK_PERCENT
    if stop is None:
        raise _Refused(Reason("no_stop_loss", "Risk-based sizing needs a stop loss; this signal has none."))
    entry = _need_price(entry, symbol)
    side = signal.side
    wrong_side = check_stop_side(side, entry, stop)
    if wrong_side:
        raise _Refused(wrong_side)
    distance = CEIL_CTX.subtract(entry, stop) if side == "buy" else CEIL_CTX.subtract(stop, entry)
    equity = _need_equity(account)
    risk = FLOOR_CTX.divide(FLOOR_CTX.multiply(equity, value), HUNDRED)
    per_unit = CEIL_CTX.multiply(distance, rules.contract_multiplier)
    raw = FLOOR_CTX.divide(risk, per_unit)
    details.update(stop_distance=str(distance), risk_amount=str(risk))
    return raw, (f"Risking {fmt_pct(value)} of {fmt_money(equity)} equity = {fmt_money(risk)}; entry {fmt_price(entry)} "
                 f"to stop {fmt_price(stop)} loses {fmt_money(per_unit)} per {words[:-1]}, so {fmt_num(raw)} {words}")


def _too_small(qty: Decimal, price: Decimal | None, rules: InstrumentRules, text: str, words: str) -> Reason | None:
    if qty <= 0:
        return Reason("order_too_small", f"{text}, which rounds down to 0 {words}: too small to place.")
    if rules.min_quantity is not None and qty < rules.min_quantity:
        return Reason("order_too_small", f"{text}, which gives {fmt_num(qty)} {words}, below the minimum order of "
                                         f"{fmt_num(rules.min_quantity)} {words}.")
    if rules.min_notional is not None and price is not None and price > 0:
        notional = WIDE_CTX.multiply(WIDE_CTX.multiply(qty, price), rules.contract_multiplier)
        if notional < rules.min_notional:
            return Reason("order_too_small", f"{text}, which gives {fmt_num(qty)} {words} worth {fmt_money(notional)}, "
                                             f"below the minimum order value of {fmt_money(rules.min_notional)}.")
    return None


def _round_note(raw: Decimal, qty: Decimal, rules: InstrumentRules, symbol: str) -> Reason | None:
    if qty >= raw:
        return None
    fit = (f"the {symbol} quantity step of {fmt_num(effective_step(rules))}" if rules.fractional
           else f"whole units (step {fmt_num(effective_step(rules))}) because {symbol} can't be traded in fractions")
    return Reason("quantity_rounded", f"Rounded down from {fmt_num(raw)} to {fmt_num(qty)} to fit {fit}.")


def _size_open(signal: SignalLike, profile: RiskProfile, account: AccountSnapshot, rules: InstrumentRules,
               price: Decimal | None) -> Sizing:
    if signal.side not in ("buy", "sell"):
        raise _Refused(Reason("invalid_signal", "An opening signal needs a side (buy or sell); this one has none."))
    entry, limit_price, stop = order_prices(signal, rules, price)
    notes: list[Reason] = []
    details: dict[str, Any] = {"mode": profile.sizing_mode.value, "entry_price": _s(entry),
                               "limit_price": _s(limit_price), "stop_price": _s(stop)}
    raw, text = _raw_open(signal, profile, account, rules, price, entry, stop, notes, details)
    qty = round_quantity(raw, rules)
    words = unit_word(signal.asset_class)
    details.update(raw_quantity=str(raw), step=str(effective_step(rules)), quantity=str(qty))
    small = _too_small(qty, entry, rules, text, words)
    if small:
        raise _Refused(small)
    rounded = _round_note(raw, qty, rules, signal.symbol)
    reasons = [Reason("sized", f"{text}; ordering {fmt_num(qty)} {words} of {signal.symbol}.")]
    reasons += [rounded] if rounded else []
    return Sizing(qty, tuple(reasons + notes), signal.side, limit_price, stop, details)


# --- close ---------------------------------------------------------------------------
PARTIAL_CLOSE_DEFAULT_PERCENT = Decimal(50)  # a trim with no stated amount closes half
def _size_close(signal: SignalLike, profile: RiskProfile, account: AccountSnapshot, rules: InstrumentRules,
                price: Decimal | None) -> Sizing:
    symbol, words = signal.symbol, unit_word(signal.asset_class)
    pos = account.position(symbol)
    if pos is None:
        raise _Refused(Reason("no_position", f"You hold no {symbol} position, so there is nothing to close."))
    held = abs(pos.quantity)
    side = "sell" if pos.quantity > 0 else "buy"
    details: dict[str, Any] = {"held": str(held), "close_side": side}
    full = Reason("sized", f"Closing your whole {symbol} position of {fmt_num(held)} {words}.")
    q, unit = signal.quantity, signal.quantity_unit
    if q is None and getattr(signal, "partial_close", False):
        # "Trim MSFT" with no amount: a partial close must never flatten the whole position.
        q, unit = PARTIAL_CLOSE_DEFAULT_PERCENT, "percent_position"
        details["partial_close_default"] = str(q)
    if q is None:
        return Sizing(held, (full,), side, details=details)
    if q <= 0:
        raise _Refused(Reason("invalid_signal", f"The signal's close size ({fmt_num(q)}) is not a positive number."))
    if unit == "percent_position":
        raw = FLOOR_CTX.divide(FLOOR_CTX.multiply(held, q), HUNDRED)
        text = f"{fmt_pct(q)} of your {fmt_num(held)} {words} of {symbol} = {fmt_num(raw)}"
    elif (unit in HONOURED_UNITS and profile.use_signal_quantity
          and (unit == "units" or (price is not None and price > 0))
          and (unit != "percent_equity" or account.equity > 0)):
        if unit == "units":
            raw = q
        elif unit == "usd":
            raw = _from_notional(q, price, rules, symbol)
        else:
            raw = _from_notional(FLOOR_CTX.divide(FLOOR_CTX.multiply(_need_equity(account), q), HUNDRED),
                                 price, rules, symbol)
        text = f"The signal closes {fmt_num(raw)} {words} of {symbol}"
    else:
        note = Reason("close_full", f"The signal closes {fmt_num(q)} {unit or ''} of the provider's position; that size "
                                    f"can't be mapped onto your account, so your whole {symbol} position is closed.")
        return Sizing(held, (full, note), side, details=details)
    if raw >= held:
        return Sizing(held, (full,), side, details=details)
    qty = round_quantity(raw, rules)
    details.update(raw_quantity=str(raw), quantity=str(qty))
    small = _too_small(qty, price, rules, text, words)
    if small:
        raise _Refused(small)
    reasons = [Reason("sized", f"{text}; closing {fmt_num(qty)} {words}.")]
    rounded = _round_note(raw, qty, rules, symbol)
    return Sizing(qty, tuple(reasons + ([rounded] if rounded else [])), side, details=details)


def _s(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


# --- public -------------------------------------------------------------------------
def compute_sizing(signal: SignalLike, profile: RiskProfile, account: AccountSnapshot, rules: InstrumentRules,
                   *, reference_price: Decimal | None) -> Sizing:
    """Like ``size_order`` but also returns side, rounded prices and the numbers used."""
    try:
        if signal.action == "open":
            return _size_open(signal, profile, account, rules, reference_price)
        if signal.action == "close":
            return _size_close(signal, profile, account, rules, reference_price)
        raise _Refused(Reason("invalid_signal", f"Only opening and closing signals carry a size; "
                                                f"'{signal.action}' does not."))
    except _Refused as refused:
        return Sizing(ZERO, (refused.reason,), signal.side)


def size_order(signal: SignalLike, profile: RiskProfile, account: AccountSnapshot, rules: InstrumentRules,
               *, reference_price: Decimal | None) -> tuple[Decimal, list[Reason]]:
    """Quantity for this follower and why.

    Quantity > 0: sized; the first reason (code ``"sized"``) explains the
    arithmetic and any others are notes (rounding, capped leverage ...).
    Quantity == 0: refused; the reasons say why (``no_stop_loss``,
    ``stop_wrong_side``, ``order_too_small``, ``no_price``, ``no_position`` ...).
    """
    result = compute_sizing(signal, profile, account, rules, reference_price=reference_price)
    return result.quantity, list(result.reasons)
