"""End to end on crypto exchanges through ccxt: Discord message -> ingest -> engine -> a filled order
at the loopback Binance, Kraken and Coinbase, with the member's keys stored only in the vault."""

from __future__ import annotations

import base64
import uuid
from decimal import Decimal as D

import pytest
from sqlmodel import Session, select

from backend.brokers.credentials import build_provider
from backend.db.models import BrokerAccount, Follow, Order, Position
from backend.db.types import utcnow
from backend.execution.adapters import Adapters
from backend.execution.seeding import seed_world
from backend.services import trading
from backend.services.accounts import connect_account
from fakes.fake_ccxt import make_fake
from fakes.loopback import serve

OPTIONS = {"requests_per_minute": 100_000, "ccxt_throttle": False, "timeout": 2.0}
VENUES = {
    "binance": ("Buy BTCUSDT 61000", "BTC/USDT", "BTCUSDT", D(60000), f"sec-{uuid.uuid4().hex}"),
    "kraken": ("Long BTC/USD 31000", "BTC/USD", "XXBTZUSD", D(30000), base64.b64encode(uuid.uuid4().bytes).decode()),
    "coinbase": ("Buy BTC/USD 68000", "BTC/USD", "BTC-USD", D(67060), f"sec-{uuid.uuid4().hex}"),
}


@pytest.mark.parametrize("exchange_id", sorted(VENUES))
async def test_a_discord_signal_is_filled_at_the_exchange_with_vaulted_keys(engine, exchange_id):
    text, symbol, venue_symbol, price, secret = VENUES[exchange_id]
    with Session(engine, expire_on_commit=False) as s:
        world = seed_world(s, profile={"sizing_value": D("0.01")})
    fake = make_fake(exchange_id, api_key=f"key-{uuid.uuid4().hex[:10]}", secret=secret)
    async with serve(fake.app()) as url:
        account = await connect_account(engine, world.followers[0].id, "ccxt", exchange_id.title(),
                                        {"api_key": fake.api_key, "secret": fake.secret}, exchange_id=exchange_id,
                                        live=True, base_url=url, adapter_options=OPTIONS)
        with Session(engine) as s:
            row = s.get(BrokerAccount, account["id"])
            assert row.exchange_id == exchange_id and fake.secret not in row.credentials_enc
            s.get(Follow, world.follows[0].id).broker_account_id = row.id
            s.get(BrokerAccount, world.accounts[0].id).status = "disconnected"
            s.commit()
        adapters = Adapters(engine, provider=build_provider(options={"ccxt": OPTIONS}))
        result = await trading.ingest_discord_message(channel_id=world.source.discord_channel_id, message_id="e2e-1",
                                                      content=text, sent_at=utcnow(), engine=engine, adapters=adapters)
        assert (result["approved"], result["orders_submitted"]) == (1, 1)
        with Session(engine) as s:
            order = s.exec(select(Order)).one()
            position = s.exec(select(Position)).one()
        assert (order.symbol, order.status, order.filled_quantity, order.avg_fill_price) == (
            symbol, "filled", D("0.01"), price)
        venue = fake.book.by_client_id(order.client_order_id)
        assert (venue.symbol, venue.status, venue.filled) == (venue_symbol, "filled", D("0.01"))
        assert (position.symbol, position.quantity) == (symbol, fake.book.positions[venue_symbol][0])
        await adapters.aclose()
