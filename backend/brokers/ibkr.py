"""Interactive Brokers through ib_async, talking to an IB Gateway / TWS socket.

The gateway is a long-lived connection that can drop or lose its own
session with IBKR (nightly restarts, a competing login).  The adapter keeps
``status()`` -> ("connected" | "disconnected" | "logged_out", message) up to
date from ib_async's ``disconnectedEvent`` and the system codes 1100/2110
(gateway up but cut off from IBKR: "logged_out"), 1300 (socket port reset)
and 1101/1102 (restored), so the dashboard can say what is wrong.  A call
while logged out raises ``BrokerDisconnected`` (retryable); a call while the
socket is down first tries one reconnect, then raises it.

IB has no client order id: ours travels in ``Order.orderRef`` and is how
orders are found again (``place_order`` returns the existing trade with the
same ref instead of sending a second order).  A new connection (a restart,
or the reconciler's own client id) learns earlier orders from the gateway's
books: open orders of every client (``openOrder``) and today's completed
ones (``completedOrder``, which has no orderId or price: those come from
the order's executions).  An order made in TWS by hand has no orderRef and
goes by IB's permanent id (``permId``).  Refusals arrive asynchronously
(error 201 after ``placeOrder``); ``place_order`` waits ``ack_timeout`` for the
gateway's first answer and raises the translated error if it was a refusal,
or a temporary error if no answer came (the retry finds the same trade).  An
order refused for pacing (100) never lived at IB and is sent again on retry.
Brackets are native (parent + take-profit + stop sent with ``transmit`` on
the last leg; one take-profit: ``max_bracket_take_profits = 1``), and an
``oco_group`` maps to an IB OCA group.  The legs carry the engine's names in
their ``orderRef`` (``<entry>-tp1``, ``<entry>-sl``), so their status, fills
and cancellation go by those names like any other order.

A gateway set to "Read-Only API" refuses every order with code 321; the
adapter remembers it and reports ``AccountInfo.can_trade = False`` from then
on (IB offers no call that tells beforehand).

``quote`` asks for a market data snapshot (``reqMktData`` with
``snapshot=True``) and returns as soon as a last price or a two-sided quote
arrived (IB ends a snapshot within about 11 s); without a market data
subscription the snapshot is empty and the quote is None (the previous close
when that is all IB sent).  OCC option symbols (``AAPL250620C00200000``, with
or without IB's padding) are quoted as the option.
"""

from __future__ import annotations

import asyncio
import re
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from ib_async import IB, ExecutionFilter, LimitOrder, MarketOrder, Option, Stock, StopLimitOrder, StopOrder, Trade
from ib_async.util import UNSET_DOUBLE

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
from backend.brokers.errors_map import IB_PACING_CODES, IB_USER_CANCELLED, translate_ib_rejection
from backend.brokers.rate_limit import IBKR_PUBLISHED_PER_MINUTE, account_key, half_of, shared_bucket
from backend.brokers.registry import register
from backend.errors import (
    BrokerDisconnected,
    ConfigurationError,
    InvalidSymbol,
    OrderNotFound,
    RateLimited,
    TemporaryBrokerError,
    ValidationError,
)

_STATUS = {"Filled": "filled", "Cancelled": "cancelled", "ApiCancelled": "cancelled", "Inactive": "rejected"}
_PENDING = {"PendingSubmit", "ApiPending"}
_LOGGED_OUT_CODES = {1100, 2110}
_RESTORED_CODES = {1101, 1102}
_SOCKET_RESET_CODE = 1300
_READ_ONLY_CODE = 321
_OCC = re.compile(r"^([A-Z]{1,6})\s*(\d{6})([CP])(\d{8})$")


def _dec(value: float | int | None) -> Decimal:
    return Decimal(str(value or 0))


def _price(value: float) -> Decimal | None:
    return Decimal(str(value)) if value == value and value > 0 else None  # IB's "unset" is NaN, "none" is -1


