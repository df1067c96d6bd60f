"""The paper venue's static rules: what it trades, what it accepts, how it prices.

Pure functions only (no database), so that the broker, the matching book and
the tests share one definition of an instrument, of a valid request and of a
position.

Options are traded under their OCC contract symbol (``AAPL240119C00190000``,
the compact form Alpaca uses); a request for an option on a bare underlying
with ``option_right``/``strike``/``expiry`` is mapped to that symbol.  Prices
of options are per share and one contract is 100 shares, so every notional
goes through ``contract_multiplier``.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from backend.brokers.base import InstrumentInfo, OrderRequest
from backend.errors import BrokerError, InvalidSymbol, OrderRejected

ZERO = Decimal("0")
ONE = Decimal("1")
BPS = Decimal("10000")
SCALE = Decimal("1e-10")        # what the database keeps (NUMERIC(28, 10))
CENT = Decimal("0.01")

ASSET_CLASSES = ("stock", "crypto", "option")
ORDER_TYPES = ("market", "limit", "stop", "stop_limit")
QUANTITY_STEP = {"stock": Decimal("0.0001"), "crypto": Decimal("0.00000001"), "option": ONE}
PRICE_TICK = {"stock": CENT, "crypto": CENT, "option": CENT}
OPTION_MULTIPLIER = Decimal("100")
MAX_CLIENT_ID = 64
MAX_BRACKET_PARENT_ID = MAX_CLIENT_ID - len("-tp99")
MAX_SYMBOL = 40

_OCC = re.compile(r"^[A-Z][A-Z0-9.]{0,5}\d{6}[CP]\d{8}$")


def q10(value: Decimal) -> Decimal:
    """Round to the database's scale so the in-memory book equals what is stored."""
    return value.quantize(SCALE, rounding=ROUND_HALF_UP)


def money_text(value: Decimal) -> str:
    return f"${value.quantize(CENT, rounding=ROUND_HALF_UP):,.2f}"


def funds_message(needed: Decimal, available: Decimal) -> str:
    return f"Order needs {money_text(needed)} but only {money_text(max(available, ZERO))} buying power is available."


def is_option_symbol(symbol: str) -> bool:
    return bool(_OCC.match(symbol))


def contract_multiplier(symbol: str) -> Decimal:
    return OPTION_MULTIPLIER if is_option_symbol(symbol) else ONE


def occ_symbol(underlying: str, expiry, right: str, strike: Decimal) -> str:
    right_letter = {"call": "C", "c": "C", "put": "P", "p": "P"}.get(right.lower())
    if right_letter is None:
        raise OrderRejected(f"Option right must be call or put, not '{right}'.", field="option_right")
    return f"{underlying.upper()}{expiry:%y%m%d}{right_letter}{int(strike * 1000):08d}"


def instrument_info(symbol: str, asset_class: str) -> InstrumentInfo:
    if asset_class not in ASSET_CLASSES:
        raise InvalidSymbol(
            f"The paper broker trades {', '.join(ASSET_CLASSES)} instruments, not '{asset_class}'.",
            field="asset_class",
        )
    step = QUANTITY_STEP[asset_class]
    return InstrumentInfo(
        symbol=symbol, asset_class=asset_class, min_quantity=step, quantity_step=step,
        price_tick=PRICE_TICK[asset_class], min_notional=None, fractional=step < ONE,
    )


@dataclass(frozen=True)
class Prepared:
    """A request checked and mapped to the venue's terms; ``error`` set means it is rejected."""

    request: OrderRequest
    symbol: str
    leverage: Decimal
    error: BrokerError | None = None

    @property
    def storable(self) -> bool:
        """Whether the rejection can be kept as a row (its key and symbol fit the table)."""
        cid = self.request.client_order_id
        return bool(cid) and len(cid) <= MAX_CLIENT_ID and 0 < len(self.symbol) <= MAX_SYMBOL


def prepare(request: OrderRequest) -> Prepared:
    """Check a request against the venue's rules; never raises, the error travels with it."""
    symbol = (request.symbol or "").strip().upper()
    leverage = ONE
    try:
        symbol = _venue_symbol(request, symbol)
        _check(request)
        if request.asset_class == "crypto" and request.leverage is not None:
            leverage = request.leverage  # stocks and options are cash accounts here: leverage is ignored
    except BrokerError as exc:
        return Prepared(request, symbol, leverage, exc)
    return Prepared(request, symbol, leverage)


def _venue_symbol(request: OrderRequest, symbol: str) -> str:
    if not symbol or len(symbol) > MAX_SYMBOL:
        raise InvalidSymbol(f"The symbol must be 1 to {MAX_SYMBOL} characters.", field="symbol")
    if request.asset_class != "option" or is_option_symbol(symbol):
        return symbol
    if request.option_right and request.strike is not None and request.expiry is not None:
        return occ_symbol(symbol, request.expiry, request.option_right, request.strike)
    raise OrderRejected(
        f"An option order for {symbol} needs option_right, strike and expiry (or an OCC contract symbol).",
        field="symbol",
    )


