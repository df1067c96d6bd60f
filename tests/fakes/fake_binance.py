"""A loopback Binance spot REST API (``/api/v3/...``).

Signed endpoints check ``X-MBX-APIKEY`` and the HMAC-SHA256 ``signature``
ccxt computes over the query string (GET/DELETE) or the form body (POST),
so a wrong secret fails like it does at Binance (-1022), a wrong key with
-2015.  Like Binance, a ``newClientOrderId`` is refused (-2010 "Duplicate
order sent.") only while the earlier order with that id is still open.
``can_trade`` is what ``GET /api/v3/account`` says in ``canTrade`` (a key
without the spot trading permission reads False).  Quotes come from
``GET /api/v3/ticker/24hr`` (what ccxt's ``fetch_ticker`` calls) at the book's price.
Balances are spot balances (``SpotBook``): open orders lock what they sell or
pay, ``/api/v3/account`` reports ``free``/``locked``, and an order beyond the
free balance is refused with -2010 "Account has insufficient balance for
requested action.".
"""

from __future__ import annotations

import hashlib
import hmac
from decimal import Decimal
from urllib.parse import parse_qsl

from aiohttp import web

from fakes.ccxt_fake_base import PARAMS, CcxtVenueFake, SpotBook
from fakes.loopback import fmt, load_fixture
from fakes.venue_book import BookOrder, BookReject, SymbolRule, VenueBook

STATUS = {"open": "NEW", "partially_filled": "PARTIALLY_FILLED", "filled": "FILLED", "cancelled": "CANCELED",
          "rejected": "REJECTED"}
TYPES = {"MARKET": "market", "LIMIT": "limit", "STOP_LOSS": "stop", "STOP_LOSS_LIMIT": "stop_limit",
         "TAKE_PROFIT": "stop", "TAKE_PROFIT_LIMIT": "stop_limit"}
TYPES_BACK = {"market": "MARKET", "limit": "LIMIT", "stop": "STOP_LOSS", "stop_limit": "STOP_LOSS_LIMIT"}


def _ms(dt) -> int:
    return int(dt.timestamp() * 1000)


