"""A venue-neutral order book the loopback fakes share.

Every fake (Alpaca, Binance, Kraken, Coinbase, the IB gateway) keeps its
orders, fills, cash and positions here and only translates to and from its
own wire format.  The book behaves like a simple venue: market orders fill
at the symbol's price, marketable limits fill, others rest; buys beyond the
cash are refused; unknown symbols are refused; quantities below a symbol's
minimum are refused; a client order id is accepted once.

Tests steer it with ``next_fill`` ("full", "partial", "none") and fill or
cancel resting orders with :meth:`fill` / :meth:`cancel` to play the venue's
side of the story.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class BookReject(Exception):
    """The venue refuses a request; ``kind`` is rendered by each fake in its own format."""

    def __init__(self, kind: str, message: str = "") -> None:
        super().__init__(message or kind)
        self.kind = kind
        self.message = message or kind


@dataclass
class BookFill:
    fill_id: str
    order_id: str
    quantity: Decimal
    price: Decimal
    fee: Decimal
    at: datetime


@dataclass
class BookOrder:
    order_id: str
    client_id: str
    symbol: str
    side: str
    order_type: str
    quantity: Decimal
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    time_in_force: str = "day"
    status: str = "open"  # open | partially_filled | filled | cancelled | rejected | held | replaced
    filled: Decimal = Decimal("0")
    fills: list[BookFill] = field(default_factory=list)
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)
    order_class: str = "simple"
    parent_id: str | None = None
    legs: list["BookOrder"] = field(default_factory=list)
    replaced_by: str | None = None
    replaces: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def remaining(self) -> Decimal:
        return self.quantity - self.filled

    @property
    def avg_price(self) -> Decimal | None:
        if not self.fills:
            return None
        notional = sum((f.quantity * f.price for f in self.fills), Decimal("0"))
        return notional / self.filled

    @property
    def fee(self) -> Decimal:
        return sum((f.fee for f in self.fills), Decimal("0"))

    @property
    def is_open(self) -> bool:
        return self.status in ("open", "partially_filled", "held")


@dataclass
class SymbolRule:
    min_quantity: Decimal = Decimal("0")
    min_notional: Decimal = Decimal("0")


class VenueBook:
    def __init__(
        self,
        prices: dict[str, Decimal],
        *,
        cash: Decimal = Decimal("100000"),
        fee_rate: Decimal = Decimal("0"),
        rules: dict[str, SymbolRule] | None = None,
        id_prefix: str = "",
        id_factory=None,
        fill_prefix: str = "F",
        client_id_scope: str = "forever",
    ) -> None:
        self.prices = dict(prices)
        self.cash = cash
        self.fee_rate = fee_rate
        self.rules = rules or {}
        self.orders: dict[str, BookOrder] = {}
        self.positions: dict[str, tuple[Decimal, Decimal]] = {}  # symbol -> (signed qty, avg price)
        self.next_fill = "full"
        self._ids = itertools.count(1)
        self._fill_ids = itertools.count(1)
        self.id_prefix = id_prefix
        self._id_factory = id_factory
        self.fill_prefix = fill_prefix
        self.client_id_scope = client_id_scope  # "forever" or "open": a used id is free again once its order closed

    # --- ids -------------------------------------------------------------
    def new_order_id(self) -> str:
        if self._id_factory is not None:
            return self._id_factory()
        return f"{self.id_prefix}{next(self._ids)}"

    def by_client_id(self, client_id: str) -> BookOrder | None:
        """The latest order with this client id (ids may be reused when the scope is 'open')."""
        return next((o for o in reversed(list(self.orders.values())) if o.client_id == client_id), None)

    def get(self, order_id: str) -> BookOrder:
        try:
            return self.orders[order_id]
        except KeyError:
            raise BookReject("not_found", f"order {order_id} not found") from None

    # --- venue behaviour ---------------------------------------------------
    def submit(self, order: BookOrder, *, legs: list[BookOrder] = ()) -> BookOrder:
        previous = self.by_client_id(order.client_id) if order.client_id else None
        if previous is not None and (self.client_id_scope == "forever" or previous.is_open):
            raise BookReject("duplicate", f"client order id {order.client_id} already used")
        if order.symbol not in self.prices:
            raise BookReject("invalid_symbol", f"unknown symbol {order.symbol}")
        price = self.prices[order.symbol]
        rule = self.rules.get(order.symbol, SymbolRule())
        if order.quantity <= 0 or order.quantity < rule.min_quantity:
            raise BookReject("too_small", f"quantity {order.quantity} below minimum {rule.min_quantity}")
        if order.quantity * (order.limit_price or price) < rule.min_notional:
            raise BookReject("too_small", f"notional below minimum {rule.min_notional}")
        if order.side == "buy" and order.quantity * (order.limit_price or price) > self.cash:
            raise BookReject("insufficient_funds", "insufficient funds")
        self.orders[order.order_id] = order
        for leg in legs:
            leg.parent_id = order.order_id
            leg.status = "held"
            order.legs.append(leg)
            self.orders[leg.order_id] = leg
        self._maybe_fill_on_arrival(order, price)
        return order

    def _maybe_fill_on_arrival(self, order: BookOrder, price: Decimal) -> None:
        mode, self.next_fill = self.next_fill, "full"
        if mode == "none" or order.order_type in ("stop", "stop_limit"):
            return
        if order.order_type == "limit":
            marketable = (order.side == "buy" and order.limit_price >= price) or (
                order.side == "sell" and order.limit_price <= price
            )
            if not marketable:
                return
        qty = order.quantity if mode == "full" else (order.quantity / 2)
        self.fill(order.order_id, qty, price)

    def fill(self, order_id: str, quantity: Decimal | None = None, price: Decimal | None = None) -> BookFill:
        order = self.get(order_id)
        qty = order.remaining if quantity is None else quantity
        px = price if price is not None else (order.limit_price or self.prices[order.symbol])
        fee = (qty * px * self.fee_rate).quantize(Decimal("0.00000001"))
        fill = BookFill(f"{self.fill_prefix}{next(self._fill_ids)}", order.order_id, qty, px, fee, utcnow())
        order.fills.append(fill)
        order.filled += qty
        order.status = "filled" if order.remaining <= 0 else "partially_filled"
        order.updated_at = fill.at
        signed = qty if order.side == "buy" else -qty
        self.cash -= signed * px + fee
        self._apply_position(order.symbol, signed, px)
        if order.status == "filled":
            for leg in order.legs:
                if leg.status == "held":  # a leg cancelled meanwhile stays cancelled
                    leg.status = "open"
        return fill

    def _apply_position(self, symbol: str, signed: Decimal, price: Decimal) -> None:
        qty, avg = self.positions.get(symbol, (Decimal("0"), Decimal("0")))
        new_qty = qty + signed
        if new_qty == 0:
            self.positions.pop(symbol, None)
            return
        if qty == 0 or (qty > 0) == (signed > 0):
            avg = (qty * avg + signed * price) / new_qty
        elif (qty > 0) != (new_qty > 0):
            avg = price
        self.positions[symbol] = (new_qty, avg)

    def cancel(self, order_id: str) -> BookOrder:
        order = self.get(order_id)
        if not order.is_open:
            raise BookReject("not_cancelable", f"order {order_id} is {order.status}")
        order.status = "cancelled"
        order.updated_at = utcnow()
        for leg in order.legs:
            if leg.is_open:
                leg.status = "cancelled"
        return order

    def open_orders(self) -> list[BookOrder]:
        return [o for o in self.orders.values() if o.is_open]

    def fills_since(self, since: datetime) -> list[BookFill]:
        fills = [f for o in self.orders.values() for f in o.fills if f.at >= since]
        return sorted(fills, key=lambda f: f.at)

    def age(self, seconds: float) -> None:
        """Move every order and fill back in time (lets a test ask for 'fills since T')."""
        delta = timedelta(seconds=seconds)
        for order in self.orders.values():
            order.created_at -= delta
            order.updated_at -= delta
            for f in order.fills:
                f.at -= delta