def _check(request: OrderRequest) -> None:
    cid = request.client_order_id
    if not cid or len(cid) > MAX_CLIENT_ID:
        raise OrderRejected(f"Client order id must be 1 to {MAX_CLIENT_ID} characters.", field="client_order_id")
    if request.side not in ("buy", "sell"):
        raise OrderRejected(f"Side must be 'buy' or 'sell', not '{request.side}'.", field="side")
    if request.order_type not in ORDER_TYPES:
        raise OrderRejected(
            f"The paper broker does not support order type '{request.order_type}'; "
            f"use {', '.join(ORDER_TYPES)}.", field="order_type",
        )
    if request.asset_class not in ASSET_CLASSES:
        raise OrderRejected(
            f"The paper broker trades {', '.join(ASSET_CLASSES)}, not '{request.asset_class}'.", field="asset_class"
        )
    quantity = request.quantity
    if quantity is None or quantity <= 0:
        raise OrderRejected(f"Quantity must be greater than zero (got {quantity}).", field="quantity")
    step = QUANTITY_STEP[request.asset_class]
    if quantity % step != 0:
        raise OrderRejected(
            f"Quantity {quantity} is not a multiple of the {request.asset_class} step {step}.", field="quantity"
        )
    if request.order_type in ("limit", "stop_limit") and not _positive(request.limit_price):
        raise OrderRejected(f"A {request.order_type} order needs a positive limit price.", field="limit_price")
    if request.order_type in ("stop", "stop_limit") and not _positive(request.stop_price):
        raise OrderRejected(f"A {request.order_type} order needs a positive stop price.", field="stop_price")
    if request.leverage is not None and request.leverage < ONE:
        raise OrderRejected(f"Leverage must be at least 1 (got {request.leverage}).", field="leverage")
    if request.bracket is not None:
        _check_bracket(request)


def _check_bracket(request: OrderRequest) -> None:
    bracket = request.bracket
    if len(request.client_order_id) > MAX_BRACKET_PARENT_ID:
        raise OrderRejected(
            f"A bracket order's client order id must be at most {MAX_BRACKET_PARENT_ID} characters "
            "so that its legs' ids fit.", field="client_order_id",
        )
    if bracket.stop_loss is not None and bracket.stop_loss <= 0:
        raise OrderRejected("The stop-loss price must be positive.", field="stop_loss")
    if len(bracket.take_profits) > 99:
        raise OrderRejected("At most 99 take-profit levels.", field="take_profits")
    total = ZERO
    for price, quantity in bracket.take_profits:
        if not _positive(price) or not _positive(quantity):
            raise OrderRejected("Every take-profit needs a positive price and quantity.", field="take_profits")
        total += quantity
    if total > request.quantity:
        raise OrderRejected(
            f"Take-profit quantities add up to {total}, more than the order's {request.quantity}.",
            field="take_profits",
        )


def _positive(value: Decimal | None) -> bool:
    return value is not None and value > 0


Held = tuple[Decimal, Decimal]
"""A position: (signed quantity, average price); flat is (0, 0)."""
FLAT: Held = (ZERO, ZERO)


def after_fill(held: Held, side: str, quantity: Decimal, price: Decimal) -> Held:
    """The position after one fill, by the average-cost method.

    Adding to a position re-weights the average, reducing keeps it, and
    crossing through zero starts the new side at the fill price.  Each step
    rounds to the database's scale, so a position folded fill by fill here
    equals the one the venue stores (``paper_positions``) and the one the
    migration backfilled from the fills.
    """
    qty, avg = held
    signed = quantity if side == "buy" else -quantity
    if qty == 0 or (qty > 0) == (signed > 0):
        avg = q10((abs(qty) * avg + quantity * price) / (abs(qty) + quantity))
    elif abs(signed) > abs(qty):
        avg = price
    qty += signed
    return (qty, avg) if qty != 0 else FLAT


def net_positions(fills: Iterable[tuple[str, str, Decimal, Decimal]]) -> dict[str, Held]:
    """(symbol, side, quantity, price) in fill order -> {symbol: (signed quantity, average price)}, open ones only."""
    book: dict[str, Held] = {}
    for symbol, side, quantity, price in fills:
        book[symbol] = after_fill(book.get(symbol, FLAT), side, quantity, price)
    return {symbol: value for symbol, value in book.items() if value[0] != 0}


def random_walk(
    quotes: Mapping[str, Decimal], steps: int, sigma_bps: Decimal, rng: random.Random
) -> dict[str, Decimal]:
    """Move each price ``steps`` times by a normal shock of ``sigma_bps`` basis points.

    The shock is drawn as a float (it is randomness, not money) and turned into
    a Decimal at 6 places before it touches a price; prices stay on the cent
    tick and never fall below one cent.
    """
    moved: dict[str, Decimal] = {}
    for symbol in sorted(quotes):
        price = quotes[symbol]
        for _ in range(steps):
            shock = Decimal(f"{rng.gauss(0.0, 1.0):.6f}") * sigma_bps / BPS
            price = max(CENT, (price * (ONE + shock)).quantize(CENT, rounding=ROUND_HALF_UP))
        moved[symbol] = price
    return moved
