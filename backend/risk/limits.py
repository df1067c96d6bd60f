"""Individual risk limits, one small pure function each.

Each check returns ``None`` when the order may go ahead or a ``Reason``
whose message tells the trader, in plain English, which of their own limits
stopped it.  The engine runs them all and reports every failure at once, so
a follower fixes their settings in one go rather than one denial at a time.

Exposure limits (open positions, position notional, leverage, buying power)
only bite on orders that *add* exposure: an order that shrinks a position is
never refused by them, because refusing it would keep the risk they exist
to cap.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from ._util import ONE, WIDE_CTX, ZERO, fmt_money, fmt_num, fmt_price
from .models import AccountSnapshot, MarketHours, Reason, RiskProfile, TradingState

MARKET_HOURS_ASSET_CLASSES = frozenset({"stock", "option"})  # crypto trades 24/7
_DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


# --- position arithmetic -------------------------------------------------------
def signed(side: str, quantity: Decimal) -> Decimal:
    return quantity if side == "buy" else -quantity


def current_quantity(account: AccountSnapshot, symbol: str) -> Decimal:
    pos = account.position(symbol)
    return pos.quantity if pos is not None else ZERO


def resulting_position(account: AccountSnapshot, symbol: str, side: str, quantity: Decimal) -> Decimal:
    """Signed position in ``symbol`` after the order fills."""
    return current_quantity(account, symbol) + signed(side, quantity)


def opening_quantity(account: AccountSnapshot, symbol: str, side: str, quantity: Decimal) -> Decimal:
    """Part of the order that adds exposure (0 when it only reduces a position)."""
    current = current_quantity(account, symbol)
    if current == 0 or (current > 0) == (side == "buy"):
        return quantity
    return max(quantity - abs(current), ZERO)


# --- checks ------------------------------------------------------------------------
def check_trading_state(state: TradingState, *, reducing: bool) -> Reason | None:
    """Opens need ACTIVE; reductions pass in every state (see ``TradingState``)."""
    if reducing or state is TradingState.ACTIVE:
        return None
    if state is TradingState.REDUCING:
        return Reason("trading_reducing", "Your account is set to reduce-only: positions can be closed, "
                                          "but no new ones are opened.")
    return Reason("trading_halted", "Trading is halted on your account, so no new positions are opened. "
                                    "Closing positions still works.")


def check_symbol(symbol: str, profile: RiskProfile) -> Reason | None:
    """Denied list first (deny wins), then the allowed list when it is not empty."""
    key = symbol.strip().upper()
    if key in profile.denied_symbols:
        return Reason("symbol_denied", f"{symbol} is on your list of symbols never to trade.")
    if profile.allowed_symbols and key not in profile.allowed_symbols:
        return Reason("symbol_not_allowed", f"{symbol} is not on your list of symbols to trade.")
    return None


def check_max_open_positions(symbol: str, account: AccountSnapshot, max_open_positions: int | None) -> Reason | None:
    """Only a *new* symbol counts; adding to a held position is not a new position."""
    if max_open_positions is None or account.position(symbol) is not None:
        return None
    held = len(account.open_symbols())
    if held >= max_open_positions:
        noun = "position" if held == 1 else "positions"
        return Reason("max_open_positions", f"You already hold {held} {noun} and your maximum is "
                                            f"{max_open_positions}; {symbol} would be a new one.")
    return None


def check_max_position_notional(symbol: str, side: str, quantity: Decimal, price: Decimal,
                                account: AccountSnapshot, max_notional: Decimal | None,
                                *, multiplier: Decimal = ONE) -> Reason | None:
    """Existing + new position in this symbol, valued at ``price``, must stay within the cap."""
    if max_notional is None or opening_quantity(account, symbol, side, quantity) == 0:
        return None
    after = abs(resulting_position(account, symbol, side, quantity))
    notional = WIDE_CTX.multiply(WIDE_CTX.multiply(after, price), multiplier)
    if notional > max_notional:
        return Reason("max_position_notional", f"This order would make your {symbol} position worth "
                                               f"{fmt_money(notional)}, above your maximum of "
                                               f"{fmt_money(max_notional)} per position.")
    return None


def gross_exposure_after(symbol: str, side: str, quantity: Decimal, price: Decimal,
                         account: AccountSnapshot, *, multiplier: Decimal = ONE) -> Decimal:
    """Sum of every position's market value once the order has filled."""
    key = symbol.strip().upper()
    others = sum((p.notional for s, p in account.open_positions.items() if s.strip().upper() != key), ZERO)
    after = abs(resulting_position(account, symbol, side, quantity))
    return others + WIDE_CTX.multiply(WIDE_CTX.multiply(after, price), multiplier)


def check_max_leverage(symbol: str, side: str, quantity: Decimal, price: Decimal, account: AccountSnapshot,
                       max_leverage: Decimal | None, *, multiplier: Decimal = ONE) -> Reason | None:
    """Gross exposure after the order divided by equity must not exceed ``max_leverage``."""
    if max_leverage is None or opening_quantity(account, symbol, side, quantity) == 0:
        return None
    gross = gross_exposure_after(symbol, side, quantity, price, account, multiplier=multiplier)
    if account.equity <= 0:
        return Reason("max_leverage", f"Your equity is {fmt_money(account.equity)}, so no exposure fits within "
                                      f"your {fmt_num(max_leverage)}x leverage limit.")
    used = WIDE_CTX.divide(gross, account.equity)
    if used > max_leverage:
        return Reason("max_leverage", f"This order would bring your total exposure to {fmt_money(gross)}, "
                                      f"{fmt_num(used, 2)}x your {fmt_money(account.equity)} equity; your maximum "
                                      f"leverage is {fmt_num(max_leverage)}x.")
    return None


