"""One way to open every adapter against its venue, for the shared contract suite.

``open_venue(kind, request)`` is an async context manager yielding a
:class:`VenueUnderTest`: the adapter plus what a venue-neutral test needs to
know (a tradable symbol, a sensible quantity, a price far enough below the
market for a limit order to rest) and to do (play the venue's side):

* ``partly()`` -> an adapter of the account whose next order fills only partly;
* ``fault("rate_limited" | "timeout")`` -> the next order placement is
  throttled (HTTP 429 / IB pacing 100) or answered too late (after the
  adapter's timeout / no IB acknowledgement); ``recover()`` lets the late
  answer arrive;
* ``restart()`` -> the adapter is closed and a NEW instance for the same
  account replaces it (a worker restart);
* ``fill_resting(client_order_id)`` -> the venue fills a resting order.

Real adapters talk to their loopback fake; the paper broker talks to a
database (SQLite file or Postgres).  After an IB ``restart`` the new
ib_async client learns the earlier orders from the fake gateway's
``openOrder`` / ``completedOrder`` messages, as from a real one.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal

from sqlmodel import Session

from backend.brokers.base import BrokerAdapter, OrderRequest
from fakes.fake_alpaca import FakeAlpaca
from fakes.fake_ccxt import make_fake
from fakes.fake_ibkr import FakeIbGateway
from fakes.loopback import load_fixture, serve

KINDS = ["paper-sqlite", "paper-postgres", "alpaca", "ccxt-binance", "ccxt-kraken", "ccxt-coinbase", "ibkr"]
TIMEOUT, LATE = 1.0, 1.5  # the adapters' timeout, and how late a "timeout" fault answers
CCXT = {"binance": ("BTC/USDT", "60000", "POST /api/v3/order"), "kraken": ("BTC/USD", "30000", "POST /0/private/AddOrder"),
        "coinbase": ("BTC/USD", "67060", "POST /api/v3/brokerage/orders")}


async def _nothing() -> None:
    return None


@dataclass
class VenueUnderTest:
    kind: str
    adapter: BrokerAdapter
    symbol: str
    quantity: Decimal
    price: Decimal
    asset_class: str = "stock"
    bad_symbol: str = "ZZZZ"
    partly: Callable[[], Awaitable[BrokerAdapter]] = _nothing
    fault: Callable[[str], None] = lambda kind: None
    recover: Callable[[], Awaitable[None]] = _nothing
    restart: Callable[[], Awaitable[BrokerAdapter]] = _nothing
    fill_resting: Callable[[str], Awaitable[None]] = lambda cid: _nothing()
    extra: list[BrokerAdapter] = field(default_factory=list)  # adapters opened by steering, closed at the end

    def order(self, cid: str | None = None, **kw) -> OrderRequest:
        base = dict(client_order_id=cid or f"ct-{uuid.uuid4().hex[:12]}", symbol=self.symbol, side="buy",
                    quantity=self.quantity, asset_class=self.asset_class, reference_price=self.price)
        base.update(kw)
        return OrderRequest(**base)

    def resting_limit(self, cid: str | None = None) -> OrderRequest:
        return self.order(cid, order_type="limit", limit_price=self.resting_price)

    @property
    def resting_price(self) -> Decimal:
        return (self.price / 2).quantize(Decimal("0.01"))

    async def swap(self, adapter: BrokerAdapter) -> BrokerAdapter:
        """Replace the adapter under test (the old one is closed, as a stopped worker's would be)."""
        await self.adapter.close()
        self.adapter = adapter
        return adapter


def _paper_engine(kind: str, request, tmp_path):
    import backend.db.models as models

    if kind == "paper-postgres":
        return request.getfixturevalue("pg_engine")
    from backend.db.session import engine_for

    engine = engine_for(f"sqlite:///{tmp_path / 'contract.db'}")
    models.metadata.create_all(engine)
    return engine


@asynccontextmanager
async def open_venue(kind: str, request, tmp_path) -> AsyncIterator[VenueUnderTest]:
    if kind.startswith("paper"):
        opener = _paper
    elif kind == "alpaca":
        opener = _alpaca
    elif kind.startswith("ccxt-"):
        opener = _ccxt
    elif kind == "ibkr":
        opener = _ibkr
    else:
        raise ValueError(kind)
    async with opener(kind, request, tmp_path) as venue:
        try:
            yield venue
        finally:
            for adapter in [venue.adapter, *venue.extra]:
                await adapter.close()


@asynccontextmanager
async def _paper(kind, request, tmp_path):
    from backend.brokers.paper import PaperBroker
    from backend.brokers.paper_rules import MAX_SYMBOL
    from backend.db.models.identity import User
    from backend.db.models.trading import BrokerAccount

    engine = _paper_engine(kind, request, tmp_path)
    with Session(engine) as s:
        user = User(username="contract")
        s.add(user)
        s.flush()
        account = BrokerAccount(user_id=user.id, broker="paper", label="Paper")
        s.add(account)
        s.commit()
        account_id = account.id
    broker = PaperBroker(engine, account_id)
    await broker.set_quote("AAPL", Decimal("190"))
    # the paper venue simulates any well-formed symbol: only a malformed one is unknown to it
    venue = VenueUnderTest(kind, broker, "AAPL", Decimal("10"), Decimal("190"), bad_symbol="Z" * (MAX_SYMBOL + 1))

    async def partly():
        venue.extra.append(PaperBroker(engine, account_id, partial_fill_max=Decimal("0.5")))
        return venue.extra[-1]

    async def fill_resting(cid):
        await venue.adapter.set_quote(venue.symbol, venue.resting_price)  # the market comes down to the limit

    venue.partly, venue.fill_resting = partly, fill_resting
    venue.restart = lambda: venue.swap(PaperBroker(engine, account_id))
    try:
        yield venue
    finally:
        if kind == "paper-sqlite":
            engine.dispose()


def _http_faults(venue: VenueUnderTest, fake, queue: Callable[[str], None]) -> None:
    fake.delay_seconds = LATE

    def fault(kind: str) -> None:
        queue(kind)

    async def recover() -> None:
        await asyncio.sleep(LATE + 0.2)  # the late answer has been written by then

    venue.fault, venue.recover = fault, recover


def _book_steering(venue: VenueUnderTest, book, build: Callable[[], BrokerAdapter]) -> None:
    async def partly():
        book.next_fill = "partial"
        return venue.adapter

    async def fill_resting(cid):
        book.fill(book.by_client_id(cid).order_id)

    venue.partly, venue.fill_resting = partly, fill_resting
    venue.restart = lambda: venue.swap(build())


@asynccontextmanager
async def _alpaca(kind, request, tmp_path):
    from backend.brokers.alpaca import AlpacaAdapter

    key = f"key-{uuid.uuid4().hex[:10]}"
    fake = FakeAlpaca(api_key=key)
    async with serve(fake.app()) as url:
        def build():
            return AlpacaAdapter(credentials={"api_key": key, "api_secret": fake.api_secret}, base_url=url,
                                 requests_per_minute=100_000, timeout=TIMEOUT)

        venue = VenueUnderTest(kind, build(), "AAPL", Decimal("10"), Decimal("190.12"))
        _book_steering(venue, fake.book, build)
        _http_faults(venue, fake, fake.faults.append)
        yield venue


@asynccontextmanager
async def _ccxt(kind, request, tmp_path):
    from backend.brokers.ccxt_adapter import CcxtAdapter

    exchange_id = kind.removeprefix("ccxt-")
    fake = make_fake(exchange_id, api_key=f"key-{uuid.uuid4().hex[:10]}")
    symbol, price, order_path = CCXT[exchange_id]
    async with serve(fake.app()) as url:
        def build():
            return CcxtAdapter(credentials={"exchange_id": exchange_id, "api_key": fake.api_key, "secret": fake.secret},
                               base_url=url, requests_per_minute=100_000, ccxt_throttle=False, timeout=TIMEOUT)

        venue = VenueUnderTest(kind, build(), symbol, Decimal("0.01"), Decimal(price), "crypto",
                               bad_symbol=f"ZZZ/{symbol.split('/')[1]}")
        _book_steering(venue, fake.book, build)
        _http_faults(venue, fake, lambda fault: fake.fail_next(fault, order_path))
        yield venue


@asynccontextmanager
async def _ibkr(kind, request, tmp_path):
    from backend.brokers.ibkr import IbkrAdapter

    gateway = FakeIbGateway()
    port = await gateway.start()
    pacing = tuple(load_fixture("ibkr", "errors.json")["pacing"])

    def build():
        return IbkrAdapter(credentials={"host": "127.0.0.1", "port": port, "client_id": 11,
                                        "account": gateway.account}, timeout=3, ack_timeout=TIMEOUT,
                           requests_per_minute=100_000)

    venue = VenueUnderTest(kind, build(), "AAPL", Decimal("10"), Decimal("190.12"))

    async def partly():
        gateway.next_fill = "partial"
        return venue.adapter

    def fault(kind: str) -> None:
        if kind == "rate_limited":
            gateway.fail_next[3] = pacing
        else:
            gateway.silent = {3}

    async def recover():
        gateway.silent = set()
        await gateway.answer_held()

    async def restart():  # the new ib_async client learns earlier orders from the gateway's openOrder messages
        return await venue.swap(build())

    async def fill_resting(cid):
        await gateway.push_fill(next(o.order_id for o in gateway.orders.values() if o.order_ref == cid))

    venue.partly, venue.fault, venue.recover, venue.restart, venue.fill_resting = (
        partly, fault, recover, restart, fill_resting)
    try:
        yield venue
    finally:
        await gateway.stop()
