"""One way to open every adapter against its venue, for the shared contract suite.

``open_venue(kind, request)`` is an async context manager yielding a
:class:`VenueUnderTest`: the adapter plus what a venue-neutral test needs to
know (a tradable symbol, a sensible quantity, a price far enough below the
market for a limit order to rest).  Real adapters talk to their loopback
fake; the paper broker talks to a database (SQLite file or Postgres).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal

from sqlmodel import Session

from backend.brokers.base import BrokerAdapter, OrderRequest
from fakes.fake_alpaca import FakeAlpaca
from fakes.fake_ccxt import make_fake
from fakes.fake_ibkr import FakeIbGateway
from fakes.loopback import serve

KINDS = ["paper-sqlite", "paper-postgres", "alpaca", "ccxt-binance", "ccxt-kraken", "ccxt-coinbase", "ibkr"]


@dataclass
class VenueUnderTest:
    kind: str
    adapter: BrokerAdapter
    symbol: str
    quantity: Decimal
    price: Decimal
    asset_class: str = "stock"

    def order(self, cid: str | None = None, **kw) -> OrderRequest:
        base = dict(client_order_id=cid or f"ct-{uuid.uuid4().hex[:12]}", symbol=self.symbol, side="buy",
                    quantity=self.quantity, asset_class=self.asset_class, reference_price=self.price)
        base.update(kw)
        return OrderRequest(**base)

    def resting_limit(self, cid: str | None = None) -> OrderRequest:
        return self.order(cid, order_type="limit", limit_price=(self.price / 2).quantize(Decimal("0.01")))


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
    key = f"key-{uuid.uuid4().hex[:10]}"
    if kind.startswith("paper"):
        from backend.brokers.paper import PaperBroker
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
        try:
            yield VenueUnderTest(kind, broker, "AAPL", Decimal("10"), Decimal("190"))
        finally:
            await broker.close()
            if kind == "paper-sqlite":
                engine.dispose()
    elif kind == "alpaca":
        from backend.brokers.alpaca import AlpacaAdapter

        fake = FakeAlpaca(api_key=key)
        async with serve(fake.app()) as url:
            adapter = AlpacaAdapter(credentials={"api_key": key, "api_secret": fake.api_secret}, base_url=url,
                                    requests_per_minute=100_000)
            yield VenueUnderTest(kind, adapter, "AAPL", Decimal("10"), Decimal("190.12"))
            await adapter.close()
    elif kind.startswith("ccxt-"):
        from backend.brokers.ccxt_adapter import CcxtAdapter

        exchange_id = kind.removeprefix("ccxt-")
        fake = make_fake(exchange_id, api_key=key)
        symbol, price = {"binance": ("BTC/USDT", "60000"), "kraken": ("BTC/USD", "30000"),
                         "coinbase": ("BTC/USD", "67060")}[exchange_id]
        async with serve(fake.app()) as url:
            adapter = CcxtAdapter(credentials={"exchange_id": exchange_id, "api_key": key, "secret": fake.secret},
                                  base_url=url, requests_per_minute=100_000, ccxt_throttle=False)
            yield VenueUnderTest(kind, adapter, symbol, Decimal("0.01"), Decimal(price), "crypto")
            await adapter.close()
    elif kind == "ibkr":
        from backend.brokers.ibkr import IbkrAdapter

        gateway = FakeIbGateway()
        port = await gateway.start()
        adapter = IbkrAdapter(credentials={"host": "127.0.0.1", "port": port, "client_id": 11,
                                           "account": gateway.account}, timeout=3, requests_per_minute=100_000)
        try:
            yield VenueUnderTest(kind, adapter, "AAPL", Decimal("10"), Decimal("190.12"))
        finally:
            await adapter.close()
            await gateway.stop()
    else:
        raise ValueError(kind)
