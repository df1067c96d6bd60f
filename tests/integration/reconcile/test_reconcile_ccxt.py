"""Reconciliation through the real ccxt adapter against the loopback Binance spot API.

Spot exchanges report holdings as balances without a cost basis, and Binance
keeps trade history per symbol: a fill the product missed, coins bought in
Binance's own app, and coins sold there must still come out right.
"""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import timedelta
from decimal import Decimal as D

from sqlmodel import Session, select

from backend import audit
from backend.brokers.credentials import build_provider
from backend.db.models import BrokerAccount, Follow, Order, Position
from backend.db.types import utcnow
from backend.execution.adapters import Adapters
from backend.execution.seeding import seed_world
from backend.reconcile.run import reconcile_all
from backend.services import trading
from backend.services.accounts import connect_account
from fakes.fake_binance import FakeBinance
from fakes.loopback import serve
from fakes.venue_book import BookOrder

OPTIONS = {"ccxt": {"requests_per_minute": 100_000, "ccxt_throttle": False, "timeout": 2.0}}


def later():
    return utcnow() + timedelta(minutes=2)


def by_hand(fake: FakeBinance, symbol: str, side: str, qty: str) -> None:
    fake.book.submit(BookOrder(fake.book.new_order_id(), f"app-{uuid.uuid4().hex[:8]}", symbol, side, "market", D(qty)))


async def test_binance_drift_is_repaired_once_and_matches_the_balances(engine):
    with Session(engine, expire_on_commit=False) as s:
        world = seed_world(s, profile={"sizing_value": D("0.01")})
    fake = FakeBinance(api_key=f"key-{uuid.uuid4().hex[:10]}", secret=f"sec-{uuid.uuid4().hex}")
    async with serve(fake.app()) as url:
        account = await connect_account(engine, world.followers[0].id, "ccxt", "Binance", {
            "api_key": fake.api_key, "secret": fake.secret}, exchange_id="binance", live=True, base_url=url,
            adapter_options=OPTIONS["ccxt"])
        with Session(engine) as s:
            s.get(Follow, world.follows[0].id).broker_account_id = account["id"]
            s.get(BrokerAccount, world.accounts[0].id).status = "disconnected"
            s.commit()
        adapters = Adapters(engine, provider=build_provider(options=OPTIONS))
        await trading.ingest_discord_message(channel_id=world.source.discord_channel_id, message_id="m1",
                                             content="Buy BTC/USDT 57000", sent_at=utcnow(), engine=engine,
                                             adapters=adapters)
        with Session(engine) as s:
            order = s.exec(select(Order)).one()
        assert order.status == "submitted"
        fake.book.fill(fake.book.by_client_id(order.client_order_id).order_id)   # filled, nobody polled
        by_hand(fake, "ETHUSDT", "buy", "0.5")

        first = await reconcile_all(engine, adapters, clock=later)
        assert not first.failed
        assert Counter(r.kind for r in first.repairs) == Counter({"missed_fill": 1, "unknown_position": 1})
        eth = next(r for r in first.repairs if r.kind == "unknown_position")
        assert (eth.subject, eth.data["price"], eth.data["price_source"]) == ("ETH/USDT", "3000", "venue_fills")

        by_hand(fake, "BTCUSDT", "sell", "0.01")                       # sold in Binance's app
        second = await reconcile_all(engine, adapters, clock=later)
        assert [(r.kind, r.subject) for r in second.repairs] == [("position_closed", "BTC/USDT")]
        assert (await reconcile_all(engine, adapters, clock=later)).repairs == []

        with Session(engine) as s:
            order = s.exec(select(Order)).one()
            held = {p.symbol: p.quantity for p in s.exec(select(Position).where(Position.quantity != 0))}
        assert (order.status, order.filled_quantity, order.avg_fill_price) == ("filled", D("0.01"), D(57000))
        assert held == {"ETH/USDT": D("0.5")}
        assert {f"{s.removesuffix('USDT')}/USDT": q for s, (q, _) in fake.book.positions.items()} == held
        assert audit.verify(engine).ok
        await adapters.aclose()
