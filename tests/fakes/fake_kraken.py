"""A loopback Kraken spot REST API (``/0/public/*``, ``/0/private/*``).

Private calls are form posts carrying a nonce; the fake checks ``API-Key``
and recomputes ccxt's ``API-Sign`` (HMAC-SHA512 over path + SHA256(nonce +
body) with the base64 secret), answering ``EAPI:Invalid key`` on a mismatch
as Kraken does.  Errors come back as HTTP 200 with an ``error`` list.  As at
Kraken, a ``cl_ord_id`` is unique among OPEN orders only; ``OpenOrders`` and
``ClosedOrders`` filter by ``cl_ord_id``.  Balances are spot balances
(``SpotBook``): ``BalanceEx`` reports what open orders hold in ``hold_trade``,
and an order beyond the free balance is refused "EOrder:Insufficient funds".
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
from decimal import Decimal
from urllib.parse import parse_qsl

from aiohttp import web

from fakes.ccxt_fake_base import PARAMS, CcxtVenueFake, SpotBook
from fakes.loopback import fmt, load_fixture
from fakes.venue_book import BookOrder, BookReject, SymbolRule, VenueBook

ALTNAMES = {"XXBTZUSD": "XBTUSD", "XETHZUSD": "ETHUSD"}
BASES = {"XXBTZUSD": "XXBT", "XETHZUSD": "XETH"}
STATUS = {"open": "open", "partially_filled": "open", "filled": "closed", "cancelled": "canceled", "held": "pending"}
TYPES = {"market": "market", "limit": "limit", "stop-loss": "stop", "stop-loss-limit": "stop_limit"}
TYPES_BACK = {v: k for k, v in TYPES.items()}


def kraken_ids(prefix: str):
    counter = itertools.count(1)
    return lambda: f"{prefix}{next(counter):05d}-BW3P3-BUCMWZ"


class FakeKraken(CcxtVenueFake):
    venue = "kraken"

    def __init__(self, *, api_key: str = "kraken-key", secret: str | None = None, book: VenueBook | None = None):
        super().__init__(book or SpotBook(
            {"XXBTZUSD": Decimal("30000"), "XETHZUSD": Decimal("2000")}, cash=Decimal("100000"),
            fee_rate=Decimal("0.0026"), id_factory=kraken_ids("O"), fill_prefix="TKH2SE-M7IF5-",
            client_id_scope="open",
            rules={"XXBTZUSD": SymbolRule(Decimal("0.00005"), Decimal("0.5")),
                   "XETHZUSD": SymbolRule(Decimal("0.002"), Decimal("0.5"))},
        ), api_key, secret or base64.b64encode(b"kraken-test-secret-bytes").decode())

    @web.middleware
    async def _middleware(self, request: web.Request, handler):
        body = await request.text()
        params = dict(parse_qsl(body)) if request.method == "POST" else dict(request.query)
        self.requests.append((request.method, request.path, params))
        if request.path.startswith("/0/private/"):
            digest = hashlib.sha256((params.get("nonce", "") + body).encode()).digest()
            mac = hmac.new(base64.b64decode(self.secret), request.path.encode() + digest, hashlib.sha512)
            if request.headers.get("API-Key") != self.api_key or request.headers.get(
                "API-Sign"
            ) != base64.b64encode(mac.digest()).decode():
                return self.error("unauthorized")
        faulted = await self.apply_fault(request)
        if faulted is not None:
            return faulted
        request[PARAMS] = params
        try:
            return await handler(request)
        except BookReject as reject:
            return self.error(reject.kind)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        r = app.router
        r.add_get("/0/public/Assets", self.fixture("assets.json"))
        r.add_get("/0/public/AssetPairs", self.fixture("asset_pairs.json"))
        r.add_get("/0/public/Ticker", self.ticker)
        for name in ("BalanceEx", "AddOrder", "QueryOrders", "OpenOrders", "ClosedOrders", "CancelOrder",
                     "TradesHistory"):
            r.add_post(f"/0/private/{name}", getattr(self, name.lower()))
        return app

    def fixture(self, name: str):
        async def handler(request):
            return web.json_response(load_fixture("kraken", name))

        return handler

    @staticmethod
    def ok(result) -> web.Response:
        return web.json_response({"error": [], "result": result})

    def render(self, o: BookOrder) -> dict:
        d = load_fixture("kraken", "order.json")
        alt = ALTNAMES[o.symbol]
        px = fmt(o.limit_price or Decimal("0"))
        d.update(cl_ord_id=o.client_id, status=STATUS.get(o.status, o.status), opentm=o.created_at.timestamp(),
                 closetm=o.updated_at.timestamp() if not o.is_open else 0,
                 vol=fmt(o.quantity), vol_exec=fmt(o.filled),
                 cost=fmt(sum((f.quantity * f.price for f in o.fills), Decimal("0"))), fee=fmt(o.fee),
                 price=fmt(o.avg_price or Decimal("0")), trades=[f.fill_id for f in o.fills])
        d["descr"].update(pair=alt, type=o.side, ordertype=TYPES_BACK[o.order_type], price=px,
                          order=self.description(o))
        if o.order_type in ("stop", "stop_limit"):
            d["descr"].update(price=fmt(o.stop_price), price2=fmt(o.limit_price or Decimal("0")))
        return d

    @staticmethod
    def description(o: BookOrder) -> str:
        """Kraken's human order text, which ccxt parses: "sell 0.01000000 XBTUSD @ stop loss 27000.0"."""
        head = f"{o.side} {o.quantity:.8f} {ALTNAMES[o.symbol]} @ "
        if o.order_type == "market":
            return head + "market"
        if o.order_type == "limit":
            return head + f"limit {fmt(o.limit_price)}"
        if o.order_type == "stop":
            return head + f"stop loss {fmt(o.stop_price)}"
        return head + f"stop loss {fmt(o.stop_price)} -> limit {fmt(o.limit_price)}"

    # --- public ----------------------------------------------------------------------
    async def ticker(self, request):
        out = {}
        for pair in request.query.get("pair", "").split(","):
            if pair not in self.book.prices:
                return self.error("invalid_symbol")
            t = load_fixture("kraken", "ticker.json")
            t["c"][0] = fmt(self.book.prices[pair])
            out[pair] = t
        return self.ok(out)

    # --- private ---------------------------------------------------------------------------
    async def balanceex(self, request):
        book = self.book
        result = {"ZUSD": {"balance": fmt(book.cash), "hold_trade": fmt(book.locked_quote())}}
        for symbol, (qty, _) in book.positions.items():
            result[BASES[symbol]] = {"balance": fmt(qty), "hold_trade": fmt(book.locked_base(symbol))}
        return self.ok(result)

    async def addorder(self, request):
        p = request[PARAMS]
        if p["pair"] not in self.book.prices:
            return self.error("invalid_symbol")
        kind = TYPES[p["ordertype"]]
        price = Decimal(p["price"]) if p.get("price") else None
        price2 = Decimal(p["price2"]) if p.get("price2") else None
        order = BookOrder(self.book.new_order_id(), p.get("cl_ord_id", ""), p["pair"], p["type"], kind,
                          Decimal(p["volume"]),
                          limit_price=price if kind == "limit" else (price2 if kind == "stop_limit" else None),
                          stop_price=price if kind in ("stop", "stop_limit") else None,
                          time_in_force=p.get("timeinforce", "GTC"))
        self.book.submit(order)
        return self.ok({"descr": {"order": self.description(order)}, "txid": [order.order_id]})

    async def queryorders(self, request):
        out = {}
        for txid in request[PARAMS].get("txid", "").split(","):
            if txid not in self.book.orders:
                return self.error("not_found")
            out[txid] = self.render(self.book.orders[txid])
        return self.ok(out)

    def _listed(self, params: dict, open_: bool) -> dict:
        cid = params.get("cl_ord_id")
        return {o.order_id: self.render(o) for o in self.book.orders.values()
                if o.is_open == open_ and cid in (None, o.client_id)}

    async def openorders(self, request):
        return self.ok({"open": self._listed(request[PARAMS], True)})

    async def closedorders(self, request):
        closed = self._listed(request[PARAMS], False)
        return self.ok({"closed": closed, "count": len(closed)})

    async def cancelorder(self, request):
        p = request[PARAMS]
        order = self.book.orders.get(p.get("txid", "")) or (
            self.book.by_client_id(p["cl_ord_id"]) if p.get("cl_ord_id") else None)
        if order is None or not order.is_open:
            return self.error("not_found")
        self.book.cancel(order.order_id)
        return self.ok({"count": 1})

    async def tradeshistory(self, request):
        start = float(request[PARAMS].get("start", 0))
        trades = {}
        for o in self.book.orders.values():
            for f in o.fills:
                if f.at.timestamp() < start:
                    continue
                t = load_fixture("kraken", "trade.json")
                t.update(ordertxid=o.order_id, pair=o.symbol, time=f.at.timestamp(), type=o.side,
                         ordertype=TYPES_BACK[o.order_type], price=fmt(f.price), cost=fmt(f.quantity * f.price),
                         fee=fmt(f.fee), vol=fmt(f.quantity))
                trades[f.fill_id] = t
        return self.ok({"trades": trades, "count": len(trades)})
