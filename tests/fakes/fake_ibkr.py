"""A loopback IB Gateway speaking the TWS API socket protocol (server version 176).

Each message is a 4-byte big-endian length followed by NUL-terminated
fields.  The fake does what ib_async needs to connect, trade and, as a NEW
connection after a restart, learn what earlier sessions did:

* handshake (``API\\0`` + version range -> ``176\\0<time>\\0``), start API
  (71) -> managed accounts (15) + next valid id (9); each session keeps its
  client id, and the orders it places are that client's;
* order descriptions, encoded field by field in ib_async's decoder order
  (``open_order_message`` / ``completed_order_message``): ``openOrder`` (5)
  + orderStatus (3) for each working order (Submitted / PreSubmitted) in
  answer to open orders (5: this client's own orders) and all open orders
  (16: every client's), then openOrderEnd (53); ``completedOrder`` (101) for
  each filled or cancelled order in answer to completed orders (99; with
  apiOnly the orders made in TWS are left out), then completedOrdersEnd
  (102).  They carry the contract, side, quantity, type, limit / stop price,
  TIF, OCA group, ``orderRef`` (our client order id), parentId (openOrder)
  or parentPermId (completedOrder, which has no orderId at all, as at IB)
  and the filled quantity (completedOrder);
* startup requests answered so ``connectAsync`` completes at once:
  positions (61 -> 61.../62), account updates (6 -> 6.../54), multi-account
  updates (76 -> 74), executions (7 -> 11 + 59 .../55, every client's);
* contract details (9 -> 10/52, or error 200 for an unknown symbol);
* place order (3) -> openOrder (5) and order status (3) Submitted, then
  execution (11), commission report (59) and status Filled (or a partial
  fill, a resting order, or error 201 when the cash does not cover it);
  a bracket's parent placed with transmit=0 waits (PreSubmitted) until its
  last leg arrives with transmit=1, then goes out with its legs (as at IB);
  children of a bracket (parentId) wait as PreSubmitted, and a child's fill
  cancels its siblings (IB links attached orders one-cancels-all); a second
  placeOrder of the same id is a modification; cancel (4) -> status
  Cancelled; with ``read_only`` every order is refused with 321 (the
  gateway's "Read-Only API" setting);
* market data snapshot (1 with snapshot=1) -> tick prices (1: bid, ask,
  last, close at the symbol's price, or ``ticks[symbol]``) then
  tickSnapshotEnd (57); ``market_data_subscribed`` False answers 354 as IB
  does for an account without the subscription;
* ``push_fill(order_id)`` fills a working order as the venue would and tells
  the session of the client that placed it (none, if it is not connected);
  ``trade_by_hand(symbol, action, qty)`` is the member trading in TWS: an
  order of client 0 with orderId 0 and no orderRef, filled at once;
  forgetting an order (a DAY order gone overnight) is ``del orders[id]``;
* ``push_error(code, text)`` sends a system message such as 1100 / 2110 /
  1300 to every client; ``drop_clients()`` closes their sockets;
* ``fail_next[msg_id] = (code, text)`` answers the next request of that kind
  with an error (texts in ``tests/fixtures/ibkr/errors.json``), ``silent``
  leaves requests unanswered until ``answer_held()``.

Not spoken: auto open orders (15, client 0 binding TWS orders; accepted,
never answered, as IB only uses it to bind future orders); live order
updates to sessions other than the placing client's; combo (BAG),
delta-neutral, scale, algo and conditional order fields (always announced
absent); streaming market data and delayed data (type 58); option contract
details; what-if orders; option chains.
"""

from __future__ import annotations

import asyncio
import itertools
import struct
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal

from fakes.loopback import fmt, load_fixture

SERVER_VERSION = 176
WORKING = ("Submitted", "PreSubmitted")   # reported by openOrder (5); Filled / Cancelled by completedOrder (101)


def encode(*fields) -> bytes:
    payload = "".join(f"{'' if f is None else f}\0" for f in fields).encode()
    return struct.pack(">I", len(payload)) + payload