class FakeBinance(CcxtVenueFake):
    venue = "binance"

    def __init__(self, *, api_key: str = "binance-key", secret: str = "binance-secret", book: VenueBook | None = None):
        super().__init__(book or SpotBook(
            {"BTCUSDT": Decimal("60000"), "ETHUSDT": Decimal("3000")}, cash=Decimal("100000"),
            fee_rate=Decimal("0.001"), fill_prefix="", client_id_scope="open",
            rules={"BTCUSDT": SymbolRule(Decimal("0.00001"), Decimal("5")),
                   "ETHUSDT": SymbolRule(Decimal("0.0001"), Decimal("5"))},
        ), api_key, secret)
        self.quote_asset = "USDT"
        self.can_trade = True

    # --- plumbing -----------------------------------------------------------------
    @web.middleware
    async def _middleware(self, request: web.Request, handler):
        body = await request.text()
        raw = request.query_string if request.method in ("GET", "DELETE") else body
        params = dict(parse_qsl(raw))
        self.requests.append((request.method, request.path, params))
        if "signature" in params:
            if request.headers.get("X-MBX-APIKEY") != self.api_key:
                return self.error("unauthorized")
            payload = raw.rsplit("&signature=", 1)[0]
            expected = hmac.new(self.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
            if not hmac.compare_digest(expected, params["signature"]):
                return self.error("bad_signature")
        faulted = await self.apply_fault(request)
        if faulted is not None:
            return faulted
        request[PARAMS] = params
        try:
            return await handler(request)
        except BookReject as reject:
            kind = {"not_cancelable": "unknown_cancel"}.get(reject.kind, reject.kind)
            return self.error(kind)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        r = app.router
        r.add_get("/api/v3/exchangeInfo", self.exchange_info)
        r.add_get("/api/v3/account", self.account)
        r.add_post("/api/v3/order", self.new_order)
        r.add_get("/api/v3/order", self.query_order)
        r.add_delete("/api/v3/order", self.cancel_order)
        r.add_get("/api/v3/openOrders", self.open_orders)
        r.add_get("/api/v3/allOrders", self.all_orders)
        r.add_get("/api/v3/myTrades", self.my_trades)
        r.add_get("/api/v3/ticker/24hr", self.ticker)
        return app

    def render(self, o: BookOrder, full: bool = False) -> dict:
        d = load_fixture("binance", "order.json")
        d.update(symbol=o.symbol, orderId=int(o.order_id), clientOrderId=o.client_id,
                 price=fmt(o.limit_price or Decimal("0")), origQty=fmt(o.quantity), executedQty=fmt(o.filled),
                 cummulativeQuoteQty=fmt(sum((f.quantity * f.price for f in o.fills), Decimal("0"))),
                 status=STATUS.get(o.status, "NEW"), timeInForce=o.time_in_force.upper(),
                 type=TYPES_BACK[o.order_type], side=o.side.upper(), stopPrice=fmt(o.stop_price or Decimal("0")),
                 time=_ms(o.created_at), updateTime=_ms(o.updated_at), workingTime=_ms(o.created_at))
        if full:
            d["transactTime"] = _ms(o.created_at)
            d["fills"] = [{"price": fmt(f.price), "qty": fmt(f.quantity), "commission": fmt(f.fee),
                           "commissionAsset": self.quote_asset, "tradeId": int(f.fill_id)} for f in o.fills]
        return d

    def _find(self, p: dict) -> BookOrder:
        if p.get("orderId"):
            order = self.book.orders.get(p["orderId"])
        else:
            order = self.book.by_client_id(p.get("origClientOrderId", ""))
        if order is None or order.symbol != p.get("symbol"):
            raise BookReject("not_found")
        return order

    # --- handlers -----------------------------------------------------------------------
    async def exchange_info(self, request):
        return web.json_response(load_fixture("binance", "exchange_info.json"))

    async def account(self, request):
        d = load_fixture("binance", "account.json")
        book = self.book
        balances = [{"asset": self.quote_asset, "free": fmt(book.free_quote()), "locked": fmt(book.locked_quote())}]
        for symbol in book.positions:
            balances.append({"asset": symbol.removesuffix(self.quote_asset), "free": fmt(book.free_base(symbol)),
                             "locked": fmt(book.locked_base(symbol))})
        d["balances"] = balances
        d["canTrade"] = self.can_trade
        return web.json_response(d)

    async def new_order(self, request):
        p = request[PARAMS]
        if p["symbol"] not in self.book.prices:
            return self.error("invalid_symbol")

        def dec(key):
            return Decimal(p[key]) if p.get(key) else None

        order = BookOrder(self.book.new_order_id(), p.get("newClientOrderId", ""), p["symbol"], p["side"].lower(),
                          TYPES[p["type"]], Decimal(p["quantity"]), limit_price=dec("price"),
                          stop_price=dec("stopPrice"), time_in_force=p.get("timeInForce", "GTC"))
        self.book.submit(order)
        return web.json_response(self.render(order, full=p.get("newOrderRespType") == "FULL"))

    async def query_order(self, request):
        return web.json_response(self.render(self._find(request[PARAMS])))

    async def cancel_order(self, request):
        order = self._find(request[PARAMS])
        self.book.cancel(order.order_id)
        d = self.render(order)
        d["origClientOrderId"] = order.client_id
        return web.json_response(d)

    async def open_orders(self, request):
        symbol = request[PARAMS].get("symbol")
        return web.json_response([self.render(o) for o in self.book.open_orders() if symbol in (None, o.symbol)])

    async def all_orders(self, request):
        symbol = request[PARAMS]["symbol"]
        return web.json_response([self.render(o) for o in self.book.orders.values() if o.symbol == symbol])

    async def my_trades(self, request):
        p = request[PARAMS]
        start = int(p.get("startTime", 0))
        out = []
        for o in self.book.orders.values():
            if o.symbol != p["symbol"]:
                continue
            for f in o.fills:
                if _ms(f.at) < start:
                    continue
                d = load_fixture("binance", "my_trade.json")
                d.update(symbol=o.symbol, id=int(f.fill_id), orderId=int(o.order_id), price=fmt(f.price),
                         qty=fmt(f.quantity), quoteQty=fmt(f.quantity * f.price), commission=fmt(f.fee),
                         commissionAsset=self.quote_asset, time=_ms(f.at), isBuyer=o.side == "buy")
                out.append(d)
        return web.json_response(sorted(out, key=lambda t: t["id"]))

    async def ticker(self, request):
        import json

        p = request[PARAMS]
        symbols = json.loads(p["symbols"]) if "symbols" in p else [p["symbol"]]
        out = []
        for s in symbols:
            if s not in self.book.prices:
                return self.error("invalid_symbol")
            d = load_fixture("binance", "ticker_24hr.json")
            price = fmt(self.book.prices[s])
            d.update(symbol=s, lastPrice=price, bidPrice=price, askPrice=price)
            out.append(d)
        return web.json_response(out if "symbols" in p else out[0])
