"""Alpaca (stocks, ETFs, options) through alpaca-py's TradingClient.

alpaca-py is synchronous (``requests``); every call runs in a worker thread
(``asyncio.to_thread``) so the worker's event loop never blocks.  The client
is built with ``raw_data=True``: Alpaca sends money as JSON strings and we
turn them straight into ``Decimal`` instead of through the SDK models' floats.

Three things alpaca-py does not let us configure are set on its session
after construction (documented here because they touch private attributes):
a default request timeout (requests has none), and no blocking in-thread
retry of 429s (the engine backs off instead, and the rate limiter keeps us
well under Alpaca's 200 requests/minute).

Brackets: Alpaca holds ONE take-profit and one stop per bracket
(``max_bracket_take_profits = 1``), and shares held by an open sell order
are not available to another one (``exits_reserve_quantity``: a target
placed beside a full-size stop is refused with 403 "insufficient qty
available").  A ladder of several take-profits therefore goes out as one
bracket per target (the engine splits the entry, ``brackets.add_slices``):
each slice's stop and target share the slice's shares, and Alpaca cancels
the slice's other leg when one fills.  A replaced order gets a new id at
Alpaca; we always report it under the client order id the engine chose by
following ``replaced_by`` / ``replaces`` links.  Alpaca replaces
asynchronously: until it confirms, the old order shows ``pending_replace``
(no ``replaced_by`` to follow yet) and the new one ``accepted``, so the
adapter remembers the replacement it asked for and reads that one; if the old
order fills first, Alpaca rejects the new one, and the old one (filled) is
what we report.  A cancel is asynchronous too: ``pending_cancel`` is still a
working order (``submitted``), holding its shares, until it is ``canceled``.

Bracket legs carry Alpaca's own ids (and a client id Alpaca made up); the
engine knows them as ``<entry>-sl`` and ``<entry>-tp1``.  The adapter keeps an
index from leg ids to those names, learnt from the entry's ``legs`` (at
placement, or by looking the entry up by its client id), so every snapshot,
open order and fill of a leg comes back under our name and
``order_status`` / ``cancel_order`` / ``replace_order`` take it.  After a
restart, a leg met in a listing is placed by one nested order listing from
just before its creation (legs are created with their entry).

Quotes come from the market data API (``data.alpaca.markets``, its own host;
``data_url``, else ``base_url`` when the trading host is overridden): the
latest trade, else the middle of the latest quote; options (OCC symbols) the
other way round, since an option's last trade may be hours old.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import requests
from alpaca.common.enums import Sort
from alpaca.common.exceptions import APIError
from alpaca.data.historical.option import OptionHistoricalDataClient
from alpaca.data.historical.stock import StockHistoricalDataClient
from alpaca.data.requests import (
    OptionLatestQuoteRequest,
    OptionLatestTradeRequest,
    StockLatestQuoteRequest,
    StockLatestTradeRequest,
)
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderClass, OrderSide, QueryOrderStatus, TimeInForce
from alpaca.trading.requests import (
    GetOrderByIdRequest,
    GetOrdersRequest,
    LimitOrderRequest,
    MarketOrderRequest,
    ReplaceOrderRequest,
    StopLimitOrderRequest,
    StopLossRequest,
    StopOrderRequest,
    TakeProfitRequest,
)

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
from backend.brokers.errors_map import DuplicateClientOrderId, translate_alpaca
from backend.brokers.rate_limit import ALPACA_PUBLISHED_PER_MINUTE, account_key, half_of, shared_bucket
from backend.brokers.registry import register
from backend.errors import ConfigurationError, InvalidSymbol, MarketClosed, OrderNotFound, ValidationError

_STATUS = {
    "filled": "filled", "partially_filled": "partially_filled", "canceled": "cancelled",
    "expired": "expired", "rejected": "rejected",
}
_REPLACE_HOPS = 5
_MULTI_LEG = {"bracket", "oto", "oco"}
_OCC = re.compile(r"^[A-Z]{1,6}\d{6}[CP]\d{8}$")
_LEG_SUFFIXES = ("sl", "tp1")


def D(value: Any) -> Decimal | None:
    return None if value in (None, "") else Decimal(str(value))


def leg_name(entry_client_id: str, leg: dict) -> str | None:
    """Our name for a bracket leg: the stop is ``<entry>-sl``, the (single) take-profit ``<entry>-tp1``."""
    kind = leg.get("type") or leg.get("order_type")
    if kind in ("stop", "stop_limit", "trailing_stop"):
        return f"{entry_client_id}-sl"
    if kind == "limit":
        return f"{entry_client_id}-tp1"
    return None


def entry_of_leg(client_order_id: str) -> str | None:
    base, sep, suffix = client_order_id.rpartition("-")
    return base if sep and base and suffix in _LEG_SUFFIXES else None


def _timestamp(text: str) -> datetime:
    """Alpaca's RFC 3339 times, which may carry nanoseconds (more than ``fromisoformat`` reads)."""
    text = re.sub(r"(\.\d{6})\d+", r"\1", str(text)).replace("Z", "+00:00")
    return datetime.fromisoformat(text)


