"""What the three crypto fakes share: the spot book, one-shot faults, error bodies from fixtures.

``SpotBook`` is the shared book with spot balances: an open sell locks the
base currency it sells, an open buy the quote currency it pays (its remainder
at its limit, else at the current price).  Each fake reports ``free`` and
``used`` (Binance ``free``/``locked``, Kraken ``balance``/``hold_trade``,
Coinbase ``available_balance``/``hold``) from it, and an order needing more
than is free is refused with the venue's insufficient-funds error (ccxt
raises ``InsufficientFunds``), as real exchanges do: a full-size stop leaves
nothing for a take-profit beside it.  Spot cannot sell what it does not
hold.  ``refusals`` lists the orders refused so, for tests to assert none was.

``fail_next(kind, path=None)`` queues a one-shot fault for the next request
(to ``path`` only, when given):
"rate_limited" (HTTP 429 in the venue's format), "server_error",
"timeout" (sleep ``delay_seconds`` then answer normally, like a venue that
accepted the request but answered too late).
"""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

from aiohttp import web

from fakes.loopback import load_fixture
from fakes.venue_book import BookOrder, BookReject, VenueBook

PARAMS = web.RequestKey("params", dict)  # the decoded query/form parameters of a request


ZERO = Decimal("0")


class SpotBook(VenueBook):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.refusals: list[tuple[BookOrder, str]] = []  # (order, reason) of every insufficient-funds refusal

    def held(self, symbol: str) -> Decimal:
        qty, _ = self.positions.get(symbol, (ZERO, ZERO))
        return max(qty, ZERO)

    def locked_base(self, symbol: str) -> Decimal:
        return sum((o.remaining for o in self.open_orders() if o.symbol == symbol and o.side == "sell"), ZERO)

    def locked_quote(self) -> Decimal:
        return sum((o.remaining * (o.limit_price or self.prices[o.symbol]) for o in self.open_orders()
                    if o.side == "buy"), ZERO)

    def free_base(self, symbol: str) -> Decimal:
        return max(self.held(symbol) - self.locked_base(symbol), ZERO)

    def free_quote(self) -> Decimal:
        return max(self.cash - self.locked_quote(), ZERO)

    def submit(self, order: BookOrder, *, legs=()) -> BookOrder:
        previous = self.by_client_id(order.client_id) if order.client_id else None
        duplicate = previous is not None and (self.client_id_scope == "forever" or previous.is_open)
        if not duplicate and order.symbol in self.prices and order.quantity > 0:
            if order.side == "sell" and order.quantity > self.free_base(order.symbol):
                self._refuse(order, f"sell {order.quantity} with {self.free_base(order.symbol)} free "
                                    f"({self.locked_base(order.symbol)} locked by open sells)")
            cost = order.quantity * (order.limit_price or self.prices[order.symbol])
            if order.side == "buy" and cost > self.free_quote():
                self._refuse(order, f"buy for {cost} with {self.free_quote()} free")
        return super().submit(order, legs=legs)

    def _refuse(self, order: BookOrder, reason: str) -> None:
        self.refusals.append((order, reason))
        raise BookReject("insufficient_funds", reason)


class CcxtVenueFake:
    venue = "base"

    def __init__(self, book: VenueBook, api_key: str, secret: str) -> None:
        self.book = book
        self.api_key = api_key
        self.secret = secret
        self.errors = load_fixture(self.venue, "errors.json")
        self.faults: list[tuple[str, str | None]] = []
        self.delay_seconds = 3.0
        self.requests: list[tuple[str, str, dict]] = []

    def error(self, kind: str) -> web.Response:
        spec = self.errors[kind]
        return web.Response(text=json.dumps(spec["body"]), status=spec["status"], content_type="application/json")

    def fail_next(self, kind: str, path: str | None = None) -> None:
        self.faults.append((kind, path))

    async def apply_fault(self, request: web.Request) -> web.Response | None:
        """``path`` may be "/api/v3/order" or, to pick one method, "POST /api/v3/order"."""
        keys = (None, request.path, f"{request.method} {request.path}")
        index = next((i for i, (_, p) in enumerate(self.faults) if p in keys), None)
        if index is None:
            return None
        fault, _ = self.faults.pop(index)
        if fault == "timeout":
            await asyncio.sleep(self.delay_seconds)
            return None
        return self.error(fault)

    def app(self) -> web.Application:
        raise NotImplementedError
