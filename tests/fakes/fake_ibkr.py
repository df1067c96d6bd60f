"""A loopback IB Gateway speaking the TWS API socket protocol (server version 176).

Each message is a 4-byte big-endian length followed by NUL-terminated
fields.  The fake does what ib_async needs to connect and trade:

* handshake (``API\\0`` + version range -> ``176\\0<time>\\0``), start API
  (71) -> managed accounts (15) + next valid id (9);
* startup requests answered so ``connectAsync`` completes at once:
  positions (61 -> 61.../62), open orders (5 and 16 -> 53), completed orders
  (99 -> 102), account updates (6 -> 6.../54), multi-account updates
  (76 -> 74), executions (7 -> 11.../55);
* contract details (9 -> 10/52, or error 200 for an unknown symbol);
* place order (3) -> order status (3) Submitted, then execution (11),
  commission report (59) and status Filled (or a partial fill, a resting
  order, or error 201 when the cash does not cover it); children of a
  bracket (parentId) wait as PreSubmitted, and a child's fill cancels its
  siblings (IB links attached orders one-cancels-all); cancel (4) -> status
  Cancelled; with ``read_only`` every order is refused with 321 (the
  gateway's "Read-Only API" setting);
* market data snapshot (1 with snapshot=1) -> tick prices (1: bid, ask,
  last, close at the symbol's price, or ``ticks[symbol]``) then
  tickSnapshotEnd (57); ``market_data_subscribed`` False answers 354 as IB
  does for an account without the subscription;
* ``push_fill(order_id)`` fills a working order as the venue would and sends
  the messages to the connected clients;
* ``push_error(code, text)`` sends a system message such as 1100 / 2110 /
  1300 to every client; ``drop_clients()`` closes their sockets;
* ``fail_next[msg_id] = (code, text)`` answers the next request of that kind
  with an error (texts in ``tests/fixtures/ibkr/errors.json``), ``silent``
  leaves requests unanswered until ``answer_held()``.

Not spoken (tested at the adapter's seams instead): ``openOrder`` (5) and
``completedOrder`` (101), the long order-description messages that let a
NEW connection learn about orders placed earlier; streaming market data and
delayed data (type 58); option contract details; what-if orders; option chains.
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
    status: str = "Submitted"
    filled: Decimal = Decimal("0")
    avg_price: Decimal = Decimal("0")
    executions: list[dict] = field(default_factory=list)


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
        # message id -> callable run before answering; lets a test stand in for messages the fake
        # does not encode (e.g. feed ib_async's wrapper.completedOrder when request 99 arrives)
        self.hooks: dict[int, object] = {}
        # message id -> (code, text): the next such request is answered with that error instead
        # (``errors.json``: pacing 100, market closed, size, permission ...)
        self.fail_next: dict[int, tuple[int, str]] = {}
        # message ids not answered at all (a gateway that hangs); ``answer_held`` answers them late
        self.silent: set[int] = set()
        self._held: list[tuple[asyncio.StreamWriter, list[str]]] = []
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.base_events.Server | None = None
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
        o = self.orders[order_id]
        msgs = self.fill(order_id, qty or (o.quantity - o.filled),
                         price or o.limit_price or o.aux_price or self.prices[o.symbol])
        for w in self._writers:
            w.write(b"".join(msgs))
            await w.drain()
        await asyncio.sleep(0.05)

    async def answer_held(self) -> None:
        """Answer, late, the requests swallowed while their message id was ``silent``."""
        held, self._held = self._held, []
        for writer, fields in held:
            for msg in self._answer(fields):
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
                for msg in self._answer(fields):
                    writer.write(msg)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, AssertionError):
            pass
        finally:
            if writer in self._writers:
                self._writers.remove(writer)
            writer.close()

    @staticmethod
    async def _read(reader: asyncio.StreamReader) -> list[str]:
        (size,) = struct.unpack(">I", await reader.readexactly(4))
        return (await reader.readexactly(size)).decode().split("\0")[:-1]

    def _answer(self, f: list[str]) -> list[bytes]:
        msg = int(f[0])
        if msg in self.hooks:
            self.hooks[msg]()
        if msg in self.fail_next:
            code, text = self.fail_next.pop(msg)
            return [encode(4, 2, int(f[1] if msg == 3 else f[2]), code, text, "")]
        if msg == 71:  # start API
            self.client_id = int(f[2])
            return [encode(15, 1, self.account), encode(9, 1, 1 + max(self.orders, default=0))]
        if msg == 61:
            return [self._position(s) for s in self.positions] + [encode(62, 1)]
        if msg in (5, 16):  # open orders / all open orders
            return [encode(53, 1)]
        if msg == 99:
            return [encode(102)]
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
            return self._place(f)
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

    def _place(self, f: list[str]) -> list[bytes]:
        order_id, symbol = int(f[1]), f[3]
        if order_id in self.orders:  # modification
            o = self.orders[order_id]
            o.quantity, o.limit_price = Decimal(f[17]), Decimal(f[19]) if f[19] else None
            o.aux_price = Decimal(f[20]) if f[20] else None
            return [self._status(o)]
        o = FakeIbOrder(order_id, next(self._perm_ids), self.client_id, symbol, f[16], Decimal(f[17]), f[18],
                        Decimal(f[19]) if f[19] else None, Decimal(f[20]) if f[20] else None, f[26],
                        int(f[28] or 0))
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
        if o.parent_id:
            o.status = "PreSubmitted"
            return [self._status(o)]
        out = [self._status(o)]
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
        o.status = "Filled" if o.filled >= o.quantity else "Submitted"
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
                elif o.parent_id and other.parent_id == o.parent_id and other is not o and other.status not in (
                        "Filled", "Cancelled"):
                    other.status = "Cancelled"  # the sibling leg of a bracket
                    out.append(self._status(other))
        return out + self._account_values()

    def _cancel(self, order_id: int) -> list[bytes]:
        o = self.orders.get(order_id)
        if o is None or o.status in ("Filled", "Cancelled"):
            return [encode(4, 2, order_id, 10148, "OrderId that needs to be cancelled cannot be cancelled", "")]
        o.status = "Cancelled"
        out = [self._status(o), encode(4, 2, order_id, 202, "Order Canceled - reason:", "")]
        for child in self.orders.values():
            if child.parent_id == order_id and child.status not in ("Filled", "Cancelled"):
                child.status = "Cancelled"
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