def _mid(quote: dict | None) -> Decimal | None:
    bid, ask = D((quote or {}).get("bp")), D((quote or {}).get("ap"))
    return (bid + ask) / 2 if bid and ask and bid > 0 and ask > 0 else None


def _last(trade: dict | None) -> Decimal | None:
    price = D((trade or {}).get("p"))
    return price if price and price > 0 else None


def occ_symbol(root: str, expiry, right: str, strike: Decimal) -> str:
    """OCC option symbol as Alpaca spells it: AAPL250620C00200000."""
    return f"{root.upper()}{expiry:%y%m%d}{'C' if right.upper().startswith('C') else 'P'}{int(strike * 1000):08d}"


class _TimeoutHTTPAdapter(requests.adapters.HTTPAdapter):
    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.timeout = timeout

    def send(self, request, **kwargs):
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        return super().send(request, **kwargs)


class AlpacaAdapter(BrokerAdapter):
    name = "alpaca"
    capabilities = Capabilities(
        asset_classes=frozenset({"stock", "etf", "option"}),
        order_types=frozenset({"market", "limit", "stop", "stop_limit"}),
        native_brackets=True,
        native_oco=False,  # Alpaca's OCO is one request with both exits, not a group of separate orders
        fractional=True,
        short_selling=True,
        replace_order=True,
        max_requests_per_minute=half_of(ALPACA_PUBLISHED_PER_MINUTE),
        max_bracket_take_profits=1,
        exits_reserve_quantity=True,  # shares held by an open sell are not available to another (HTTP 403)
    )
    max_bracket_take_profits = capabilities.max_bracket_take_profits

    def __init__(self, *, credentials: dict, live: bool = False, base_url: str | None = None,
                 data_url: str | None = None, timeout: float = 10.0, requests_per_minute: int | None = None,
                 engine=None, broker_account_id=None, **_ignored) -> None:
        key, secret = credentials.get("api_key"), credentials.get("api_secret")
        if not key or not secret:
            raise ConfigurationError("Alpaca needs an API key and an API secret.", field="credentials")
        self.live = live
        self._secrets = (key, secret)
        data_url = data_url or base_url
        self._client = TradingClient(key, secret, paper=not live, raw_data=True, url_override=base_url)
        self._stocks = StockHistoricalDataClient(key, secret, raw_data=True, url_override=data_url)
        self._options = OptionHistoricalDataClient(key, secret, raw_data=True, url_override=data_url)
        for client in (self._client, self._stocks, self._options):
            client._retry = 0  # no in-thread sleep-and-retry on 429: surface RateLimited
            client._session.mount("http://", _TimeoutHTTPAdapter(timeout))
            client._session.mount("https://", _TimeoutHTTPAdapter(timeout))
        self._bucket = shared_bucket(
            "alpaca", account_key(key, live), requests_per_minute or self.capabilities.max_requests_per_minute
        )
        self._leg_names: dict[str, str] = {}  # Alpaca id of a bracket leg -> our name (<entry>-sl)
        self._leg_ids: dict[str, str] = {}    # our name -> Alpaca id of the leg
        self._not_legs: set[str] = set()      # multi-leg orders known not to be legs (entries)
        self._replacements: dict[str, str] = {}  # our client id -> Alpaca id of the replacement we asked for

    async def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        await self._bucket.acquire()
        try:
            return await asyncio.to_thread(fn, *args)
        except (APIError, requests.RequestException) as exc:
            raise translate_alpaca(exc, self._secrets) from exc

    # --- account --------------------------------------------------------------
    async def validate(self) -> AccountInfo:
        return await self.account()

    async def account(self) -> AccountInfo:
        raw = await self._call(self._client.get_account)
        return AccountInfo(
            account_id=str(raw.get("account_number") or raw["id"]),
            currency=raw.get("currency") or "USD",
            cash=D(raw.get("cash")) or Decimal("0"),
            equity=D(raw.get("equity")) or Decimal("0"),
            buying_power=D(raw.get("buying_power")) or Decimal("0"),
            can_trade=str(raw.get("status", "")).upper() == "ACTIVE" and not raw.get("trading_blocked")
            and not raw.get("account_blocked") and not raw.get("trade_suspended_by_user"),
        )

    async def quote(self, symbol: str) -> Decimal | None:
        """Latest trade (stocks) or quote mid (options), with the other as the fallback; None if neither."""
        if _OCC.match(symbol):
            asks = [(self._options.get_option_latest_quote, OptionLatestQuoteRequest, _mid),
                    (self._options.get_option_latest_trade, OptionLatestTradeRequest, _last)]
        else:
            asks = [(self._stocks.get_stock_latest_trade, StockLatestTradeRequest, _last),
                    (self._stocks.get_stock_latest_quote, StockLatestQuoteRequest, _mid)]
        for fetch, request_type, price_of in asks:
            try:
                answer = await self._call(fetch, request_type(symbol_or_symbols=symbol))
            except OrderNotFound as exc:  # a 404 from the data API is about the symbol
                raise InvalidSymbol(f"Alpaca has no market data for {symbol}.") from exc
            price = price_of((answer or {}).get(symbol))
            if price is not None:
                return price
        return None

    async def positions(self) -> list[BrokerPosition]:
        out = []
        for raw in await self._call(self._client.get_all_positions):
            qty = abs(D(raw["qty"]))
            out.append(BrokerPosition(
                symbol=raw["symbol"], quantity=qty if raw.get("side", "long") == "long" else -qty,
                avg_price=D(raw["avg_entry_price"]), market_price=D(raw.get("current_price")),
            ))
        return out

    async def instrument(self, symbol: str, asset_class: str = "stock") -> InstrumentInfo:
        if asset_class == "option":  # whole contracts; Alpaca quotes options in cents
            return InstrumentInfo(symbol=symbol, asset_class="option", min_quantity=Decimal("1"),
                                  quantity_step=Decimal("1"), price_tick=Decimal("0.01"))
        try:
            raw = await self._call(self._client.get_asset, symbol)
        except OrderNotFound as exc:  # 404 on /assets is an unknown symbol, not an order
            raise InvalidSymbol(f"Alpaca does not know the symbol {symbol}.") from exc
        if not raw.get("tradable", False):
            raise InvalidSymbol(f"{symbol} exists at Alpaca but is not tradable.")
        fractional = bool(raw.get("fractionable"))
        return InstrumentInfo(
            symbol=symbol, asset_class=asset_class,
            min_quantity=D(raw.get("min_order_size")) if fractional else Decimal("1"),
            quantity_step=D(raw.get("min_trade_increment")) if fractional else Decimal("1"),
            price_tick=D(raw.get("price_increment")) or Decimal("0.01"),
            fractional=fractional,
        )

    async def market_is_open(self) -> tuple[bool, str | None]:
        raw = await self._call(self._client.get_clock)
        return bool(raw.get("is_open")), raw.get("next_open")

    # --- orders ---------------------------------------------------------------
    async def place_order(self, request: OrderRequest) -> OrderSnapshot:
        alpaca_request = self._build(request)
        try:
            raw = await self._call(self._client.submit_order, alpaca_request)
        except DuplicateClientOrderId:
            raw = await self._call(self._client.get_order_by_client_id, request.client_order_id)
        except MarketClosed as exc:
            raise await self._with_next_open(exc) from exc.__cause__
        self._learn(raw, request.client_order_id)
        return self._snapshot(raw, request.client_order_id)

    def _build(self, r: OrderRequest):
        symbol = r.symbol
        if r.asset_class == "option" and r.strike is not None and r.expiry and r.option_right:
            symbol = occ_symbol(r.symbol, r.expiry, r.option_right, r.strike)
        common: dict[str, Any] = dict(
            symbol=symbol, qty=r.quantity, side=OrderSide(r.side),
            time_in_force=TimeInForce(r.time_in_force.lower()), client_order_id=r.client_order_id,
        )
        if r.bracket is not None:
            common.update(self._bracket(r))
        if r.order_type == "market":
            return MarketOrderRequest(**common)
        if r.order_type == "limit":
            return LimitOrderRequest(limit_price=r.limit_price, **common)
        if r.order_type == "stop":
            return StopOrderRequest(stop_price=r.stop_price, **common)
        if r.order_type == "stop_limit":
            return StopLimitOrderRequest(limit_price=r.limit_price, stop_price=r.stop_price, **common)
        raise ValidationError(f"Alpaca does not take '{r.order_type}' orders.", field="order_type")

    def _bracket(self, r: OrderRequest) -> dict[str, Any]:
        b = r.bracket
        if len(b.take_profits) > self.max_bracket_take_profits:
            raise ValidationError(
                "Alpaca holds one take-profit per bracket; place the other take-profits as separate orders.",
                field="bracket",
            )
        out: dict[str, Any] = {}
        if b.take_profits:
            out["take_profit"] = TakeProfitRequest(limit_price=b.take_profits[0][0])
        if b.stop_loss is not None:
            out["stop_loss"] = StopLossRequest(stop_price=b.stop_loss)
        if out:
            out["order_class"] = OrderClass.BRACKET if len(out) == 2 else OrderClass.OTO
        return out

    async def _with_next_open(self, exc: MarketClosed) -> MarketClosed:
        try:
            _open, next_open = await self.market_is_open()
        except Exception:  # the clock is a courtesy; the refusal stands without it
            return exc
        return MarketClosed(f"{exc.message} The market opens again at {next_open}.") if next_open else exc

    async def order_status(self, client_order_id: str) -> OrderSnapshot:
        return self._snapshot(await self._current(client_order_id), client_order_id)

    async def _current(self, client_order_id: str) -> dict:
        """The live version of an order (or of a bracket leg, by our name): the original, or its replacement."""
        raw = await self._find(client_order_id)
        for _ in range(_REPLACE_HOPS):
            if raw.get("status") == "rejected" and raw.get("replaces") and client_order_id in self._replacements:
                # Alpaca rejects a replacement whose original filled first: the original is the truth
                self._replacements.pop(client_order_id)
                raw = await self._call(self._client.get_order_by_id, str(raw["replaces"]))
                continue
            if raw.get("status") != "replaced" or not raw.get("replaced_by"):
                break
            raw = await self._call(self._client.get_order_by_id, str(raw["replaced_by"]))
        return raw

    async def _find(self, client_order_id: str) -> dict:
        if client_order_id in self._replacements:
            return await self._call(self._client.get_order_by_id, self._replacements[client_order_id])
        if client_order_id in self._leg_ids:
            return await self._call(self._client.get_order_by_id, self._leg_ids[client_order_id])
        try:
            return await self._call(self._client.get_order_by_client_id, client_order_id)
        except OrderNotFound as exc:
            leg = await self._leg(client_order_id)
            if leg is None:
                raise OrderNotFound(f"Alpaca has no order with client id {client_order_id}.") from exc
            return leg

    async def _leg(self, name: str) -> dict | None:
        """A bracket leg by our name: look its entry up by client id, then read the entry's legs."""
        entry_id = entry_of_leg(name)
        if entry_id is None:
            return None
        try:
            entry = await self._call(self._client.get_order_by_client_id, entry_id)
        except OrderNotFound:
            return None
        if entry.get("legs") is None and entry.get("order_class") in _MULTI_LEG:
            entry = await self._call(self._client.get_order_by_id, str(entry["id"]), GetOrderByIdRequest(nested=True))
        self._learn(entry, entry_id)
        return next((leg for leg in entry.get("legs") or () if str(leg["id"]) == self._leg_ids.get(name)), None)

    def _learn(self, entry: dict, entry_client_id: str) -> None:
        """Index the legs of a bracket / OTO entry under our names."""
        if entry.get("order_class") not in ("bracket", "oto") or not entry.get("legs"):
            return
        self._not_legs.add(str(entry["id"]))
        for leg in entry["legs"]:
            name = leg_name(entry_client_id, leg)
            if name is not None:
                self._leg_names[str(leg["id"])], self._leg_ids[name] = name, str(leg["id"])

    async def _root(self, raw: dict) -> dict:
        """The first order of a chain of replacements (a replaced leg stays the leg it was)."""
        for _ in range(_REPLACE_HOPS):
            if str(raw["id"]) in self._leg_names or not raw.get("replaces"):
                break
            raw = await self._call(self._client.get_order_by_id, str(raw["replaces"]))
        return raw

    async def _name_of(self, raw: dict) -> str:
        """Our client id for any order Alpaca lists: its root's, or our name for a bracket leg."""
        raw = await self._root(raw)
        order_id = str(raw["id"])
        if order_id not in self._leg_names and order_id not in self._not_legs and raw.get("order_class") in _MULTI_LEG:
            if raw.get("legs"):
                self._learn(raw, raw["client_order_id"])
            else:
                await self._discover_legs(raw)
        return self._leg_names.get(order_id, raw["client_order_id"])

    async def _discover_legs(self, raw: dict) -> None:
        """Index every bracket created around ``raw`` (legs are created with their entry) from one listing."""
        self._not_legs.add(str(raw["id"]))  # asked once; still unnamed afterwards, it keeps its own client id
        after = _timestamp(raw.get("created_at") or raw["submitted_at"]) - timedelta(minutes=1)
        query = GetOrdersRequest(status=QueryOrderStatus.ALL, nested=True, after=after, direction=Sort.ASC, limit=500)
        for entry in await self._call(self._client.get_orders, query):
            if entry.get("legs"):
                self._learn(entry, (await self._root(entry))["client_order_id"])

    async def cancel_order(self, client_order_id: str) -> OrderSnapshot:
        raw = await self._current(client_order_id)
        if _STATUS.get(raw["status"]) in ("filled", "cancelled", "expired", "rejected"):
            return self._snapshot(raw, client_order_id)
        try:
            await self._call(self._client.cancel_order_by_id, str(raw["id"]))
        except OrderNotFound:
            pass
        except Exception as exc:  # "not cancelable": it just filled; report what the venue holds
            if "cancel" not in str(exc).lower():
                raise
        return self._snapshot(await self._call(self._client.get_order_by_id, str(raw["id"])), client_order_id)

    async def replace_order(self, client_order_id: str, *, quantity: Decimal | None = None,
                            limit_price: Decimal | None = None, stop_price: Decimal | None = None) -> OrderSnapshot:
        if quantity is not None and quantity != quantity.to_integral_value():
            raise ValidationError("Alpaca replaces whole-share quantities only; cancel and re-place instead.",
                                  field="quantity")
        raw = await self._current(client_order_id)
        change = ReplaceOrderRequest(qty=int(quantity) if quantity is not None else None,
                                     limit_price=limit_price, stop_price=stop_price)
        new = await self._call(self._client.replace_order_by_id, str(raw["id"]), change)
        self._replacements[client_order_id] = str(new["id"])  # read it, not the old one still pending_replace
        if str(raw["id"]) in self._leg_names:
            self._leg_names[str(new["id"])] = client_order_id
        return self._snapshot(new, client_order_id)

    async def open_orders(self) -> list[OrderSnapshot]:
        query = GetOrdersRequest(status=QueryOrderStatus.OPEN, limit=500, nested=False)
        listed = await self._call(self._client.get_orders, query)
        being_replaced = {str(raw["replaces"]) for raw in listed if raw.get("replaces")}
        out = []
        for raw in listed:
            if raw.get("status") == "pending_replace" and str(raw["id"]) in being_replaced:
                continue  # its replacement, listed too, is the order under our name now
            out.append(self._snapshot(raw, await self._name_of(raw)))
        return out

    async def fills_since(self, since: datetime) -> list[tuple[str, VenueFill]]:
        activities = await self._fill_activities(since)
        client_ids: dict[str, str] = {}
        out = []
        for act in activities:
            order_id = str(act["order_id"])
            if order_id not in client_ids:
                raw = await self._call(self._client.get_order_by_id, order_id)
                client_ids[order_id] = await self._name_of(raw)
            out.append((client_ids[order_id], VenueFill(
                fill_id=str(act["id"]), quantity=D(act["qty"]), price=D(act["price"]), fee=Decimal("0"),
                filled_at=_timestamp(act["transaction_time"]),
            )))
        return out

    async def _fill_activities(self, since: datetime, page_size: int = 100, max_pages: int = 50) -> list[dict]:
        params: dict[str, Any] = {"after": since.isoformat(), "direction": "asc", "page_size": page_size}
        out: list[dict] = []
        for _ in range(max_pages):
            page = await self._call(self._client.get, "/account/activities/FILL", dict(params)) or []
            out.extend(page)
            if len(page) < page_size:
                break
            params["page_token"] = page[-1]["id"]
        return out

    def _snapshot(self, raw: dict, client_order_id: str) -> OrderSnapshot:
        filled = D(raw.get("filled_qty")) or Decimal("0")
        status = _STATUS.get(raw.get("status"), "submitted")
        if status == "submitted" and filled > 0:
            status = "partially_filled"
        avg = D(raw.get("filled_avg_price"))
        return OrderSnapshot(
            client_order_id=client_order_id, broker_order_id=str(raw["id"]), symbol=raw.get("symbol") or "",
            side=raw.get("side") or "buy", quantity=D(raw.get("qty")) or Decimal("0"), status=status,
            filled_quantity=filled, avg_fill_price=avg if filled > 0 else None,
            reject_reason=raw.get("status") if status == "rejected" else None,
        )

    async def close(self) -> None:
        for client in (self._client, self._stocks, self._options):
            await asyncio.to_thread(client._session.close)


def _factory(**kwargs: Any) -> AlpacaAdapter:
    return AlpacaAdapter(**kwargs)


register("alpaca", _factory, AlpacaAdapter.capabilities)