@dataclass
class FakeIbOrder:
    order_id: int
    perm_id: int
    client_id: int
    symbol: str
    action: str
    quantity: Decimal
    order_type: str
    limit_price: Decimal | None
    aux_price: Decimal | None
    order_ref: str
    parent_id: int
    tif: str = "DAY"
    oca_group: str = ""
    oca_type: int = 0
    status: str = "Submitted"
    filled: Decimal = Decimal("0")
    avg_price: Decimal = Decimal("0")
    executions: list[dict] = field(default_factory=list)
    completed_at: datetime | None = None

    @property
    def working(self) -> bool:
        return self.status in WORKING

    def end(self, status: str) -> None:
        """Filled or cancelled: from now on IB reports it as a completed order (101), not an open one."""
        self.status, self.completed_at = status, datetime.now(timezone.utc)


# --- order descriptions: openOrder (5) and completedOrder (101) ----------------------------
# The field order is ib_async's decoder (``Decoder.openOrder`` / ``Decoder.completedOrder``)
# for server version 176, which is the order TWS writes them in.  An empty field is read as
# the attribute's default (UNSET_DOUBLE for an absent price, 0 for a flag), as TWS leaves it.
# Every optional block is announced by a field this fake leaves empty or 0 (no delta-neutral
# order, no combo legs, no scale / hedge / algo / conditions), so the block is absent.

def _contract_fields(o: FakeIbOrder, c: dict) -> list:
    return [c["conId"], o.symbol, c["secType"],
            "", "", "", "",                              # lastTradeDate, strike, right, multiplier: a stock has none
            c["exchange"], c["currency"], o.symbol, c["tradingClass"]]  # localSymbol = symbol for a stock


def _order_head(o: FakeIbOrder, account: str) -> list:
    """action ... orderRef: the same run of fields at the start of both messages."""
    return [o.action, fmt(o.quantity), o.order_type,
            fmt(o.limit_price) if o.limit_price is not None else "",   # lmtPrice
            fmt(o.aux_price) if o.aux_price is not None else "",       # auxPrice (a stop's trigger)
            o.tif, o.oca_group, account,
            "O",                                                       # openClose
            0,                                                         # origin: 0 = customer
            o.order_ref]                                               # orderRef: our client order id


def open_order_message(o: FakeIbOrder, c: dict, account: str) -> bytes:
    """``openOrder`` (5): the full description of a working order, sent before its orderStatus."""
    return encode(
        5, o.order_id, *_contract_fields(o, c), *_order_head(o, account),
        o.client_id, o.perm_id,
        0, 0, 0, "",                  # outsideRth, hidden, discretionaryAmt, goodAfterTime
        "",                           # sharesAllocation (deprecated, skipped by the decoder)
        "", "", "", "",               # faGroup, faMethod, faPercentage, faProfile (server < 177)
        "", "", "", "",               # modelCode, goodTillDate, rule80A, percentOffset
        "", 0, "", -1,                # settlingFirm, shortSaleSlot, designatedLocation, exemptCode
        0, "", "", "",                # auctionStrategy, startingPrice, stockRefPrice, delta
        "", "", "",                   # stockRangeLower, stockRangeUpper, displaySize
        0, 0, 0, "",                  # blockOrder, sweepToFill, allOrNone, minQty
        o.oca_type, 0, 0, "",         # ocaType, eTradeOnly, firmQuoteOnly, nbboPriceCap
        o.parent_id,                  # parentId: the entry a bracket leg belongs to
        0, "", "",                    # triggerMethod, volatility, volatilityType
        "", "",                       # deltaNeutralOrderType (none: no delta-neutral block), its auxPrice
        0, "", "", "", "", "",        # continuousUpdate, referencePriceType, trailStopPrice, trailingPercent,
                                      # basisPoints, basisPointsType
        "",                           # comboLegsDescrip
        0, 0, 0,                      # combo legs, order combo legs, smart combo routing params: none
        "", "", "",                   # scaleInitLevelSize, scaleSubsLevelSize, scalePriceIncrement (unset: no block)
        "",                           # hedgeType (none: no hedgeParam)
        0, "", "", 0,                 # optOutSmartRouting, clearingAccount, clearingIntent, notHeld
        0,                            # delta-neutral contract present: no
        "",                           # algoStrategy (none: no params)
        0, 0,                         # solicited, whatIf
        o.status,                     # orderState.status
        *[""] * 9,                    # init/maint margin and equity with loan: before, change, after
        "", "", "", "", "",           # commission, min, max, currency, warningText
        0, 0,                         # randomizeSize, randomizePrice
        0,                            # conditions: none
        "", "", "", "",               # adjustedOrderType, triggerPrice, trailStopPrice, lmtPriceOffset
        "", "", "", 0,                # adjustedStopPrice, adjustedStopLimitPrice, adjustedTrailingAmount,
                                      # adjustableTrailingUnit
        "", "", "",                   # softDollarTier name, value, displayName
        "", 0, 0, 0, "",              # cashQty, dontUseAutoPriceForHedge, isOmsContainer,
                                      # discretionaryUpToLimitPrice, usePriceMgmtAlgo
        "",                           # duration (server >= 159)
        "",                           # postToAts (>= 160)
        0,                            # autoCancelParent (>= 162)
        "", "", "", "", "",           # minTradeQty, minCompeteSize, competeAgainstBestOffset,
                                      # midOffsetAtWhole, midOffsetAtHalf (>= 170)
    )