def _ref(order) -> str:
    """The name an order goes by: our client order id (``orderRef``), else IB's permanent id (an order made in
    TWS by hand has no orderRef, and orderId 0 for every API client but 0)."""
    return order.orderRef or str(order.permId or order.orderId)


def _rejection(trade: Trade) -> tuple[int, str] | None:
    """The gateway error that killed an order, if any (202 is a cancel we asked for)."""
    for entry in reversed(trade.log):
        if entry.errorCode and entry.errorCode != IB_USER_CANCELLED:
            return entry.errorCode, entry.message
    return None


class IbkrAdapter(BrokerAdapter):
    name = "ibkr"
    capabilities = Capabilities(
        asset_classes=frozenset({"stock", "etf", "option"}),
        order_types=frozenset({"market", "limit", "stop", "stop_limit"}),
        native_brackets=True,
        native_oco=True,
        fractional=False,
        short_selling=True,
        replace_order=True,
        max_requests_per_minute=half_of(IBKR_PUBLISHED_PER_MINUTE),
        max_bracket_take_profits=1,
        session_status=True,
    )
    max_bracket_take_profits = capabilities.max_bracket_take_profits

    def __init__(self, *, credentials: dict, live: bool = False, base_url: str | None = None,
                 timeout: float = 10.0, ack_timeout: float = 5.0, requests_per_minute: int | None = None,
                 currency: str = "USD", engine=None, broker_account_id=None, **_ignored) -> None:
        host, port = credentials.get("host") or "127.0.0.1", credentials.get("port") or (4001 if live else 4002)
        if base_url:
            host, _, port = base_url.split("://")[-1].rstrip("/").rpartition(":")
        try:
            self.port = int(port)
        except ValueError as exc:
            raise ConfigurationError("The IB Gateway port must be a number.", field="port") from exc
        self.host, self.client_id = host, int(credentials.get("client_id") or 1)
        self.account_code = str(credentials.get("account") or "")
        self.currency, self.timeout, self.ack_timeout = currency, timeout, ack_timeout
        self._ib = IB()
        self._ib.disconnectedEvent += self._on_disconnected
        self._ib.errorEvent += self._on_error
        self._state: tuple[str, str] = ("unknown", "Not connected to the IB Gateway yet.")
        self._details: dict[tuple, Any] = {}
        self._read_only = False
        self._paced = 0  # pacing errors (100 ...) seen, so an empty answer they caused is not "no such contract"
        rate = requests_per_minute or self.capabilities.max_requests_per_minute
        self._bucket = shared_bucket("ibkr", account_key(self.host, self.port, self.account_code), rate)

    # --- connection state ----------------------------------------------------------------
    def status(self) -> tuple[str, str]:
        return self._state

    def _on_disconnected(self) -> None:
        self._state = ("disconnected", f"The connection to the IB Gateway at {self.host}:{self.port} was lost; "
                                       "it is re-opened on the next request.")

    def _on_error(self, req_id: int, code: int, text: str, contract: Any = None) -> None:
        if code in _LOGGED_OUT_CODES:
            self._state = ("logged_out", f"The IB Gateway is running but not connected to IBKR ({code}: {text}). "
                                         "Log in to the gateway again, or wait for it to reconnect.")
        elif code == _SOCKET_RESET_CODE:
            self._state = ("disconnected", f"The IB Gateway reset its API port ({code}); reconnecting.")
        elif code in _RESTORED_CODES:
            self._state = ("connected", f"Connection to IBKR restored ({code}).")
        elif code == _READ_ONLY_CODE and "read-only" in text.lower():
            self._read_only = True
        elif code in IB_PACING_CODES:
            self._paced += 1

    async def _ready(self) -> None:
        if self._state[0] == "logged_out":
            raise BrokerDisconnected(self._state[1])
        if not self._ib.isConnected():
            try:
                await self._ib.connectAsync(self.host, self.port, clientId=self.client_id, timeout=self.timeout,
                                            account=self.account_code)
            except (OSError, asyncio.TimeoutError, ConnectionError) as exc:
                self._state = ("disconnected", f"Cannot reach the IB Gateway at {self.host}:{self.port}: "
                                               f"{type(exc).__name__}. Is it running and logged in?")
                raise BrokerDisconnected(self._state[1]) from exc
            if not self.account_code:
                self.account_code = (self._ib.managedAccounts() or [""])[0]
            self._state = ("connected", f"Connected to the IB Gateway at {self.host}:{self.port}.")
        await self._bucket.acquire()

    async def _wait(self, awaitable, what: str):
        try:
            return await asyncio.wait_for(awaitable, self.timeout)
        except asyncio.TimeoutError as exc:
            raise TemporaryBrokerError(f"The IB Gateway did not answer the {what} request in time.") from exc
        except ConnectionError as exc:
            raise BrokerDisconnected(f"The IB Gateway connection dropped during the {what} request.") from exc

    # --- account ---------------------------------------------------------------------------
    async def validate(self) -> AccountInfo:
        return await self.account()

    async def account(self) -> AccountInfo:
        await self._ready()
        values = {(v.tag, v.currency): v.value for v in self._ib.accountValues(self.account_code)}

        def pick(tag: str) -> Decimal:
            raw = values.get((tag, self.currency)) or values.get((tag, "BASE")) or "0"
            return Decimal(raw)

        return AccountInfo(account_id=self.account_code, currency=self.currency, cash=pick("TotalCashValue"),
                           equity=pick("NetLiquidation"), buying_power=pick("BuyingPower"),
                           can_trade=self._state[0] == "connected" and not self._read_only)

    async def positions(self) -> list[BrokerPosition]:
        await self._ready()
        out = []
        for p in self._ib.positions(self.account_code):
            multiplier = Decimal(p.contract.multiplier or "1")
            out.append(BrokerPosition(symbol=p.contract.localSymbol or p.contract.symbol, quantity=_dec(p.position),
                                      avg_price=_dec(p.avgCost) / multiplier))
        return out

    # --- contracts -------------------------------------------------------------------------
    def _contract(self, symbol: str, asset_class: str, r: OrderRequest | None = None):
        if asset_class == "option":
            if r is None or r.expiry is None or r.strike is None or not r.option_right:
                raise ValidationError("An option order needs an expiry, a strike and a right.", field="symbol")
            return Option(symbol, r.expiry.strftime("%Y%m%d"), float(r.strike), r.option_right[0].upper(), "SMART",
                          currency=self.currency)
        return Stock(symbol, "SMART", self.currency)

    async def _qualify(self, symbol: str, asset_class: str, r: OrderRequest | None = None):
        return await self._details_of(self._contract(symbol, asset_class, r), f"{asset_class} contract for {symbol}")

    async def _details_of(self, contract, what: str):
        key = (contract.symbol, contract.secType, contract.lastTradeDateOrContractMonth, contract.strike,
               contract.right)
        if key not in self._details:
            paced = self._paced
            details = await self._wait(self._ib.reqContractDetailsAsync(contract), "contract details")
            if not details and self._paced > paced:
                raise RateLimited("Interactive Brokers is pacing this connection; requests will resume shortly.")
            if not details:
                raise InvalidSymbol(f"Interactive Brokers has no {what}.")
            self._details[key] = details[0]
        return self._details[key]

    def _quote_contract(self, symbol: str):
        occ = _OCC.match(symbol.upper())
        if occ is None:
            return Stock(symbol, "SMART", self.currency)
        root, yymmdd, right, strike = occ.groups()
        return Option(root, f"20{yymmdd}", int(strike) / 1000, right, "SMART", currency=self.currency)

    async def quote(self, symbol: str) -> Decimal | None:
        await self._ready()
        contract = (await self._details_of(self._quote_contract(symbol), f"contract for {symbol}")).contract
        self._ib.wrapper.tickers.pop(hash(contract), None)  # a fresh Ticker: nothing left from an earlier snapshot
        snapshot = asyncio.ensure_future(self._ib.reqTickersAsync(contract))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        while not snapshot.done() and loop.time() < deadline and self._live_price(contract) is None:
            if not self._ib.isConnected():
                raise BrokerDisconnected("The IB Gateway connection dropped during the market data request.")
            await asyncio.sleep(0.02)
        if not snapshot.done():
            snapshot.cancel()  # IB ends the snapshot by itself; its late answer is ignored
        ticker = self._ib.ticker(contract)
        return self._live_price(contract) or (_price(ticker.close) if ticker else None)

    def _live_price(self, contract) -> Decimal | None:
        ticker = self._ib.ticker(contract)
        return _price(ticker.marketPrice()) if ticker else None

    async def instrument(self, symbol: str, asset_class: str = "stock") -> InstrumentInfo:
        await self._ready()
        d = await self._qualify(symbol, asset_class)
        whole = Decimal("1")  # the API trades whole units (fractional shares need a separate permission)
        return InstrumentInfo(symbol=symbol, asset_class=asset_class, min_quantity=whole, quantity_step=whole,
                              price_tick=_dec(d.minTick) if d.minTick else None, fractional=False)

    # --- orders -------------------------------------------------------------------------------
    def _trade(self, client_order_id: str, trades: list[Trade] | None = None) -> Trade | None:
        matches = [t for t in (self._ib.trades() if trades is None else trades) if _ref(t.order) == client_order_id]
        return matches[-1] if matches else None

    def _order(self, r: OrderRequest, action: str, qty: float):
        if r.order_type == "market":
            order = MarketOrder(action, qty)
        elif r.order_type == "limit":
            order = LimitOrder(action, qty, float(r.limit_price))
        elif r.order_type == "stop":
            order = StopOrder(action, qty, float(r.stop_price))
        elif r.order_type == "stop_limit":
            order = StopLimitOrder(action, qty, float(r.limit_price), float(r.stop_price))
        else:
            raise ValidationError(f"IBKR does not take '{r.order_type}' orders here.", field="order_type")
        order.orderRef, order.account = r.client_order_id, self.account_code
        order.tif = {"gtc": "GTC", "ioc": "IOC", "opg": "OPG", "fok": "FOK"}.get(r.time_in_force.lower(), "DAY")
        if r.oco_group:
            order.ocaGroup, order.ocaType = r.oco_group, 1  # cancel the rest of the group on a fill
        return order

    async def place_order(self, request: OrderRequest) -> OrderSnapshot:
        if request.quantity != request.quantity.to_integral_value():
            raise ValidationError("IBKR orders through the API are in whole units.", field="quantity")
        await self._ready()
        existing = self._trade(request.client_order_id)
        if existing is not None and not self._refused_for_now(existing):
            return await self._answer(existing)
        details = await self._qualify(request.symbol, request.asset_class, request)
        action = "BUY" if request.side == "buy" else "SELL"
        parent = self._order(request, action, float(request.quantity))
        legs = self._bracket_legs(request, parent) if request.bracket else []
        if legs:
            parent.orderId, parent.transmit = self._ib.client.getReqId(), False
            for leg in legs:
                leg.parentId, leg.transmit = parent.orderId, False
            legs[-1].transmit = True  # IB sends the whole bracket when the last leg arrives
        trade = self._ib.placeOrder(details.contract, parent)
        for leg in legs:
            self._ib.placeOrder(details.contract, leg)
        return await self._answer(trade)

    async def _answer(self, trade: Trade) -> OrderSnapshot:
        """The gateway's first answer to an order: its snapshot, or the refusal translated.

        No answer within ``ack_timeout`` is a temporary error: the engine asks
        again later under the same ``orderRef``, which finds this trade (and
        its late answer) instead of sending a second order.
        """
        await self._await_answer(trade)
        if trade.orderStatus.status in _PENDING:
            raise TemporaryBrokerError("The IB Gateway did not acknowledge the order in time. It is checked again "
                                       "under the same reference and never sent twice.")
        refusal = self._refusal(trade)
        if refusal is not None:
            raise refusal
        return self._snapshot(trade)

    def _refusal(self, trade: Trade):
        rejection = _rejection(trade)
        if rejection and trade.orderStatus.filled == 0 and self._snapshot(trade).status == "rejected":
            return translate_ib_rejection(*rejection)
        return None

    def _refused_for_now(self, trade: Trade) -> bool:
        """Refused for a temporary reason (pacing): the order never lived at IB, so it is sent again."""
        refusal = self._refusal(trade)
        return refusal is not None and refusal.retryable

    def _bracket_legs(self, r: OrderRequest, parent) -> list:
        b = r.bracket
        if len(b.take_profits) > self.max_bracket_take_profits:
            raise ValidationError("IBKR brackets here hold one take-profit; place the others as separate orders.",
                                  field="bracket")
        exit_action = "SELL" if parent.action == "BUY" else "BUY"
        legs = []
        if b.take_profits:
            legs.append(LimitOrder(exit_action, parent.totalQuantity, float(b.take_profits[0][0]),
                                   orderRef=f"{r.client_order_id}-tp1", tif="GTC", account=self.account_code))
        if b.stop_loss is not None:
            legs.append(StopOrder(exit_action, parent.totalQuantity, float(b.stop_loss),
                                  orderRef=f"{r.client_order_id}-sl", tif="GTC", account=self.account_code))
        return legs

    async def _await_answer(self, trade: Trade) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.ack_timeout
        while trade.orderStatus.status in _PENDING and loop.time() < deadline:
            if not self._ib.isConnected():
                raise BrokerDisconnected("The IB Gateway connection dropped while the order was being sent.")
            await asyncio.sleep(0.01)

    async def order_status(self, client_order_id: str) -> OrderSnapshot:
        await self._ready()
        trade = self._trade(client_order_id)
        if trade is None or (not trade.isDone() and trade.order.clientId != self.client_id):
            trade = await self._from_the_books(client_order_id)
        if trade is None:
            raise OrderNotFound(f"Interactive Brokers has no order with reference {client_order_id}.")
        return self._snapshot(trade)

    async def _from_the_books(self, client_order_id: str) -> Trade | None:
        """The gateway's own books: every client's open orders, then today's completed orders.

        Needed for an order placed by an earlier connection or by another client
        id (the reconciliation session): IB tells only the placing client about
        an order's progress, and ib_async does not update a trade it already
        holds from a completedOrder, so the answers are read, not the cache.  A
        completedOrder has no price: that comes from the order's executions,
        asked for when this session has not seen them.
        """
        found = self._trade(client_order_id, await self._wait(self._ib.reqAllOpenOrdersAsync(), "open orders"))
        if found is None:
            completed = await self._wait(self._ib.reqCompletedOrdersAsync(False), "completed orders")
            found = self._trade(client_order_id, completed)
            done = found.order.filledQuantity if found is not None else 0
            if 0 < done < UNSET_DOUBLE and not self._fills_of(found):  # filled since this session's startup
                await self._wait(self._ib.reqExecutionsAsync(), "executions")
        return found

    async def cancel_order(self, client_order_id: str) -> OrderSnapshot:
        snapshot = await self.order_status(client_order_id)
        trade = self._trade(client_order_id)
        if snapshot.status in ("filled", "cancelled", "rejected", "expired"):
            return snapshot
        self._ib.cancelOrder(trade.order)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.ack_timeout
        while not trade.isDone() and loop.time() < deadline:
            await asyncio.sleep(0.01)
        return self._snapshot(trade)

    async def replace_order(self, client_order_id: str, *, quantity: Decimal | None = None,
                            limit_price: Decimal | None = None, stop_price: Decimal | None = None) -> OrderSnapshot:
        await self._ready()
        trade = self._trade(client_order_id)
        if trade is None:
            raise OrderNotFound(f"Interactive Brokers has no order with reference {client_order_id}.")
        if quantity is not None:
            trade.order.totalQuantity = float(quantity)
        if limit_price is not None:
            trade.order.lmtPrice = float(limit_price)
        if stop_price is not None:
            trade.order.auxPrice = float(stop_price)
        before = len(trade.log)
        self._ib.placeOrder(trade.contract, trade.order)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.ack_timeout
        while len(trade.log) <= before + 1 and loop.time() < deadline:
            await asyncio.sleep(0.01)
        return self._snapshot(trade)

    async def open_orders(self) -> list[OrderSnapshot]:
        await self._ready()
        return [self._snapshot(t) for t in self._ib.openTrades()]

    async def fills_since(self, since: datetime) -> list[tuple[str, VenueFill]]:
        await self._ready()
        utc = since.astimezone(timezone.utc)
        fills = await self._wait(
            self._ib.reqExecutionsAsync(ExecutionFilter(time=utc.strftime("%Y%m%d-%H:%M:%S"))), "executions")
        # Commission reports update the session's own Fill objects, not the copies a request returns.
        known = {f.execution.execId: f for f in self._ib.fills()}
        out = []
        for f in sorted(fills, key=lambda f: f.execution.time):
            if f.execution.time < utc:
                continue
            ref = f.execution.orderRef or self._ref_of(f.execution)
            out.append((ref, self._venue_fill(known.get(f.execution.execId, f))))
        return out

    def _ref_of(self, execution) -> str:
        trade = self._ib.wrapper.permId2Trade.get(execution.permId) or next(
            (t for t in self._ib.trades() if t.order.orderId == execution.orderId > 0), None)
        return _ref(trade.order) if trade else str(execution.permId or execution.orderId)

    def _fills_of(self, trade: Trade) -> list:
        """The trade's executions; for an order of an earlier session, those the gateway reported (by permId)."""
        if trade.fills or not trade.order.permId:
            return trade.fills
        return [f for f in self._ib.fills() if f.execution.permId == trade.order.permId]

    @staticmethod
    def _venue_fill(f) -> VenueFill:
        return VenueFill(fill_id=f.execution.execId, quantity=_dec(f.execution.shares), price=_dec(f.execution.price),
                         fee=_dec(f.commissionReport.commission), filled_at=f.execution.time.astimezone(timezone.utc))

    def _snapshot(self, trade: Trade) -> OrderSnapshot:
        """Our view of a trade.  A completedOrder (an order of an earlier session) carries neither an orderId
        nor an average price, only the filled quantity: both are taken from its executions."""
        st = trade.orderStatus
        filled = _dec(st.filled)
        done = trade.order.filledQuantity  # a completed order of an earlier session carries its fill here
        if not filled and done == done and 0 < done < UNSET_DOUBLE:
            filled = _dec(done)
        fills = self._fills_of(trade)
        avg = _price(st.avgFillPrice) if filled else None
        if filled and avg is None and fills:
            avg = (sum((_dec(f.execution.shares) * _dec(f.execution.price) for f in fills), Decimal(0))
                   / sum((_dec(f.execution.shares) for f in fills), Decimal(0)))
        order_id = trade.order.orderId or next((f.execution.orderId for f in fills if f.execution.orderId > 0), 0)
        status = _STATUS.get(st.status, "submitted")
        rejection = _rejection(trade)
        reason = None
        refused = status == "cancelled" or (st.status == "ValidationError" and not st.permId)  # never accepted
        if refused and rejection and filled == 0:
            status, reason = "rejected", f"{rejection[0]}: {rejection[1]}"
        if status == "submitted" and filled > 0:
            status = "partially_filled"
        c = trade.contract
        return OrderSnapshot(
            client_order_id=_ref(trade.order), broker_order_id=str(order_id or trade.order.permId),
            symbol=c.symbol if c.secType == "STK" else (c.localSymbol or c.symbol),
            side="buy" if trade.order.action == "BUY" else "sell", quantity=_dec(trade.order.totalQuantity),
            status=status, filled_quantity=filled, avg_fill_price=avg,
            fills=tuple(self._venue_fill(f) for f in fills), reject_reason=reason,
        )

    async def close(self) -> None:
        self._ib.disconnectedEvent -= self._on_disconnected
        self._ib.disconnect()


def _factory(**kwargs: Any) -> IbkrAdapter:
    return IbkrAdapter(**kwargs)


register("ibkr", _factory, IbkrAdapter.capabilities)
