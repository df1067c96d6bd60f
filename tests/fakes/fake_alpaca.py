"""A loopback Alpaca trading API (``/v2/...``) and market data API for alpaca-py's real clients.

Speaks the wire format of https://docs.alpaca.markets/reference: JSON
bodies, decimals as strings, ``{"code", "message"}`` errors with the HTTP
status Alpaca uses, ``APCA-API-KEY-ID`` / ``APCA-API-SECRET-KEY`` headers.
Payload shapes come from ``tests/fixtures/alpaca/``; state lives in a
:class:`VenueBook`.

Steering: ``faults`` is a queue of one-shot faults applied to the next
request ("rate_limited", "forbidden", "server_error", "timeout"); ``market_open`` False
makes option market orders fail the way Alpaca reports it; ``account_overrides``
patches the account payload (``{"trading_blocked": True}``).

Bracket legs are made as Alpaca makes them: ids and client ids of Alpaca's
own, the entry's ``order_class``, listed flat unless ``nested=true`` (also on
``GET /v2/orders/{id}``); ``POST`` and the by-client-id lookup show them nested.
The legs of one bracket are one-cancels-other: when one fills, the venue
cancels the others (``AlpacaBook.fill``).

Quantity held by open orders: Alpaca does not let open exit orders promise
more shares than the position holds.  A sell (or a buy to cover) whose size
is more than the position less what open orders on the same side already
hold is refused with HTTP 403 ``{"code": 40310000, "message": "insufficient
qty available for order (requested: 5, available: 0)"}``; the legs of one
bracket hold their quantity once between them (the largest open leg), since
only one of them can fill.  What this relies on: Alpaca's "Orders at Alpaca"
page (docs.alpaca.markets/docs/orders-at-alpaca) says sells that close a
position are checked against the position, not buying power, and its
positions carry ``qty_available`` (the position less what open orders
hold).  The docs do not spell the refusal's body out: code 40310000 and
the message above are this fake's assumption about its form, not checked
against Alpaca (no machine of this project reaches it), which is why the
adapter maps on the words "insufficient qty" alone.  Orders that open or
add to a position (no position on the other side) are not checked here.

Cancels (``cancel_mode``): Alpaca cancels asynchronously.  ``DELETE
/v2/orders/{id}`` answers 204 and the order shows ``pending_cancel``, still
holding its shares (and still able to fill), until the venue confirms it
``canceled`` a moment later.  ``cancel_mode = "immediate"`` (the default,
deterministic) cancels at once; ``"pending"`` leaves cancels pending until
``complete_cancels()``, or until the order has been read ``cancel_after_reads``
times when that is set.  A second DELETE of a pending cancel, like a DELETE of
a finished order, is 422 "order is not cancelable".

Replace (``PATCH``) answers with a new order (new id, ``replaces`` the old
one).  ``replace_mode = "immediate"`` (default): the old order is ``replaced``
at once, with ``replaced_by``.  ``"pending"``, as Alpaca's "Replace Order by
ID" describes it: until ``complete_replaces()`` the old order shows
``pending_replace`` and the new one ``accepted``; while it is being replaced
the larger of the two holds the shares; if the old one fills first, the new
one is rejected; an order ``accepted``, ``pending_cancel`` or
``pending_replace`` cannot be replaced (422).

Market data (the SDK's data clients on the same host, as a proxy would serve
them): ``/v2/stocks/{trades,quotes}/latest`` and
``/v1beta1/options/{trades,quotes}/latest`` answer at the book's price (the
quote's bid/ask straddle it); symbols in ``no_trades`` / ``no_quotes`` have
none, unknown symbols are left out of the answer as Alpaca does, and a
malformed one is a 400 "invalid symbol".
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from decimal import Decimal

from aiohttp import web

from fakes.loopback import fmt, load_fixture
from fakes.venue_book import BookOrder, BookReject, SymbolRule, VenueBook

OCC_OPTION = re.compile(r"^[A-Z]{1,6}\d{6}[CP]\d{8}$")
STATUS = {"open": "new", "cancelled": "canceled"}


def _iso(dt) -> str | None:
    return dt.isoformat().replace("+00:00", "Z") if dt else None


class AlpacaBook(VenueBook):
    """The shared book plus what Alpaca does with a bracket's legs: one fills, the others are cancelled."""

    def fill(self, order_id, quantity=None, price=None):
        done = super().fill(order_id, quantity, price)
        order = self.get(order_id)
        if order.parent_id and order.status == "filled":
            for sibling in self.get(order.parent_id).legs:
                if sibling is not order and sibling.is_open:
                    sibling.status, sibling.updated_at = "cancelled", done.at
        return done

    def held_for_orders(self, symbol: str, side: str, *, excluding: str | None = None) -> Decimal:
        """Shares open orders on ``side`` hold: each order its remainder, a bracket's legs their largest once.

        ``excluding``: an order being replaced; its bracket's legs are left out with it.
        """
        skip = None
        if excluding is not None:
            skip = self.get(excluding).parent_id or excluding
        by_group: dict[str, Decimal] = {}
        for o in self.orders.values():
            group = o.parent_id or o.order_id
            if o.replaces and self.get(o.replaces).is_open:  # still being replaced: the larger of the two
                group = self.get(o.replaces).parent_id or o.replaces
            if o.symbol != symbol or o.side != side or o.status not in ("open", "partially_filled") or group == skip:
                continue
            by_group[group] = max(by_group.get(group, Decimal("0")), o.remaining)
        return sum(by_group.values(), Decimal("0"))

    def available_to_close(self, symbol: str, side: str, *, excluding: str | None = None) -> Decimal | None:
        """What a ``side`` order may still take from the position it closes; None if it closes nothing."""
        held, _ = self.positions.get(symbol, (Decimal("0"), Decimal("0")))
        if held == 0 or (held > 0) == (side == "buy"):
            return None
        return max(abs(held) - self.held_for_orders(symbol, side, excluding=excluding), Decimal("0"))