def completed_order_message(o: FakeIbOrder, c: dict, account: str, parent_perm_id: int) -> bytes:
    """``completedOrder`` (101): a filled or cancelled order; it carries no orderId, clientId or parentId
    (IB's permanent ids instead: ``permId``, ``parentPermId``) and the filled quantity."""
    return encode(
        101, *_contract_fields(o, c), *_order_head(o, account),
        o.perm_id,
        0, 0, 0, "",                  # outsideRth, hidden, discretionaryAmt, goodAfterTime
        "", "", "", "",               # faGroup, faMethod, faPercentage, faProfile (server < 177)
        "", "", "", "",               # modelCode, goodTillDate, rule80A, percentOffset
        "", 0, "", -1,                # settlingFirm, shortSaleSlot, designatedLocation, exemptCode
        "", "", "",                   # startingPrice, stockRefPrice, delta
        "", "", "",                   # stockRangeLower, stockRangeUpper, displaySize
        0, 0, "", o.oca_type,         # sweepToFill, allOrNone, minQty, ocaType
        0, "", "",                    # triggerMethod, volatility, volatilityType
        "", "",                       # deltaNeutralOrderType (none), deltaNeutralAuxPrice
        0, "", "", "",                # continuousUpdate, referencePriceType, trailStopPrice, trailingPercent
        "",                           # comboLegsDescrip
        0, 0, 0,                      # combo legs, order combo legs, smart combo routing params: none
        "", "", "",                   # scaleInitLevelSize, scaleSubsLevelSize, scalePriceIncrement (unset)
        "",                           # hedgeType (none)
        "", "", 0,                    # clearingAccount, clearingIntent, notHeld
        0,                            # delta-neutral contract present: no
        "",                           # algoStrategy (none)
        0,                            # solicited
        o.status,                     # orderState.status: Filled / Cancelled
        0, 0,                         # randomizeSize, randomizePrice
        0,                            # conditions: none
        "", "", "", 0, 0,             # trailStopPrice, lmtPriceOffset, cashQty, dontUseAutoPriceForHedge,
                                      # isOmsContainer
        "",                           # autoCancelDate
        fmt(o.filled),                # filledQuantity
        "", 0, "", 0, 0,              # refFuturesConId, autoCancelParent, shareholder, imbalanceOnly,
                                      # routeMarketableToBbo
        parent_perm_id,               # parentPermId
        o.completed_at.strftime("%Y%m%d %H:%M:%S UTC") if o.completed_at else "",  # completedTime
        f"Filled Size: {fmt(o.filled)}" if o.status == "Filled" else "Cancelled by Trader",  # completedStatus
        "", "", "", "", "",           # minTradeQty, minCompeteSize, competeAgainstBestOffset,
                                      # midOffsetAtWhole, midOffsetAtHalf (>= 170)
    )


