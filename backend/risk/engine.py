"""The risk engine: one pure function from (signal, follower, account) to a Decision.

``evaluate`` composes ``sizing`` and ``limits``.  It reads no clock, no
database and no broker: the caller passes ``now``, the account snapshot, the
instrument rules, a reference price and how many signals this source sent in
the last minute.  Given the same inputs it always returns the same Decision,
and the Decision carries those inputs, so every verdict can be audited and
replayed.

Policy by action:

* ``open``: needs TradingState.ACTIVE, then every limit; all failures are
  reported together.  An ``open`` against an existing opposite position is
  still an open (send ``close`` to reduce in REDUCING/HALTED).
* ``close``: allowed in every state, no limits (refusing a close keeps risk).
  Market hours are not enforced for closes either, so a flatten is never
  blocked by the engine; the broker queues or rejects out-of-hours orders.
* ``modify`` / ``cancel``: always allowed, in every state.  They change or
  remove orders that already passed the engine; a modify that moves a stop
  further away is allowed too: the engine does not track the original stop,
  and refusing a modify could leave a stale order at the broker.
* Daily loss limit: when realised + open P&L reaches -limit, opens are
  denied (``daily_loss_limit``), ``new_trading_state`` becomes HALTED (on any
  action, once: only when the account is not already HALTED) and ``flatten``
  is set when ``profile.flatten_on_daily_loss``.  Past the soft threshold
  (``reduce_at_loss_percent`` of the limit) opens are denied
  (``daily_loss_soft``) and an ACTIVE account becomes REDUCING.  The rule is
  ``states.loss_change``, shared with the checks that run when fills are
  booked.  The engine never lifts a state; the caller does, using
  ``halt_expired``.
* Price sanity: a limit entry further from the venue's last price
  (``quote``) than the profile allows is denied (``price_far_from_market``):
  a misread price must not become a marketable order.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from backend.errors import ValidationError

from . import limits
from ._util import WIDE_CTX, jsonable, to_decimal
from .models import (
    AccountSnapshot, Decision, InstrumentRules, Reason, RiskProfile, SignalLike, TradingState, iter_reasons,
    signal_inputs,
)
from .sizing import Sizing, compute_sizing, effective_leverage, order_prices
from .states import check_soft_loss, loss_change

DEFAULT_MARKET_TZ = "America/New_York"
_ACTIONS = ("open", "close", "modify", "cancel")
_SAME = object()  # ``quote`` not given: the reference price is the venue's last price


# --- trading calendar ---------------------------------------------------------------
def _tz(market_tz: str | ZoneInfo) -> ZoneInfo:
    return market_tz if isinstance(market_tz, ZoneInfo) else ZoneInfo(market_tz)


def _last_weekday(day: date) -> date:
    return day - timedelta(days=max(day.weekday() - 4, 0))  # Sat -> Fri, Sun -> Fri


def trading_day(now: datetime, market_tz: str | ZoneInfo = DEFAULT_MARKET_TZ) -> date:
    """The trading day ``now`` belongs to: its date in the market's time zone,
    with Saturday and Sunday counted as the Friday before (no session has
    started since).  Holidays are not modelled."""
    _require_aware(now)
    return _last_weekday(now.astimezone(_tz(market_tz)).date())


def next_trading_day(day: date) -> date:
    """The weekday after ``day`` (Friday -> Monday)."""
    return _last_weekday(day) + timedelta(days=3 if _last_weekday(day).weekday() == 4 else 1)


def halt_expired(halted_on: date, now: datetime, market_tz: str | ZoneInfo = DEFAULT_MARKET_TZ) -> bool:
    """True once a new trading day has begun since the halt (midnight, market time).

    A halt on Friday (or over the weekend) lasts until Monday 00:00 in the
    market's time zone; the caller then sets the account back to ACTIVE.
    """
    return trading_day(now, market_tz) > _last_weekday(halted_on)


# --- evaluate -------------------------------------------------------------------------
def _require_aware(now: datetime) -> None:
    if not isinstance(now, datetime) or now.tzinfo is None or now.utcoffset() is None:
        raise ValidationError("now must be a timezone-aware datetime (UTC).", field="now")


def _state_note(account: AccountSnapshot) -> list[Reason]:
    if account.trading_state is TradingState.ACTIVE:
        return []
    return [Reason("reducing_allowed", f"Your account is {account.trading_state.value.lower()}; "
                                       "closing and managing existing positions is still allowed.")]


def evaluate(signal: SignalLike, profile: RiskProfile, account: AccountSnapshot, rules: InstrumentRules, *,
             reference_price: Decimal | None, now: datetime, recent_signal_count: int,
             quote: Decimal | None | object = _SAME) -> Decision:
    """Decide whether, and how much, this follower trades on this signal.

    ``reference_price``: expected fill price (last trade or quote); used for
    notional sizing and every exposure limit (for limit orders the limit
    price is used instead).  ``recent_signal_count``: signals from the same
    source in the previous 60 s, not counting this one.  ``quote``: the
    venue's last price for the price sanity check; None when the venue gave
    none (the reference price is then the signal's own), by default the
    reference price.
    """
    _require_aware(now)
    reference_price = to_decimal(reference_price, "reference_price", optional=True)
    quote = reference_price if quote is _SAME else to_decimal(quote, "quote", optional=True)
    if isinstance(recent_signal_count, bool) or not isinstance(recent_signal_count, int) or recent_signal_count < 0:
        raise ValidationError("recent_signal_count must be a whole number >= 0.", field="recent_signal_count")

    computed: dict[str, Any] = {"daily_pnl": str(limits.daily_pnl(account)),
                                "market_open": profile.market_hours.is_open(now)}
    inputs: dict[str, Any] = {
        "signal": signal_inputs(signal), "profile": jsonable(profile), "account": jsonable(account),
        "rules": jsonable(rules), "reference_price": jsonable(reference_price), "quote": jsonable(quote),
        "now": now.isoformat(), "recent_signal_count": recent_signal_count, "computed": computed,
    }
    breach = limits.check_daily_loss(account, profile.daily_loss_limit)
    soft = None if breach else check_soft_loss(account, profile.daily_loss_limit, profile.reduce_at_loss_percent)
    change = loss_change(account, daily_loss_limit=profile.daily_loss_limit,
                         reduce_at_percent=profile.reduce_at_loss_percent, flatten=profile.flatten_on_daily_loss)
    new_state = change.state if change else None
    flatten = bool(change and change.flatten)
    computed["daily_loss_breached"] = breach is not None
    computed["daily_loss_soft_reached"] = soft is not None

    def decide(approved: bool, reasons: list[Reason], quantity: Decimal = Decimal(0), **extra: Any) -> Decision:
        if approved and change:
            reasons = reasons + [change.reason]  # explains the state change on an approved close/modify
        computed["quantity"] = str(quantity)
        return Decision(approved, quantity if approved else Decimal(0), tuple(reasons), inputs,
                        new_state, flatten, **extra)

    action = signal.action
    if action not in _ACTIONS:
        return decide(False, [Reason("invalid_signal", f"Unknown signal action '{action}'; nothing was done.")])
    if action in ("modify", "cancel"):
        verb = "Changing" if action == "modify" else "Cancelling"
        ok = Reason("approved", f"{verb} existing {signal.symbol} orders is always allowed: it opens no new position.")
        return decide(True, [ok] + _state_note(account), side=signal.side)

    sized = compute_sizing(signal, profile, account, rules, reference_price=reference_price)
    computed["sizing"] = sized.details
    if action == "close":
        if sized.quantity == 0:
            return decide(False, list(sized.reasons), side=sized.side)
        ok = Reason("approved", f"Approved: {sized.reasons[0].message}")
        return decide(True, [ok, *sized.reasons[1:], *_state_note(account)], sized.quantity, side=sized.side)

    return _evaluate_open(signal, profile, account, rules, reference_price, quote, now, recent_signal_count,
                          sized, breach or soft, computed, decide)


def _evaluate_open(signal: SignalLike, profile: RiskProfile, account: AccountSnapshot, rules: InstrumentRules,
                   reference_price: Decimal | None, quote: Decimal | None, now: datetime, recent_signal_count: int,
                   sized: Sizing, loss: Reason | None, computed: dict[str, Any],
                   decide: Callable[..., Decision]) -> Decision:
    """Opens: ACTIVE state plus every limit, all failures reported together."""
    side = signal.side
    if side not in ("buy", "sell"):
        return decide(False, [Reason("invalid_signal", "An opening signal needs a side (buy or sell); this one has none.")])
    entry, limit_price, stop_price = order_prices(signal, rules, reference_price)
    blocking: list[Reason | None] = [
        loss,
        limits.check_trading_state(account.trading_state, reducing=False),
        limits.check_limit_near_quote(side, limit_price, quote, signal.asset_class,
                                      max_percent=profile.max_price_deviation_percent,
                                      max_option_percent=profile.max_option_price_deviation_percent),
        limits.check_symbol(signal.symbol, profile),
        limits.check_market_hours(signal.asset_class, now, enforce=profile.enforce_market_hours,
                                  hours=profile.market_hours),
        limits.check_signal_rate(recent_signal_count, profile.max_signals_per_minute),
        limits.check_max_open_positions(signal.symbol, account, profile.max_open_positions),
        limits.check_stop_side(side, entry, stop_price),
    ]
    qty, mult = sized.quantity, rules.contract_multiplier
    if qty == 0:
        blocking.extend(sized.reasons)
    elif entry is None or entry <= 0:
        blocking.append(Reason("no_price", f"There is no usable price for {signal.symbol}, so the order's value "
                                           "can't be checked against your limits."))
    else:
        lev, _ = effective_leverage(signal, profile)
        after = limits.resulting_position(account, signal.symbol, side, qty)
        computed.update(order_notional=str(WIDE_CTX.multiply(WIDE_CTX.multiply(qty, entry), mult)),
                        position_after=str(after), effective_leverage=str(lev),
                        gross_exposure_after=str(limits.gross_exposure_after(signal.symbol, side, qty, entry,
                                                                             account, multiplier=mult)))
        blocking += [
            limits.check_max_position_notional(signal.symbol, side, qty, entry, account,
                                               profile.max_position_notional, multiplier=mult),
            limits.check_max_leverage(signal.symbol, side, qty, entry, account, profile.max_leverage,
                                      multiplier=mult),
            limits.check_buying_power(signal.symbol, side, qty, entry, account, leverage=lev, multiplier=mult),
        ]
    denied = iter_reasons(blocking)
    extra = {"side": side, "limit_price": limit_price, "stop_price": stop_price}
    if denied:
        return decide(False, denied, **extra)
    ok = Reason("approved", f"Approved: {sized.reasons[0].message}")
    return decide(True, [ok, *sized.reasons[1:]], qty, **extra)
