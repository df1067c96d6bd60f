"""Reconciliation through the real ccxt adapter against loopback Binance, Kraken and Coinbase spot APIs.

Spot exchanges report holdings as balances without a cost basis, Binance
keeps trade history per symbol, Kraken re-uses client ids once an order
closed, Coinbase answers failures with HTTP 200: a fill the product missed,
coins bought in the exchange's own app, and coins sold there must still come
out right on each.
"""

from __future__ import annotations

import base64
import uuid
from collections import Counter
from datetime import timedelta
from decimal import Decimal as D

import pytest
from sqlmodel import Session, select

from backend import audit
from backend.brokers.credentials import build_provider
from backend.db.models import Order, Position
from backend.db.types import utcnow
from backend.execution.adapters import Adapters
from backend.execution.seeding import connect_followed, seed_world
from backend.reconcile.run import reconcile_all
from backend.services import trading
from fakes.fake_ccxt import make_fake
from fakes.loopback import serve
from fakes.venue_book import BookOrder

OPTIONS = {"ccxt": {"requests_per_minute": 100_000, "ccxt_throttle": False, "timeout": 2.0}}


def later():
    return utcnow() + timedelta(minutes=2)


# per venue: its book's symbols for BTC and ETH, the unified quote, the resting buy, the prices
VENUES = {
    "binance": dict(btc="BTCUSDT", eth="ETHUSDT", quote="USDT", limit=D(57000), eth_price="3000"),
    "kraken": dict(btc="XXBTZUSD", eth="XETHZUSD", quote="USD", limit=D(28500), eth_price="2000"),
    "coinbase": dict(btc="BTC-USD", eth="ETH-USD", quote="USD", limit=D(64000), eth_price="3500"),
}


def by_hand(fake, symbol: str, side: str, qty: str) -> None:
    fake.book.submit(BookOrder(fake.book.new_order_id(), f"app-{uuid.uuid4().hex[:8]}", symbol, side, "market", D(qty)))


def unified(venue: dict, book_symbol: str) -> str:
    return f"{'BTC' if book_symbol == venue['btc'] else 'ETH'}/{venue['quote']}"


def secret_for(exchange_id: str) -> str:
    raw = uuid.uuid4().hex
    return base64.b64encode(raw.encode()).decode() if exchange_id == "kraken" else f"sec-{raw}"  # Kraken: base64


@pytest.mark.parametrize("exchange_id", sorted(VENUES))
async def test_drift_at_a_crypto_exchange_is_repaired_once_and_matches_the_balances(engine, exchange_id):
    venue = VENUES[exchange_id]
    btc = f"BTC/{venue['quote']}"
    with Session(engine, expire_on_commit=False) as s:
        world = seed_world(s, profile={"sizing_value": D("0.01")})
    fake = make_fake(exchange_id, api_key=f"key-{uuid.uuid4().hex[:10]}", secret=secret_for(exchange_id))
    async with serve(fake.app()) as url:
        account = await connect_followed(engine, world, "ccxt", exchange_id.title(), {
            "api_key": fake.api_key, "secret": fake.secret}, exchange_id=exchange_id, live=True, base_url=url,
            adapter_options=OPTIONS["ccxt"])
        adapters = Adapters(engine, provider=build_provider(options=OPTIONS))
        await trading.ingest_discord_message(channel_id=world.source.discord_channel_id, message_id="m1",
                                             content=f"Buy {btc} {venue['limit']}", sent_at=utcnow(), engine=engine,
                                             adapters=adapters)
        with Session(engine) as s:
            order = s.exec(select(Order)).one()
        assert order.status == "submitted"
        fake.book.fill(fake.book.by_client_id(order.client_order_id).order_id)   # filled, nobody polled
        by_hand(fake, venue["eth"], "buy", "0.5")

        first = await reconcile_all(engine, adapters, clock=later)
        assert not first.failed
        assert Counter(r.kind for r in first.repairs) == Counter({"missed_fill": 1, "unknown_position": 1})
        eth = next(r for r in first.repairs if r.kind == "unknown_position")
        assert (eth.subject, eth.data["price"], eth.data["price_source"]) == (
            f"ETH/{venue['quote']}", venue["eth_price"], "venue_fills")

        by_hand(fake, venue["btc"], "sell", "0.01")                    # sold in the exchange's own app
        second = await reconcile_all(engine, adapters, clock=later)
        assert [(r.kind, r.subject) for r in second.repairs] == [("position_closed", btc)]
        assert (await reconcile_all(engine, adapters, clock=later)).repairs == []

        with Session(engine) as s:
            order = s.exec(select(Order)).one()
            held = {p.symbol: p.quantity for p in s.exec(select(Position).where(Position.quantity != 0))}
        assert (order.status, order.filled_quantity, order.avg_fill_price) == ("filled", D("0.01"), venue["limit"])
        assert held == {f"ETH/{venue['quote']}": D("0.5")}
        assert {unified(venue, s): q for s, (q, _) in fake.book.positions.items()} == held
        assert audit.verify(engine).ok
        await adapters.aclose()
