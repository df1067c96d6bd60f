"""A loopback Coinbase Advanced Trade API (``/api/v3/brokerage/*`` plus the ``/v2`` lists ccxt loads).

ccxt signs v3 private calls with ``CB-ACCESS-KEY/-SIGN/-TIMESTAMP`` (legacy
HMAC keys); the fake recomputes HMAC-SHA256(secret, ts + method + path +
body) and answers 401 ``unauthorized`` on a mismatch.  As Coinbase
documents, a repeated ``client_order_id`` does not create a second order:
the existing order's id is returned.  Market buys arrive as ``quote_size``
(ccxt multiplies amount x price), and order failures come back as HTTP 200
``{"success": false, "error_response": ...}``.  ``GET .../key_permissions``
answers with ``can_trade`` (steer with ``self.can_trade``).  Balances are spot
balances (``SpotBook``): ``available_balance`` and ``hold`` follow the open
orders, and an order beyond what is available fails with ``INSUFFICIENT_FUND``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from decimal import Decimal

from aiohttp import web

from fakes.ccxt_fake_base import CcxtVenueFake, SpotBook
from fakes.loopback import fmt, load_fixture
from fakes.venue_book import BookOrder, BookReject, SymbolRule, VenueBook

STATUS = {"open": "OPEN", "partially_filled": "OPEN", "filled": "FILLED", "cancelled": "CANCELLED", "held": "PENDING"}


def _iso(dt) -> str:
    return dt.isoformat().replace("+00:00", "Z")


class FakeCoinbase(CcxtVenueFake):
    venue = "coinbase"

    def __init__(self, *, api_key: str = "coinbase-key", secret: str = "coinbase-secret", book: VenueBook | None = None):
        super().__init__(book or SpotBook(
            {"BTC-USD": Decimal("67060"), "ETH-USD": Decimal("3500")}, cash=Decimal("100000"),
            fee_rate=Decimal("0.006"), id_factory=lambda: str(uuid.uuid4()), fill_prefix="T-",
            rules={"BTC-USD": SymbolRule(Decimal("0.00000001"), Decimal("1")),
                   "ETH-USD": SymbolRule(Decimal("0.00000001"), Decimal("1"))},
        ), api_key, secret)
        self.can_trade = True

    @web.middleware
    async def _middleware(self, request: web.Request, handler):
        body = await request.text()
        self.requests.append((request.method, request.path, json.loads(body) if body else dict(request.query)))
        if request.path.startswith("/api/v3/brokerage/") and not request.path.startswith("/api/v3/brokerage/market/"):
            ts = request.headers.get("CB-ACCESS-TIMESTAMP", "")
            expected = hmac.new(self.secret.encode(), (ts + request.method + request.path + body).encode(),
                                hashlib.sha256).hexdigest()
            if request.headers.get("CB-ACCESS-KEY") != self.api_key or request.headers.get("CB-ACCESS-SIGN") != expected:
                return self.error("unauthorized")
        faulted = await self.apply_fault(request)
        if faulted is not None:
            return faulted
        try:
            return await handler(request)
        except BookReject as reject:
            return self.error(reject.kind)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        r = app.router
        r.add_get("/v2/currencies", self.empty_data)
        r.add_get("/v2/currencies/crypto", self.empty_data)
        r.add_get("/v2/exchange-rates", self.exchange_rates)
        r.add_get("/api/v3/brokerage/market/products", self.products)
        r.add_get("/api/v3/brokerage/market/products/{product_id}/ticker", self.ticker)
        r.add_get("/api/v3/brokerage/transaction_summary", self.transaction_summary)
        r.add_get("/api/v3/brokerage/accounts", self.accounts)
        r.add_get("/api/v3/brokerage/key_permissions", self.key_permissions)
        r.add_post("/api/v3/brokerage/orders", self.create_order)
        r.add_get("/api/v3/brokerage/orders/historical/batch", self.list_orders)
        r.add_get("/api/v3/brokerage/orders/historical/fills", self.list_fills)
        r.add_get("/api/v3/brokerage/orders/historical/{order_id}", self.get_order)
        r.add_post("/api/v3/brokerage/orders/batch_cancel", self.batch_cancel)
        return app

    def render(self, o: BookOrder) -> dict:
        d = load_fixture("coinbase", "order.json")
        if o.order_type == "market":
            config = {"market_market_ioc": {"base_size": fmt(o.quantity)}}
        elif o.order_type == "limit":
            config = {"limit_limit_gtc": {"base_size": fmt(o.quantity), "limit_price": fmt(o.limit_price), "post_only": False}}
        else:
            config = {"stop_limit_stop_limit_gtc": {"base_size": fmt(o.quantity), "limit_price": fmt(o.limit_price),
                                                    "stop_price": fmt(o.stop_price),
                                                    "stop_direction": o.extra.get("stop_direction") or "STOP_DIRECTION_STOP_DOWN"}}
        d.update(order_id=o.order_id, product_id=o.symbol, order_configuration=config, side=o.side.upper(),
                 client_order_id=o.client_id, status=STATUS.get(o.status, "OPEN"), created_time=_iso(o.created_at),
                 filled_size=fmt(o.filled), average_filled_price=fmt(o.avg_price or Decimal("0")),
                 number_of_fills=str(len(o.fills)), filled_value=fmt(sum((f.quantity * f.price for f in o.fills), Decimal("0"))),
                 total_fees=fmt(o.fee), order_type=o.order_type.upper().replace("STOP_LIMIT", "STOP_LIMIT"),
                 completion_percentage=fmt((o.filled / o.quantity * 100).quantize(Decimal("0.01"))),
                 last_fill_time=_iso(o.fills[-1].at) if o.fills else None)
        return d

    # --- public -----------------------------------------------------------------------
    async def empty_data(self, request):
        return web.json_response({"data": []})

    async def exchange_rates(self, request):
        return web.json_response({"data": {"currency": "USD", "rates": {}}})

    async def products(self, request):
        if request.query.get("product_type") == "FUTURE":
            return web.json_response({"products": [], "num_products": 0})
        d = load_fixture("coinbase", "products.json")
        wanted = request.query.getall("product_ids", [])
        for p in d["products"]:
            p["price"] = fmt(self.book.prices[p["product_id"]])
        if wanted:
            d["products"] = [p for p in d["products"] if p["product_id"] in wanted]
        return web.json_response(d)

    async def ticker(self, request):
        pid = request.match_info["product_id"]
        if pid not in self.book.prices:
            return self.error("invalid_symbol")
        px = fmt(self.book.prices[pid])
        return web.json_response({"trades": [{"trade_id": "1", "product_id": pid, "price": px, "size": "0.01",
                                              "time": "2024-06-02T10:00:00Z", "side": "BUY", "exchange": "CBE"}],
                                  "best_bid": px, "best_ask": px})

    async def transaction_summary(self, request):
        return web.json_response(load_fixture("coinbase", "transaction_summary.json"))

    # --- private --------------------------------------------------------------------------
    async def accounts(self, request):
        accounts = []
        book = self.book
        holdings = {"USD": (book.free_quote(), book.locked_quote())} | {
            s.split("-")[0]: (book.free_base(s), book.locked_base(s)) for s in book.positions}
        for currency, (free, locked) in holdings.items():
            a = load_fixture("coinbase", "account.json")
            a.update(uuid=str(uuid.uuid5(uuid.NAMESPACE_OID, currency)), name=f"{currency} Wallet", currency=currency,
                     available_balance={"value": fmt(free), "currency": currency},
                     hold={"value": fmt(locked), "currency": currency},
                     type="ACCOUNT_TYPE_FIAT" if currency == "USD" else "ACCOUNT_TYPE_CRYPTO")
            accounts.append(a)
        return web.json_response({"accounts": accounts, "has_next": False, "cursor": "", "size": len(accounts)})

    async def key_permissions(self, request):
        return web.json_response({"can_view": True, "can_trade": self.can_trade, "can_transfer": False,
                                  "portfolio_uuid": str(uuid.uuid5(uuid.NAMESPACE_OID, self.api_key)),
                                  "portfolio_type": "DEFAULT"})

    async def create_order(self, request):
        b = await request.json()
        existing = self.book.by_client_id(b.get("client_order_id", ""))
        if existing is None:
            if b["product_id"] not in self.book.prices:
                return self.error("invalid_symbol")
            (kind, cfg), = b["order_configuration"].items()
            price = self.book.prices[b["product_id"]]
            if "quote_size" in cfg:
                qty = Decimal(cfg["quote_size"]) / price
            else:
                qty = Decimal(cfg["base_size"])
            order_type = "market" if kind.startswith("market") else ("stop_limit" if kind.startswith("stop") else "limit")
            existing = BookOrder(self.book.new_order_id(), b["client_order_id"], b["product_id"], b["side"].lower(),
                                 order_type, qty,
                                 limit_price=Decimal(cfg["limit_price"]) if cfg.get("limit_price") else None,
                                 stop_price=Decimal(cfg["stop_price"]) if cfg.get("stop_price") else None,
                                 time_in_force="GTC", extra={"stop_direction": cfg.get("stop_direction")})
            self.book.submit(existing)
        return web.json_response({"success": True, "failure_reason": "UNKNOWN_FAILURE_REASON",
                                  "order_id": existing.order_id,
                                  "success_response": {"order_id": existing.order_id, "product_id": existing.symbol,
                                                       "side": existing.side.upper(),
                                                       "client_order_id": existing.client_id},
                                  "order_configuration": b["order_configuration"]})

    async def get_order(self, request):
        return web.json_response({"order": self.render(self.book.get(request.match_info["order_id"]))})

    async def list_orders(self, request):
        statuses = request.query.getall("order_status", [])
        product = request.query.get("product_id")
        orders = [self.render(o) for o in self.book.orders.values() if product in (None, o.symbol)]
        if statuses:
            orders = [o for o in orders if o["status"] in statuses]
        return web.json_response({"orders": orders, "sequence": "0", "has_next": False, "cursor": ""})

    async def list_fills(self, request):
        from datetime import datetime

        start = request.query.get("start_sequence_timestamp")
        since = datetime.fromisoformat(start.replace("Z", "+00:00")) if start else None
        fills = []
        for o in self.book.orders.values():
            for f in o.fills:
                if since and f.at < since:
                    continue
                d = load_fixture("coinbase", "fill.json")
                d.update(entry_id=f.fill_id, trade_id=f.fill_id, order_id=o.order_id, trade_time=_iso(f.at),
                         price=fmt(f.price), size=fmt(f.quantity), commission=fmt(f.fee), product_id=o.symbol,
                         sequence_timestamp=_iso(f.at), side=o.side.upper())
                fills.append(d)
        return web.json_response({"fills": fills, "cursor": ""})

    async def batch_cancel(self, request):
        b = await request.json()
        results = []
        for oid in b.get("order_ids", []):
            order = self.book.orders.get(oid)
            ok = order is not None and order.is_open
            if ok:
                self.book.cancel(oid)
            results.append({"success": ok, "failure_reason": "UNKNOWN_CANCEL_FAILURE_REASON" if ok else "UNKNOWN_CANCEL_ORDER",
                            "order_id": oid})
        return web.json_response({"results": results})