class FakeIbGateway:
    def __init__(self, *, account: str = "DU1234567", prices: dict[str, Decimal] | None = None,
                 cash: Decimal = Decimal("100000")) -> None:
        self.account = account
        self.prices = prices or {"AAPL": Decimal("190.12"), "MSFT": Decimal("420.50")}
        self.contracts = load_fixture("ibkr", "contracts.json")
        self.cash = cash
        self.positions: dict[str, tuple[Decimal, Decimal]] = {}
        self.orders: dict[int, FakeIbOrder] = {}
        self.next_fill = "full"  # "full" | "partial" | "none"
        self.read_only = False
        self.market_data_subscribed = True
        self.ticks: dict[str, dict[int, Decimal]] = {}  # symbol -> {tick type: price}, instead of the default
        self.received: list[list[str]] = []
        # message id -> (code, text): the next such request is answered with that error instead
        # (``errors.json``: pacing 100, market closed, size, permission ...)
        self.fail_next: dict[int, tuple[int, str]] = {}
        # message ids not answered at all (a gateway that hangs); ``answer_held`` answers them late
        self.silent: set[int] = set()
        self._held: list[tuple[asyncio.StreamWriter, list[str]]] = []
        self._writers: list[asyncio.StreamWriter] = []
        self._client_of: dict[asyncio.StreamWriter, int] = {}  # each session's API client id (start API, 71)
        self._server: asyncio.base_events.Server | None = None
        self._untransmitted: set[int] = set()  # bracket parents placed with transmit=0, sent with their last leg
        self._perm_ids = itertools.count(900001)
        self._exec_ids = itertools.count(1)
        self.port = 0

    # --- lifecycle -------------------------------------------------------------------
    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        await self.drop_clients()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def drop_clients(self) -> None:
        for w in list(self._writers):
            w.close()
        self._writers.clear()
        await asyncio.sleep(0.05)

    async def push_fill(self, order_id: int, qty: Decimal | None = None, price: Decimal | None = None) -> None:
        """The venue fills a working order; the session of the client that placed it hears of it (as at IB)."""
        o = self.orders[order_id]
        msgs = self.fill(order_id, qty or (o.quantity - o.filled),
                         price or o.limit_price or o.aux_price or self.prices[o.symbol])
        await self._tell(o.client_id, msgs)

    async def trade_by_hand(self, symbol: str, action: str, qty: Decimal, price: Decimal | None = None) -> FakeIbOrder:
        """The member trades in TWS itself: a market order of client 0 with no orderRef, filled at once.

        IB reports such an order with orderId 0 (``orderKey`` then goes by permId); the fake files
        it under ``-permId`` so it does not collide with the API's ids.
        """
        perm_id = next(self._perm_ids)
        o = FakeIbOrder(order_id=0, perm_id=perm_id, client_id=0, symbol=symbol, action=action, quantity=qty,
                        order_type="MKT", limit_price=None, aux_price=None, order_ref="", parent_id=0)
        self.orders[-perm_id] = o
        await self._tell(0, self.fill(-perm_id, qty, price or self.prices[symbol]))
        return o

    async def _tell(self, client_id: int, msgs: list[bytes]) -> None:
        for w in [w for w, cid in self._client_of.items() if cid == client_id]:
            w.write(b"".join(msgs))
            await w.drain()
        await asyncio.sleep(0.05)

    async def answer_held(self) -> None:
        """Answer, late, the requests swallowed while their message id was ``silent``."""
        held, self._held = self._held, []
        for writer, fields in held:
            for msg in self._answer(fields, writer):
                writer.write(msg)
            await writer.drain()
        await asyncio.sleep(0.05)

    async def push_error(self, code: int, text: str, req_id: int = -1) -> None:
        for w in self._writers:
            w.write(encode(4, 2, req_id, code, text, ""))
            await w.drain()
        await asyncio.sleep(0.05)

    # --- protocol ------------------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        try:
            assert await reader.readexactly(4) == b"API\0"
            await self._read(reader)  # "v157..178"
            now = datetime.now(timezone.utc).strftime("%Y%m%d %H:%M:%S UTC")
            writer.write(encode(SERVER_VERSION, now))
            while True:
                fields = await self._read(reader)
                self.received.append(fields)
                if int(fields[0]) in self.silent:
                    self._held.append((writer, fields))
                    continue
                for msg in self._answer(fields, writer):
                    writer.write(msg)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, AssertionError):
            pass
        finally:
            if writer in self._writers:
                self._writers.remove(writer)
            self._client_of.pop(writer, None)
            writer.close()

    @staticmethod
    async def _read(reader: asyncio.StreamReader) -> list[str]:
        (size,) = struct.unpack(">I", await reader.readexactly(4))
        return (await reader.readexactly(size)).decode().split("\0")[:-1]

    def _answer(self, f: list[str], writer: asyncio.StreamWriter) -> list[bytes]:
        msg = int(f[0])
        client_id = self._client_of.get(writer, 0)
        if msg in self.fail_next:
            code, text = self.fail_next.pop(msg)
            return [encode(4, 2, int(f[1] if msg == 3 else f[2]), code, text, "")]
        if msg == 71:  # start API
            self._client_of[writer] = int(f[2])
            return [encode(15, 1, self.account), encode(9, 1, 1 + max(self.orders, default=0))]
        if msg == 61:
            return [self._position(s) for s in self.positions] + [encode(62, 1)]
        if msg == 5:  # open orders: those this client placed (client 0 also sees the orders made in TWS)
            return self._open_orders(lambda o: o.client_id == client_id)
        if msg == 16:  # all open orders, whichever client placed them
            return self._open_orders(lambda o: True)
        if msg == 99:  # completed orders (f[1]: apiOnly leaves out the orders made in TWS)
            api_only = f[1] == "1"
            return [self._completed(o) for o in self.orders.values()
                    if not o.working and not (api_only and o.order_id == 0)] + [encode(102)]
        if msg == 6:
            return self._account_values() + [encode(54, 1, self.account)]
        if msg == 76:
            return [encode(74, 1, f[2])]
        if msg == 7:
            out = []
            for o in self.orders.values():
                for e in o.executions:
                    out += [self._execution(int(f[2]), o, e), self._commission(e)]
            return out + [encode(55, 1, f[2])]
        if msg == 9:
            return self._contract_details(int(f[2]), f[4])
        if msg == 1:
            return self._snapshot(int(f[2]), f[4])
        if msg == 3:
            return self._place(f, client_id)
        if msg == 4:
            return self._cancel(int(f[2]))
        return []

    # --- answers ---------------------------------------------------------------------------
    def _contract_details(self, req_id: int, symbol: str) -> list[bytes]:
        c = self.contracts.get(symbol)
        if c is None:
            return [encode(4, 2, req_id, 200, "No security definition has been found for the request", "")]
        return [encode(10, req_id, symbol, c["secType"], "", "0", "", c["exchange"], c["currency"], symbol,
                       c["marketName"], c["tradingClass"], c["conId"], c["minTick"], "", c["orderTypes"],
                       c["validExchanges"], 1, 0, c["longName"], c["primaryExchange"], "", c["industry"],
                       c["category"], c["subcategory"], c["timeZoneId"], c["tradingHours"], c["liquidHours"],
                       "", "", 0, 1, "", "", c["marketRuleIds"], "", c["stockType"], c["minSize"],
                       c["sizeIncrement"], c["suggestedSizeIncrement"]),
                encode(52, 1, req_id)]

    def _snapshot(self, req_id: int, symbol: str) -> list[bytes]:
        if not self.market_data_subscribed:
            return [encode(4, 2, req_id, 354, "Requested market data is not subscribed. Check API status by "
                           "selecting the Account menu then under Management choose Market Data Subscription "
                           "Manager and/or Displaying delayed market data...", "")]
        price = self.prices[symbol]
        ticks = self.ticks.get(symbol) or {1: price - Decimal("0.01"), 2: price + Decimal("0.01"), 4: price, 9: price}
        sized = {1, 2, 4}  # bid, ask, last come with a size; close (9) does not
        return [encode(1, 6, req_id, t, fmt(p), 100 if t in sized else 0, 0) for t, p in ticks.items()] + [
            encode(57, 1, req_id)]

    def _status(self, o: FakeIbOrder) -> bytes:
        return encode(3, o.order_id, o.status, fmt(o.filled), fmt(o.quantity - o.filled), fmt(o.avg_price),
                      o.perm_id, o.parent_id, fmt(o.avg_price), o.client_id, "", 0)

    def _open_orders(self, wanted) -> list[bytes]:
        """openOrder + orderStatus for each working order, then openOrderEnd (53), as TWS answers 5 / 16."""
        out = []
        for o in self.orders.values():
            if o.working and wanted(o):
                out += [self._open_order(o), self._status(o)]
        return out + [encode(53, 1)]

    def _open_order(self, o: FakeIbOrder) -> bytes:
        return open_order_message(o, self.contracts[o.symbol], self.account)

    def _completed(self, o: FakeIbOrder) -> bytes:
        parent = self.orders.get(o.parent_id) if o.parent_id else None
        return completed_order_message(o, self.contracts[o.symbol], self.account, parent.perm_id if parent else "")

    def _place(self, f: list[str], client_id: int) -> list[bytes]:
        """placeOrder (3); the fields read are ib_async's ``Client.placeOrder`` order (non-combo)."""
        order_id, symbol = int(f[1]), f[3]
        if order_id in self.orders:  # modification
            o = self.orders[order_id]
            o.quantity, o.limit_price = Decimal(f[17]), Decimal(f[19]) if f[19] else None
            o.aux_price = Decimal(f[20]) if f[20] else None
            return [self._open_order(o), self._status(o)]
        o = FakeIbOrder(order_id=order_id, perm_id=next(self._perm_ids), client_id=client_id, symbol=symbol,
                        action=f[16], quantity=Decimal(f[17]), order_type=f[18],
                        limit_price=Decimal(f[19]) if f[19] else None, aux_price=Decimal(f[20]) if f[20] else None,
                        tif=f[21], oca_group=f[22], order_ref=f[26], parent_id=int(f[28] or 0),
                        oca_type=int(f[47] or 0))
        price = self.prices.get(symbol)
        if self.read_only:
            return [encode(4, 2, order_id, 321, "Error validating request.-'bN' : cause - The API interface is "
                           "currently in Read-Only mode.", "")]
        if price is None:
            return [encode(4, 2, order_id, 200, "No security definition has been found for the request", "")]
        if o.action == "BUY" and o.quantity * (o.limit_price or price) > self.cash:
            return [encode(4, 2, order_id, 201, "Order rejected - reason:YOUR ORDER IS NOT ACCEPTED. IN ORDER TO "
                           "OBTAIN THE DESIRED POSITION YOUR EQUITY WITH LOAN VALUE [0.00 USD] MUST EXCEED THE "
                           "INITIAL MARGIN [19012.00 USD]", "")]
        self.orders[order_id] = o
        transmit = f[27] != "0"
        if not transmit or o.parent_id:  # not transmitted yet (a bracket's parent), or a leg waiting for it
            o.status = "PreSubmitted"
            out = [self._open_order(o), self._status(o)]
            if not transmit and not o.parent_id:
                self._untransmitted.add(order_id)
            elif transmit and o.parent_id in self._untransmitted:
                out += self._transmit(self.orders[o.parent_id])  # the last leg arrived: IB sends the whole bracket
            return out
        return [self._open_order(o), self._status(o)] + self._execute(o)

    def _transmit(self, o: FakeIbOrder) -> list[bytes]:
        self._untransmitted.discard(o.order_id)
        o.status = "Submitted"
        return [self._status(o)] + self._execute(o)

    def _execute(self, o: FakeIbOrder) -> list[bytes]:
        """A transmitted order fills at once when it is marketable (by ``next_fill``), else rests."""
        price = self.prices[o.symbol]
        out: list[bytes] = []
        mode, self.next_fill = self.next_fill, "full"
        marketable = o.order_type == "MKT" or (o.order_type == "LMT" and (
            (o.action == "BUY" and o.limit_price >= price) or (o.action == "SELL" and o.limit_price <= price)))
        if mode != "none" and marketable:
            qty = o.quantity if mode == "full" else o.quantity / 2
            out += self.fill(o.order_id, qty, o.limit_price or price)
        return out

    def fill(self, order_id: int, qty: Decimal, price: Decimal) -> list[bytes]:
        o = self.orders[order_id]
        exec_id = f"0000e0d5.6656{next(self._exec_ids):04d}.01.01"
        o.avg_price = (o.avg_price * o.filled + price * qty) / (o.filled + qty)
        o.filled += qty
        if o.filled >= o.quantity:
            o.end("Filled")
        when = datetime.now(timezone.utc)
        o.executions.append({"exec_id": exec_id, "qty": qty, "price": price, "time": when, "cum": o.filled,
                             "commission": Decimal("1.00")})
        signed = qty if o.action == "BUY" else -qty
        self.cash -= signed * price + Decimal("1.00")
        held, avg = self.positions.get(o.symbol, (Decimal("0"), Decimal("0")))
        new = held + signed
        self.positions[o.symbol] = (new, ((held * avg + signed * price) / new) if new and held * signed >= 0 else price)
        e = o.executions[-1]
        out = [self._execution(-1, o, e), self._commission(e), self._status(o),
               self._position(o.symbol)]
        if o.status == "Filled":
            for other in self.orders.values():
                if other.parent_id == o.order_id and other.status == "PreSubmitted":
                    other.status = "Submitted"
                    out.append(self._status(other))
                elif o.parent_id and other.parent_id == o.parent_id and other is not o and other.working:
                    other.end("Cancelled")  # the sibling leg of a bracket
                    out.append(self._status(other))
        return out + self._account_values()

    def _cancel(self, order_id: int) -> list[bytes]:
        o = self.orders.get(order_id)
        if o is None or not o.working:
            return [encode(4, 2, order_id, 10148, "OrderId that needs to be cancelled cannot be cancelled", "")]
        o.end("Cancelled")
        out = [self._status(o), encode(4, 2, order_id, 202, "Order Canceled - reason:", "")]
        for child in self.orders.values():
            if child.parent_id == order_id and child.working:
                child.end("Cancelled")
                out.append(self._status(child))
        return out

    def _execution(self, req_id: int, o: FakeIbOrder, e: dict) -> bytes:
        c = self.contracts[o.symbol]
        return encode(11, req_id, o.order_id, c["conId"], o.symbol, c["secType"], "", "0", "", "", c["exchange"],
                      c["currency"], o.symbol, c["tradingClass"], e["exec_id"],
                      e["time"].strftime("%Y%m%d %H:%M:%S UTC"), self.account, c["primaryExchange"],
                      "BOT" if o.action == "BUY" else "SLD", fmt(e["qty"]), fmt(e["price"]), o.perm_id,
                      o.client_id, 0, fmt(e["cum"]), fmt(o.avg_price), o.order_ref, "", "", "", 1)

    @staticmethod
    def _commission(e: dict) -> bytes:
        return encode(59, 1, e["exec_id"], fmt(e["commission"]), "USD", "", "", "")

    def _position(self, symbol: str) -> bytes:
        c = self.contracts[symbol]
        qty, avg = self.positions[symbol]
        return encode(61, 3, self.account, c["conId"], symbol, c["secType"], "", "0", "", "", c["exchange"],
                      c["currency"], symbol, c["tradingClass"], fmt(qty), fmt(avg))

    def _account_values(self) -> list[bytes]:
        held = sum((q * self.prices[s] for s, (q, _) in self.positions.items()), Decimal("0"))
        values = {"NetLiquidation": self.cash + held, "TotalCashValue": self.cash, "BuyingPower": self.cash * 4,
                  "AvailableFunds": self.cash}
        return [encode(6, 2, k, fmt(v), "USD", self.account) for k, v in values.items()] + [
            encode(6, 2, "AccountType", "INDIVIDUAL", "", self.account)]