def check_buying_power(symbol: str, side: str, quantity: Decimal, price: Decimal, account: AccountSnapshot,
                       *, leverage: Decimal = ONE, multiplier: Decimal = ONE) -> Reason | None:
    """The added exposure divided by the leverage used must fit the broker's buying power."""
    opening = opening_quantity(account, symbol, side, quantity)
    if opening == 0:
        return None
    needed = WIDE_CTX.divide(WIDE_CTX.multiply(WIDE_CTX.multiply(opening, price), multiplier), max(leverage, ONE))
    if needed > account.buying_power:
        return Reason("insufficient_buying_power", f"This order needs about {fmt_money(needed)} of buying power; "
                                                   f"your account has {fmt_money(account.buying_power)}.")
    return None


def _days_text(weekdays: frozenset[int]) -> str:
    if weekdays == frozenset(range(5)):
        return "Monday to Friday"
    return ", ".join(_DAY_NAMES[d] for d in sorted(weekdays)) or "no day"


def check_market_hours(asset_class: str, now: datetime, *, enforce: bool, hours: MarketHours) -> Reason | None:
    """Stocks and options only trade in the regular session (when ``enforce``); crypto never closes."""
    if not enforce or asset_class not in MARKET_HOURS_ASSET_CLASSES or hours.is_open(now):
        return None
    local = now.astimezone(hours.tz)
    return Reason("market_closed", f"The market is closed right now ({local:%A %H:%M} {hours.timezone}); "
                                   f"{asset_class} signals are only traded {hours.open_time:%H:%M}-"
                                   f"{hours.close_time:%H:%M}, {_days_text(hours.weekdays)}.")


def check_signal_rate(recent_signal_count: int, max_per_minute: int | None) -> Reason | None:
    """``recent_signal_count``: signals from this source in the previous 60 s, not counting this one."""
    if max_per_minute is None or recent_signal_count < max_per_minute:
        return None
    return Reason("rate_limited", f"This signal source already sent {recent_signal_count} signals in the last "
                                  f"minute and your limit is {max_per_minute} a minute, so this one was skipped.")


def daily_pnl(account: AccountSnapshot) -> Decimal:
    return account.realized_pnl_today + account.unrealized_pnl


def check_daily_loss(account: AccountSnapshot, daily_loss_limit: Decimal | None) -> Reason | None:
    """Breach when today's realised + open P&L is at or below minus the limit."""
    if daily_loss_limit is None:
        return None
    pnl = daily_pnl(account)
    if pnl > -daily_loss_limit:
        return None
    return Reason("daily_loss_limit", f"Today's result is {fmt_money(pnl)} (closed trades "
                                      f"{fmt_money(account.realized_pnl_today)}, open positions "
                                      f"{fmt_money(account.unrealized_pnl)}), which reaches your daily loss limit of "
                                      f"{fmt_money(daily_loss_limit)}. No new positions until the next trading day.")


def check_stop_side(side: str, entry: Decimal | None, stop: Decimal | None) -> Reason | None:
    """A buy's stop must be below the entry and a sell's above it (else it fires at once or never protects)."""
    if stop is None or entry is None:
        return None
    if (side == "buy" and stop < entry) or (side == "sell" and stop > entry):
        return None
    where = "below" if side == "buy" else "above"
    return Reason("stop_wrong_side", f"For a {side} the stop loss ({fmt_price(stop)}) must be {where} the entry "
                                     f"({fmt_price(entry)}); this one is not, so it could not protect the trade.")


def check_limit_near_quote(side: str, limit: Decimal | None, quote: Decimal | None, asset_class: str, *,
                           max_percent: Decimal | None, max_option_percent: Decimal | None) -> Reason | None:
    """A limit entry far from the venue's last price is refused: it is most likely a misread price.

    A misparsed "1.00" for a $250 stock becomes, on the sell side, a marketable
    order sized as if each share cost a dollar.  Both directions are refused
    (a buy far below the market is the same misreading, resting).  Without a
    quote there is nothing to compare with and the check does not apply.
    """
    allowed = max_option_percent if asset_class == "option" else max_percent
    if allowed is None or limit is None or quote is None or quote <= 0:
        return None
    off = WIDE_CTX.divide(WIDE_CTX.multiply(abs(limit - quote), Decimal(100)), quote)
    if off <= allowed:
        return None
    where = "below" if limit < quote else "above"
    kind = {"stock": "stocks", "option": "options"}.get(asset_class, asset_class)
    return Reason("price_far_from_market", f"The {side} limit {fmt_price(limit)} is {fmt_num(off, 1)}% {where} the "
                                           f"last price {fmt_price(quote)}; for {kind} you allow at most "
                                           f"{fmt_num(allowed)}%, so the price was probably misread and nothing "
                                           "was ordered.")