class FakeAlpaca:
    def __init__(self, *, api_key: str = "PKTESTKEY", api_secret: str = "test-secret", book: VenueBook | None = None):
        self.api_key = api_key
        self.api_secret = api_secret
        self.book = book or AlpacaBook(
            {"AAPL": Decimal("190.12"), "SPY": Decimal("530.5"), "AAPL250620C00200000": Decimal("3.10")},
            cash=Decimal("100000"),
            rules={"AAPL": SymbolRule(min_quantity=Decimal("0.0001")), "SPY": SymbolRule(min_quantity=Decimal("0.0001"))},
            id_factory=lambda: str(uuid.uuid4()),
        )
        self.errors = load_fixture("alpaca", "errors.json")
        self.faults: list[str] = []
        self.delay_seconds = 3.0
        self.market_open = True
        self.account_overrides: dict = {}
        self.no_trades: set[str] = set()
        self.no_quotes: set[str] = set()
        self.requests: list[tuple[str, str, dict]] = []
        self.refused: list[dict] = []  # the "insufficient qty available" refusals answered, their bodies
        self.cancel_mode = "immediate"  # or "pending": cancels wait for ``complete_cancels`` (Alpaca's async cancel)
        self.cancel_after_reads: int | None = None  # pending mode: confirm a cancel after this many reads
        self.pending_cancels: dict[str, int] = {}  # order id -> reads since its DELETE
        self.replace_mode = "immediate"  # or "pending": replaces wait for ``complete_replaces``
        self.pending_replaces: dict[str, str] = {}  # old order id -> its replacement's id

    def complete_replaces(self) -> list[str]:
        """Finish every pending replace: the old order ``replaced``, or the new one rejected if the old filled."""
        done = []
        for old_id, new_id in list(self.pending_replaces.items()):
            del self.pending_replaces[old_id]
            old, new = self.book.get(old_id), self.book.get(new_id)
            if old.is_open:
                old.status, old.replaced_by = "replaced", new_id
                done.append(new_id)
            elif new.is_open:
                new.status = "rejected"
        return done

    def complete_cancels(self) -> list[str]:
        """Confirm every pending cancel (``canceled``); an order that filled meanwhile stays filled."""
        done = []
        for order_id in list(self.pending_cancels):
            del self.pending_cancels[order_id]
            if self.book.get(order_id).is_open:
                self.book.cancel(order_id)
                done.append(order_id)
        return done

    def _status(self, o: BookOrder) -> str:
        if o.order_id in self.pending_cancels and o.is_open:
            return "pending_cancel"
        if o.order_id in self.pending_replaces and o.is_open:
            return "pending_replace"
        if o.is_open and o.replaces in self.pending_replaces:
            return "accepted"
        return STATUS.get(o.status, o.status)

    def _read(self, orders) -> None:
        """Count reads of pending cancels; confirm those read ``cancel_after_reads`` times."""
        if self.cancel_after_reads is None:
            return
        for o in orders:
            if o.order_id in self.pending_cancels:
                self.pending_cancels[o.order_id] += 1
                if self.pending_cancels[o.order_id] >= self.cancel_after_reads:
                    del self.pending_cancels[o.order_id]
                    if o.is_open:
                        self.book.cancel(o.order_id)

    # --- plumbing ------------------------------------------------------------
    def error(self, kind: str, **fields) -> web.Response:
        spec = self.errors[kind]
        body = json.loads(json.dumps(spec["body"]).replace("{symbol}", fields.get("symbol", "")).replace(
            "{minimum}", fields.get("minimum", "")))
        return web.json_response(body, status=spec["status"])

    def insufficient_qty(self, requested: Decimal, available: Decimal) -> web.Response:
        """Alpaca's refusal of an exit bigger than the shares left free by open orders."""
        body = {"code": 40310000, "message": f"insufficient qty available for order "
                f"(requested: {fmt(requested)}, available: {fmt(available)})"}
        self.refused.append(body)
        return web.json_response(body, status=403)

    def _over_position(self, symbol: str, side: str, qty: Decimal, excluding: str | None = None):
        check = getattr(self.book, "available_to_close", None)
        available = check(symbol, side, excluding=excluding) if check else None
        return self.insufficient_qty(qty, available) if available is not None and qty > available else None

    @web.middleware
    async def _middleware(self, request: web.Request, handler):
        body = await request.json() if request.can_read_body else {}
        self.requests.append((request.method, request.path, body or dict(request.query)))
        if request.headers.get("APCA-API-KEY-ID") != self.api_key or request.headers.get(
            "APCA-API-SECRET-KEY"
        ) != self.api_secret:
            return self.error("unauthorized")
        if self.faults:
            fault = self.faults.pop(0)
            if fault == "timeout":
                await asyncio.sleep(self.delay_seconds)
            elif fault in ("rate_limited", "forbidden"):
                return self.error(fault)
            elif fault == "server_error":
                return web.json_response({"code": 50010000, "message": "internal server error"}, status=500)
        try:
            return await handler(request)
        except BookReject as reject:
            if reject.kind == "not_found":
                return self.error("order_not_found")
            if reject.kind == "too_small":
                rule = self.book.rules.get(body.get("symbol", ""), SymbolRule())
                return self.error("too_small", minimum=fmt(rule.min_quantity))
            return self.error(reject.kind, symbol=body.get("symbol", ""))

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        r = app.router
        r.add_get("/v2/account", self.get_account)
        r.add_get("/v2/clock", self.get_clock)
        r.add_get("/v2/assets/{symbol}", self.get_asset)
        r.add_post("/v2/orders", self.post_order)
        r.add_get("/v2/orders", self.list_orders)
        r.add_get("/v2/orders:by_client_order_id", self.get_by_client_id)
        r.add_get("/v2/orders/{order_id}", self.get_order)
        r.add_patch("/v2/orders/{order_id}", self.replace_order)
        r.add_delete("/v2/orders/{order_id}", self.cancel_order)
        r.add_get("/v2/positions", self.list_positions)
        r.add_get("/v2/account/activities/FILL", self.list_fills)
        r.add_get("/v2/stocks/{kind:trades|quotes}/latest", self.latest)
        r.add_get("/v1beta1/options/{kind:trades|quotes}/latest", self.latest)
        return app

    # --- rendering -----------------------------------------------------------
    def render_order(self, o: BookOrder, nested: bool = True) -> dict:
        d = load_fixture("alpaca", "order.json")
        is_option = bool(OCC_OPTION.match(o.symbol))
        d.update(
            id=o.order_id, client_order_id=o.client_id, symbol=o.symbol,
            asset_class="us_option" if is_option else "us_equity",
            created_at=_iso(o.created_at), updated_at=_iso(o.updated_at), submitted_at=_iso(o.created_at),
            filled_at=_iso(o.fills[-1].at) if o.status == "filled" else None,
            canceled_at=_iso(o.updated_at) if o.status == "cancelled" else None,
            qty=fmt(o.quantity), filled_qty=fmt(o.filled), filled_avg_price=fmt(o.avg_price),
            order_class="" if o.order_class == "simple" else o.order_class,
            order_type=o.order_type, type=o.order_type, side=o.side, time_in_force=o.time_in_force,
            limit_price=fmt(o.limit_price), stop_price=fmt(o.stop_price),
            status=self._status(o),
            replaced_by=o.replaced_by, replaces=o.replaces,
            legs=[self.render_order(leg, nested) for leg in o.legs] if (nested and o.legs) else None,
        )
        return d

    # --- handlers ------------------------------------------------------------
    async def get_account(self, request):
        d = load_fixture("alpaca", "account.json")
        market_value = sum((q * self.book.prices[s] for s, (q, _) in self.book.positions.items()), Decimal("0"))
        equity = self.book.cash + market_value
        d.update(cash=fmt(self.book.cash), equity=fmt(equity), portfolio_value=fmt(equity),
                 buying_power=fmt(self.book.cash * 2), non_marginable_buying_power=fmt(self.book.cash))
        d.update(self.account_overrides)
        return web.json_response(d)

    async def latest(self, request):
        """Latest trade or quote per symbol: ``{"trades": {SYM: {...}}}`` / ``{"quotes": {SYM: {...}}}``."""
        kind = request.match_info["kind"]
        option = request.path.startswith("/v1beta1/")
        missing = self.no_trades if kind == "trades" else self.no_quotes
        out = {}
        for symbol in request.query.get("symbols", "").split(","):
            if not re.fullmatch(r"[A-Z0-9.]{1,21}", symbol):
                return self.error("invalid_symbol_data", symbol=symbol)
            price = self.book.prices.get(symbol)
            if price is None or symbol in missing:
                continue
            entry = load_fixture("alpaca", "market_data.json")[f"{'option' if option else 'stock'}_{kind[:-1]}"]
            if kind == "trades":
                entry["p"] = float(price)
            else:
                half = Decimal("0.05") if option else Decimal("0.01")
                entry["bp"], entry["ap"] = float(price - half), float(price + half)
            out[symbol] = entry
        return web.json_response({kind: out})

    async def get_clock(self, request):
        d = load_fixture("alpaca", "clock_closed.json")
        d["is_open"] = self.market_open
        return web.json_response(d)

    async def get_asset(self, request):
        symbol = request.match_info["symbol"]
        if symbol not in self.book.prices:
            return self.error("asset_not_found", symbol=symbol)
        d = load_fixture("alpaca", "asset_AAPL.json")
        d.update(symbol=symbol, id=str(uuid.uuid5(uuid.NAMESPACE_URL, symbol)))
        return web.json_response(d)

    async def post_order(self, request):
        b = await request.json()
        symbol = b["symbol"]
        if OCC_OPTION.match(symbol) and not self.market_open and b.get("type") == "market":
            return self.error("market_closed")
        order = self._book_order(b, b.get("client_order_id") or str(uuid.uuid4()))
        refused = self._over_position(symbol, order.side, order.quantity) if order.quantity else None
        if refused is not None and self.book.by_client_id(order.client_id) is None:
            return refused
        legs = []
        if b.get("order_class") in ("bracket", "oto", "oco"):
            order.order_class = b["order_class"]
            exit_side = "sell" if b["side"] == "buy" else "buy"
            if b.get("take_profit"):
                legs.append(BookOrder(self.book.new_order_id(), str(uuid.uuid4()), symbol, exit_side, "limit",
                                      order.quantity, limit_price=Decimal(str(b["take_profit"]["limit_price"])),
                                      time_in_force=order.time_in_force, order_class=order.order_class))
            if b.get("stop_loss"):
                legs.append(BookOrder(self.book.new_order_id(), str(uuid.uuid4()), symbol, exit_side, "stop",
                                      order.quantity, stop_price=Decimal(str(b["stop_loss"]["stop_price"])),
                                      time_in_force=order.time_in_force, order_class=order.order_class))
        self.book.submit(order, legs=legs)
        return web.json_response(self.render_order(order))

    def _book_order(self, b: dict, client_id: str) -> BookOrder:
        def dec(key):
            return Decimal(str(b[key])) if b.get(key) is not None else None

        return BookOrder(self.book.new_order_id(), client_id, b["symbol"], b["side"], b["type"], dec("qty"),
                         limit_price=dec("limit_price"), stop_price=dec("stop_price"),
                         time_in_force=b.get("time_in_force", "day"))

    async def list_orders(self, request):
        q = request.query
        status = q.get("status", "open")
        orders = list(self.book.orders.values())
        nested = q.get("nested", "false").lower() == "true"
        if nested:
            orders = [o for o in orders if o.parent_id is None]
        if status == "open":
            orders = [o for o in orders if o.is_open]
        elif status == "closed":
            orders = [o for o in orders if not o.is_open]
        if "after" in q:
            from datetime import datetime

            after = datetime.fromisoformat(q["after"].replace("Z", "+00:00"))
            orders = [o for o in orders if o.created_at > after or o.updated_at > after]
        limit = int(q.get("limit", 50))
        self._read(orders[:limit])
        return web.json_response([self.render_order(o, nested) for o in orders[:limit]])

    async def get_by_client_id(self, request):
        order = self.book.by_client_id(request.query.get("client_order_id", ""))
        if order is None:
            return self.error("order_not_found")
        self._read([order])
        return web.json_response(self.render_order(order))

    async def get_order(self, request):
        nested = request.query.get("nested", "false").lower() == "true"
        order = self.book.get(request.match_info["order_id"])
        self._read([order])
        return web.json_response(self.render_order(order, nested))

    async def cancel_order(self, request):
        order = self.book.get(request.match_info["order_id"])
        if not order.is_open or order.order_id in self.pending_cancels:
            return self.error("not_cancelable")
        if self.cancel_mode == "pending":
            self.pending_cancels[order.order_id] = 0
        else:
            self.book.cancel(order.order_id)
        return web.Response(status=204)

    async def replace_order(self, request):
        old = self.book.get(request.match_info["order_id"])
        if not old.is_open or self._status(old) in ("pending_cancel", "pending_replace", "accepted"):
            return self.error("not_cancelable")
        b = await request.json()
        if b.get("qty") and old.status != "held":
            refused = self._over_position(old.symbol, old.side, Decimal(str(b["qty"])), excluding=old.order_id)
            if refused is not None:
                return refused
        new = BookOrder(
            self.book.new_order_id(), b.get("client_order_id") or str(uuid.uuid4()), old.symbol, old.side,
            old.order_type, Decimal(str(b["qty"])) if b.get("qty") else old.quantity,
            limit_price=Decimal(str(b["limit_price"])) if b.get("limit_price") else old.limit_price,
            stop_price=Decimal(str(b["stop_price"])) if b.get("stop_price") else old.stop_price,
            time_in_force=b.get("time_in_force") or old.time_in_force, replaces=old.order_id,
            order_class=old.order_class,
        )
        was_held = old.status == "held"
        if self.replace_mode == "pending" and not was_held:
            self.pending_replaces[old.order_id] = new.order_id  # the old one still holds (and may fill)
        else:
            old.status, old.replaced_by = "replaced", new.order_id
        self.book.next_fill = "none"
        self.book.submit(new)
        if old.parent_id:  # a replaced bracket leg stays a leg of its entry
            parent = self.book.get(old.parent_id)
            new.parent_id, parent.legs = parent.order_id, [new if leg is old else leg for leg in parent.legs]
            new.status = "held" if was_held else new.status
        return web.json_response(self.render_order(new))

    async def list_positions(self, request):
        out = []
        for symbol, (qty, avg) in self.book.positions.items():
            d = load_fixture("alpaca", "position.json")
            price = self.book.prices[symbol]
            free = self.book.available_to_close(symbol, "sell" if qty > 0 else "buy")
            d.update(symbol=symbol, qty=fmt(qty), qty_available=fmt(free if qty > 0 else -free),
                     avg_entry_price=fmt(avg),
                     side="long" if qty > 0 else "short", current_price=fmt(price),
                     market_value=fmt(qty * price), cost_basis=fmt(qty * avg))
            out.append(d)
        return web.json_response(out)

    async def list_fills(self, request):
        from datetime import datetime, timezone

        q = request.query
        after = datetime.fromisoformat(q["after"].replace("Z", "+00:00")) if "after" in q else None
        fills = self.book.fills_since(after or datetime(1970, 1, 1, tzinfo=timezone.utc))
        page_size = int(q.get("page_size", 100))
        token = q.get("page_token")
        if token:
            ids = [f.fill_id for f in fills]
            fills = fills[ids.index(token) + 1:] if token in ids else []
        out = []
        for f in fills[:page_size]:
            order = self.book.get(f.order_id)
            d = load_fixture("alpaca", "fill_activity.json")
            d.update(id=f.fill_id, transaction_time=_iso(f.at), price=fmt(f.price), qty=fmt(f.quantity),
                     side=order.side, symbol=order.symbol, leaves_qty=fmt(order.remaining),
                     order_id=order.order_id, cum_qty=fmt(order.filled),
                     type="fill" if order.status == "filled" else "partial_fill",
                     order_status=self._status(order))
            out.append(d)
        return web.json_response(out)
