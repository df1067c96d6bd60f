"""Crypto exchanges through ccxt's asyncio API (any ccxt exchange id; spot markets).

Differences between exchanges live in a small per-exchange ``Dialect``
(freqtrade's ``_ft_has`` idea, in ``ccxt_dialects``) instead of
``if exchange == ...`` branches:

* how the client order id is passed (ccxt maps ``clientOrderId`` for Binance
  -> ``newClientOrderId`` and Kraken -> ``cl_ord_id``; ccxt 4.5.90 drops it
  for Coinbase, which needs ``client_order_id`` itself);
* whether the venue keeps client ids unique forever.  Binance and Kraken only
  refuse a duplicate while the first order is OPEN; once it filled they
  would accept the retry as a new order.  For them the adapter looks the id
  up before placing (one extra private call) so a retry after a timeout or a
  crash never doubles an order.  Coinbase returns the existing order itself;
* whether order and trade history need a symbol (Binance does);
* where the venue says whether the key may trade (``AccountInfo.can_trade``).

An order is found again by client id through: this instance's memory, then
the ``orders`` table (when the engine passed ``engine``), then the venue
(open/closed order scans or a by-client-id query).  Market metadata (min
amount, step, tick, min cost) comes from the exchange's markets, reloaded
after ``markets_ttl`` seconds.  ccxt returns floats; they become ``Decimal``
through ``str()`` (shortest round-trip repr) at this boundary.

Rate limits: the shared token bucket (half of ``60000 / exchange.rateLimit``
per minute) spans every adapter instance of the account; ccxt's own
per-instance throttle (which knows endpoint weights) stays on unless
``ccxt_throttle=False`` (tests, where it would only add sleeps).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

import ccxt
import ccxt.async_support as ccxt_async
from sqlmodel import Session, select

from backend.brokers.base import (
    AccountInfo,
    BrokerAdapter,
    BrokerPosition,
    Capabilities,
    InstrumentInfo,
    OrderRequest,
    OrderSnapshot,
    VenueFill,
)
from backend.brokers.ccxt_dialects import D, dialect_for, flag, point_urls_at, ticker_price
from backend.brokers.ccxt_dialects import when as _when
from backend.brokers.errors_map import DuplicateClientOrderId, translate_ccxt
from backend.brokers.rate_limit import account_key, ccxt_published_per_minute, half_of, shared_bucket
from backend.brokers.registry import register
from backend.db.models.trading import Order
from backend.errors import (
    ConfigurationError,
    InvalidSymbol,
    OrderNotFound,
    OrderRejected,
    OrderTooSmall,
    ValidationError,
)

_STATUS = {"closed": "filled", "canceled": "cancelled", "cancelled": "cancelled", "expired": "expired",
           "rejected": "rejected"}
_FINAL = {"filled", "cancelled", "expired", "rejected"}
log = logging.getLogger(__name__)


# What every ccxt exchange shares here (spot crypto, fractional amounts); each instance narrows the
# order types to its exchange's dialect and sets its own request rate.
KIND_CAPABILITIES = Capabilities(asset_classes=frozenset({"crypto"}), order_types=frozenset({"market", "limit"}),
                                 fractional=True, exits_reserve_quantity=True)


class CcxtAdapter(BrokerAdapter):
    name = "ccxt"

    def __init__(self, *, credentials: dict, live: bool = False, base_url: str | None = None,
                 timeout: float = 10.0, requests_per_minute: int | None = None, markets_ttl: float = 3600.0,
                 clock: Callable[[], float] = time.monotonic, ccxt_throttle: bool = True,
                 engine=None, broker_account_id=None, **_ignored) -> None:
        exchange_id = str(credentials.get("exchange_id") or "").lower()
        if exchange_id not in ccxt.exchanges:
            raise ConfigurationError(f"ccxt does not know the exchange '{exchange_id}'.", field="exchange_id")
        self.exchange_id = exchange_id
        self.dialect = dialect_for(exchange_id)
        config = {"apiKey": credentials.get("api_key"), "secret": credentials.get("secret"),
                  "enableRateLimit": ccxt_throttle, "timeout": int(timeout * 1000), "options": dict(self.dialect.options)}
        for extra in ("password", "uid"):
            if credentials.get(extra):
                config[extra] = credentials[extra]
        self._ex = getattr(ccxt_async, exchange_id)(config)
        self.venue = self._ex.name or exchange_id
        self._secrets = (credentials.get("api_key"), credentials.get("secret"), credentials.get("password"))
        if base_url:
            self._ex.urls["api"] = point_urls_at(self._ex.urls["api"], base_url)
        elif not live:
            if not self._ex.urls.get("test"):
                raise ConfigurationError(
                    f"{self.venue} has no sandbox: connect a live account, or use the paper broker to practise.",
                    field="live")
            self._ex.set_sandbox_mode(True)
        self.account_key = account_key(exchange_id, credentials.get("api_key"), live)
        rate = requests_per_minute or half_of(ccxt_published_per_minute(self._ex.rateLimit))
        self._bucket = shared_bucket("ccxt", self.account_key, rate)
        # Spot: an open sell locks the coins it sells, so a full-size stop leaves nothing for a target
        # beside it; the engine keeps the stop at the venue and holds the targets itself (``held_targets``).
        self.capabilities = Capabilities(
            asset_classes=frozenset({"crypto"}), order_types=self.dialect.order_types, fractional=True,
            exits_reserve_quantity=True, max_requests_per_minute=rate,
        )
        self._markets_ttl, self._clock, self._markets_at = markets_ttl, clock, None
        self._engine, self._broker_account_id = engine, broker_account_id
        self._known: dict[str, tuple[str, str]] = {}  # client id -> (venue order id, unified symbol)

    async def _x(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        await self._bucket.acquire()
        try:
            return await fn(*args, **kwargs)
        except (ccxt.ArgumentsRequired, ccxt.NotSupported):
            raise  # our call shape, not the venue's answer: callers decide
        except ccxt.BaseError as exc:
            raise translate_ccxt(exc, self.venue, self._secrets) from exc

    # --- markets ------------------------------------------------------------------
    async def _ensure_markets(self) -> dict:
        stale = self._markets_at is None or self._clock() - self._markets_at > self._markets_ttl
        if stale:
            await self._x(self._ex.load_markets, reload=self._markets_at is not None)
            self._markets_at = self._clock()
        return self._ex.markets

    async def _symbol(self, symbol: str) -> str:
        markets = await self._ensure_markets()
        if symbol in markets:
            return symbol
        by_id = self._ex.markets_by_id.get(symbol) or self._ex.markets_by_id.get(symbol.replace("/", ""))
        if by_id:
            return by_id[0]["symbol"]
        dashed = symbol.replace("-", "/")
        if dashed in markets:
            return dashed
        raise InvalidSymbol(f"{self.venue} does not list the market {symbol}.")

    def _step(self, precision: Any) -> Decimal | None:
        if precision is None:
            return None
        if self._ex.precisionMode == ccxt.DECIMAL_PLACES:
            return Decimal(1).scaleb(-int(precision))
        if self._ex.precisionMode == ccxt.TICK_SIZE:
            return D(precision)
        return None

    async def instrument(self, symbol: str, asset_class: str = "crypto") -> InstrumentInfo:
        unified = await self._symbol(symbol)
        m = self._ex.markets[unified]
        limits, precision = m.get("limits") or {}, m.get("precision") or {}
        return InstrumentInfo(
            symbol=unified, asset_class="crypto",
            min_quantity=D((limits.get("amount") or {}).get("min")),
            quantity_step=self._step(precision.get("amount")), price_tick=self._step(precision.get("price")),
            min_notional=D((limits.get("cost") or {}).get("min")), fractional=True,
        )

    # --- account ---------------------------------------------------------------------
    async def validate(self) -> AccountInfo:
        return await self.account()

    async def account(self) -> AccountInfo:
        await self._ensure_markets()
        balance = await self._x(self._ex.fetch_balance)
        quote = self.dialect.quote_currency
        holdings = await self._holdings(balance, quote)
        free_quote = D((balance.get(quote) or {}).get("free")) or Decimal("0")
        total_quote = D((balance.get(quote) or {}).get("total")) or Decimal("0")
        equity = total_quote + sum(((p.market_price or 0) * p.quantity for p in holdings), Decimal("0"))
        return AccountInfo(account_id=f"{self.exchange_id}:{self.account_key}", currency=quote,
                           cash=free_quote, equity=equity, buying_power=free_quote,
                           can_trade=await self._can_trade(balance))

    async def _can_trade(self, balance: dict) -> bool:
        """The key's trading permission where the venue states it; True where it does not say."""
        said: bool | None = None
        if self.dialect.balance_trade_flag:
            said = flag((balance.get("info") or {}).get(self.dialect.balance_trade_flag))
        if said is None and self.dialect.permissions_call:
            method, key = self.dialect.permissions_call
            said = flag((await self._x(getattr(self._ex, method)) or {}).get(key))
        return True if said is None else said

    async def _holdings(self, balance: dict, quote: str) -> list[BrokerPosition]:
        totals = {c: D(v) for c, v in (balance.get("total") or {}).items() if v and c != quote}
        symbols = [f"{c}/{quote}" for c, v in totals.items() if v and f"{c}/{quote}" in self._ex.markets]
        prices: dict[str, Decimal | None] = {}
        if symbols:
            tickers = await self._x(self._ex.fetch_tickers, symbols)
            prices = {s: D((tickers.get(s) or {}).get("last")) for s in symbols}
        # Spot balances carry no cost basis; the engine's own lots hold the average price.
        return [BrokerPosition(symbol=s, quantity=totals[s.split("/")[0]], avg_price=Decimal("0"),
                               market_price=prices.get(s)) for s in symbols]

    async def positions(self) -> list[BrokerPosition]:
        await self._ensure_markets()
        balance = await self._x(self._ex.fetch_balance)
        return await self._holdings(balance, self.dialect.quote_currency)

    async def quote(self, symbol: str) -> Decimal | None:
        """The ticker's last price (else mid, else close); None when the venue has none."""
        ticker = await self._x(self._ex.fetch_ticker, await self._symbol(symbol))
        return ticker_price(ticker or {})

    # --- placing -------------------------------------------------------------------------
    async def place_order(self, request: OrderRequest) -> OrderSnapshot:
        if request.order_type not in self.capabilities.order_types:
            raise ValidationError(f"{self.venue} does not take '{request.order_type}' orders here.", field="order_type")
        symbol = await self._symbol(request.symbol)
        await self._check_size(symbol, request)
        cid = request.client_order_id
        if not self.dialect.client_ids_unique_forever:
            existing = await self._locate(cid, symbol)
            if existing is not None:
                return self._snapshot(existing, cid)
        kind, price, params = await self._order_args(symbol, request)
        try:
            order = await self._x(self._ex.create_order, symbol, kind, request.side, float(request.quantity),
                                  price, params)
        except DuplicateClientOrderId:
            order = await self._by_client_id(cid, symbol)
            if order is None:
                raise OrderRejected(f"{self.venue} reports a duplicate client order id it cannot show.") from None
        self._known[cid] = (str(order["id"]), symbol)
        if order.get("status") is None or order.get("filled") is None:
            order = await self._x(self._ex.fetch_order, str(order["id"]), symbol)
        return self._snapshot(order, cid)

    async def _check_size(self, symbol: str, r: OrderRequest) -> None:
        info = await self.instrument(symbol)
        if info.min_quantity and r.quantity < info.min_quantity:
            raise OrderTooSmall(f"{self.venue} needs at least {info.min_quantity} per order on {symbol}; "
                                f"this order is {r.quantity}.")
        price = r.limit_price or r.reference_price
        if info.min_notional and price and r.quantity * price < info.min_notional:
            raise OrderTooSmall(f"{self.venue} needs orders worth at least {info.min_notional} on {symbol}; "
                                f"this one is about {(r.quantity * price).normalize()}.")

    async def _order_args(self, symbol: str, r: OrderRequest) -> tuple[str, float | None, dict]:
        params: dict[str, Any] = {self.dialect.client_id_param: r.client_order_id}
        kind = "limit" if r.order_type in ("limit", "stop_limit") else "market"
        price = float(r.limit_price) if kind == "limit" else None
        if r.order_type in ("stop", "stop_limit"):
            params[self.dialect.trigger_param] = float(r.stop_price)
            if self.dialect.stop_direction_param:
                params[self.dialect.stop_direction_param] = ("STOP_DIRECTION_STOP_DOWN" if r.side == "sell"
                                                             else "STOP_DIRECTION_STOP_UP")
        tif = {"gtc": "GTC", "ioc": "IOC", "fok": "FOK"}.get(r.time_in_force.lower())
        if kind == "limit" and tif:
            params["timeInForce"] = tif
        if kind == "market" and r.side == "buy" and self.dialect.market_buy_needs_price:
            # Coinbase sizes market buys in quote currency (amount x price): use the freshest price.
            price = float(await self.quote(symbol) or r.reference_price)
        return kind, price, params

    # --- finding orders again ------------------------------------------------------------
    async def _locate(self, cid: str, symbol: str | None = None) -> dict | None:
        known = self._known.get(cid) or await self._db_lookup(cid)
        if known and known[0]:
            try:
                return await self._x(self._ex.fetch_order, known[0], known[1])
            except OrderNotFound:
                pass
        return await self._by_client_id(cid, symbol or (known[1] if known else None))

    async def _by_client_id(self, cid: str, symbol: str | None) -> dict | None:
        if self.dialect.lookup == "param" and symbol:
            try:
                order = await self._x(self._ex.fetch_order, None, symbol, {"clientOrderId": cid})
            except OrderNotFound:
                return None
            return order if order.get("clientOrderId") == cid else None
        params = {"clientOrderId": cid} if self.dialect.lookup == "filter" else {}
        history = self._ex.fetch_orders if self._ex.has.get("fetchOrders") is True else self._ex.fetch_closed_orders
        for fetch in (self._ex.fetch_open_orders, history):
            if self.dialect.history_needs_symbol and symbol is None and fetch is history:
                continue
            try:
                orders = await self._x(fetch, symbol, None, None, params)
            except (ccxt.ArgumentsRequired, ccxt.NotSupported):
                continue
            match = next((o for o in orders if o.get("clientOrderId") == cid), None)
            if match is not None:
                self._known[cid] = (str(match["id"]), match["symbol"])
                return match
        if symbol is None and self.dialect.history_needs_symbol:
            # A fresh instance with no orders table (or a row without a symbol): try the markets the
            # account trades in; an order of a market since left flat is found only through the table.
            held = {s for _, s in self._known.values()} | {p.symbol for p in await self.positions()}
            for candidate in sorted(held):
                match = await self._by_client_id(cid, candidate)
                if match is not None:
                    return match
        return None

    async def order_status(self, client_order_id: str) -> OrderSnapshot:
        order = await self._locate(client_order_id)
        if order is None:
            raise OrderNotFound(f"{self.venue} has no order with client id {client_order_id}.")
        return self._snapshot(order, client_order_id)

    async def cancel_order(self, client_order_id: str) -> OrderSnapshot:
        order = await self._locate(client_order_id)
        if order is None:
            raise OrderNotFound(f"{self.venue} has no order with client id {client_order_id}.")
        if self._snapshot(order, client_order_id).status in _FINAL:
            return self._snapshot(order, client_order_id)
        try:
            await self._x(self._ex.cancel_order, str(order["id"]), order["symbol"])
        except OrderNotFound:
            pass  # it completed in between; the refetch below says how
        order = await self._x(self._ex.fetch_order, str(order["id"]), order["symbol"])
        return self._snapshot(order, client_order_id)

    async def open_orders(self) -> list[OrderSnapshot]:
        await self._ensure_markets()
        out = []
        for order in await self._x(self._ex.fetch_open_orders):
            cid = order.get("clientOrderId") or str(order["id"])
            self._known[cid] = (str(order["id"]), order["symbol"])
            out.append(self._snapshot(order, cid))
        return out

    async def fills_since(self, since: datetime) -> list[tuple[str, VenueFill]]:
        await self._ensure_markets()
        since_ms = int(since.timestamp() * 1000)
        trades: list[dict] = []
        if self.dialect.history_needs_symbol:
            for symbol in sorted(await self._symbols_to_scan(since)):
                trades += await self._x(self._ex.fetch_my_trades, symbol, since_ms)
        else:
            trades = await self._x(self._ex.fetch_my_trades, None, since_ms)
        out = []
        for t in sorted(trades, key=lambda t: (t["timestamp"], str(t["id"]))):
            if t["timestamp"] < since_ms:
                continue
            fee = self._quote_fee(t.get("fee"), t["symbol"], D(t["price"]), {"id": t.get("order")}) or Decimal("0")
            out.append((await self._client_id_of(str(t["order"]), t["symbol"]), VenueFill(
                fill_id=str(t["id"]), quantity=D(t["amount"]), price=D(t["price"]), fee=fee,
                filled_at=_when(t["timestamp"]),
            )))
        return out

    async def _symbols_to_scan(self, since: datetime) -> set[str]:
        """Binance keeps trade history per symbol: ours in memory and DB, held balances, open orders."""
        symbols = {s for _, s in self._known.values()} | set(await self._db_symbols(since))
        symbols |= {p.symbol for p in await self.positions()}
        symbols |= {o.symbol for o in await self.open_orders()}
        return symbols

    async def _client_id_of(self, order_id: str, symbol: str) -> str:
        for cid, (oid, _) in self._known.items():
            if oid == order_id:
                return cid
        order = await self._x(self._ex.fetch_order, order_id, symbol)
        cid = order.get("clientOrderId") or order_id
        self._known[cid] = (order_id, symbol)
        return cid

    # --- the engine's orders table (optional seam) ------------------------------------
    async def _db_lookup(self, cid: str) -> tuple[str, str] | None:
        if self._engine is None:
            return None

        def read():
            with Session(self._engine) as s:
                row = s.exec(select(Order.broker_order_id, Order.symbol).where(Order.client_order_id == cid)).first()
                return (row[0] or "", row[1]) if row else None

        found = await asyncio.to_thread(read)
        if found and found[1] in (self._ex.markets or {}):
            return found
        return (found[0], await self._symbol(found[1])) if found else None

    async def _db_symbols(self, since: datetime) -> list[str]:
        if self._engine is None or self._broker_account_id is None:
            return []

        def read():
            with Session(self._engine) as s:
                q = select(Order.symbol).where(Order.broker_account_id == self._broker_account_id,
                                               Order.updated_at >= since).distinct()
                return list(s.exec(q))

        out = []
        for symbol in await asyncio.to_thread(read):
            try:
                out.append(await self._symbol(symbol))
            except InvalidSymbol:
                continue
        return out

    # --- translation ------------------------------------------------------------------------
    def _snapshot(self, order: dict, cid: str) -> OrderSnapshot:
        """The venue's order as an ``OrderSnapshot``, its fee in the quote currency (``_quote_fee``).

        Per-trade fills come only where the order answer carries them (Binance's
        ``fills``).  Kraken lists trade ids only and Coinbase only totals, so
        their cumulative order fee (ccxt's ``fee``: Kraken ``fee``, Coinbase
        ``total_fees``) rides on the snapshot and the engine books its increase
        with each synthetic fill.  Fetching the trades instead
        (``fetch_my_trades``) would add a private call to every status read, on
        the rate budget the engine's polling shares, for the same total.
        """
        filled = D(order.get("filled")) or Decimal("0")
        amount = D(order.get("amount")) or filled  # Coinbase market buys are sized in quote currency
        status = _STATUS.get(order.get("status") or "", "submitted")
        if status == "submitted" and filled > 0:
            status = "partially_filled"
        if status == "cancelled" and filled > 0 and filled >= amount:
            status = "filled"
        symbol = order.get("symbol") or ""
        average = D(order.get("average")) if filled > 0 else None
        fills = tuple(
            VenueFill(fill_id=str(t.get("id")), quantity=D(t["amount"]), price=D(t["price"]),
                      fee=self._quote_fee(t.get("fee"), symbol, D(t["price"]), order) or Decimal("0"),
                      filled_at=_when(t.get("timestamp") or order.get("lastTradeTimestamp") or order.get("timestamp")))
            for t in (order.get("trades") or []) if t.get("id") and t.get("amount") is not None
        )
        return OrderSnapshot(
            client_order_id=cid, broker_order_id=str(order["id"]), symbol=symbol,
            side=order.get("side") or "buy", quantity=amount, status=status, filled_quantity=filled,
            avg_fill_price=average, fills=fills,
            reject_reason=(str((order.get("info") or {}).get("reject_reason") or "") or None)
            if status == "rejected" else None,
            fee=None if fills else self._quote_fee(order.get("fee"), symbol, average, order),
        )

    def _quote_fee(self, fee: dict | None, symbol: str, price: Decimal | None, order: dict) -> Decimal | None:
        """A ccxt fee as an amount of the market's quote currency; None where there is none to book.

        A fee in the quote currency (or with no currency: Kraken documents its
        fees in the quote currency) counts as it is.  One in the base currency
        is valued at the fill's price (the held quantity is the venue's to
        reconcile).  A fee in a third currency (Binance's BNB discount) has no
        price here: it is left out of P&L, never added to the quote as if it
        were, and logged with its currency so the gap is visible.
        """
        cost = D((fee or {}).get("cost"))
        if not cost:
            return None
        currency = (fee or {}).get("currency")
        market = (self._ex.markets or {}).get(symbol) or {}
        if currency is None or currency == market.get("quote", currency):
            return cost
        if currency == market.get("base") and price is not None:
            return (cost * price).quantize(Decimal("1e-10"))
        log.warning("%s order %s paid a fee of %s %s, which has no price in %s here: left out of P&L",
                    self.venue, order.get("id"), cost, currency, market.get("quote", "the quote currency"))
        return None

    async def close(self) -> None:
        await self._ex.close()


def _factory(**kwargs: Any) -> CcxtAdapter:
    return CcxtAdapter(**kwargs)


register("ccxt", _factory, KIND_CAPABILITIES)
