"""End to end on Interactive Brokers: Discord message -> ingest -> engine -> ib_async -> a filled order at the
loopback IB Gateway (TWS socket protocol), with the gateway settings stored in the vault."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from sqlmodel import Session, select

from backend.brokers.credentials import build_provider
from backend.db.models import Order, Position
from backend.db.types import utcnow
from backend.execution.adapters import Adapters
from backend.execution.seeding import seed_world, trade_through
from backend.services import trading
from backend.services.accounts import connect_account
from fakes.fake_ibkr import FakeIbGateway

OPTIONS = {"timeout": 3, "ack_timeout": 2, "requests_per_minute": 100_000}


@pytest.fixture
async def gateway():
    gw = FakeIbGateway()
    await gw.start()
    yield gw
    await gw.stop()


async def test_a_discord_signal_is_filled_through_the_ib_gateway(engine, gateway):
    with Session(engine, expire_on_commit=False) as s:
        world = seed_world(s)
    account = await connect_account(engine, world.followers[0].id, "ibkr", "IBKR paper",
                                    {"host": "127.0.0.1", "port": str(gateway.port), "client_id": "17",
                                     "account": gateway.account}, adapter_options=OPTIONS)
    assert (account["permissions"], account["cash"]) == ("trade", D(100000))
    trade_through(engine, world, account["id"])
    adapters = Adapters(engine, provider=build_provider(options={"ibkr": OPTIONS}))
    try:
        result = await trading.ingest_discord_message(channel_id=world.source.discord_channel_id,
                                                      message_id="e2e-1", content="Buy AAPL 191", sent_at=utcnow(),
                                                      engine=engine, adapters=adapters)
    finally:
        await adapters.aclose()
    assert (result["approved"], result["orders_submitted"]) == (1, 1)
    with Session(engine) as s:
        order = s.exec(select(Order)).one()
        position = s.exec(select(Position)).one()
    assert (order.status, order.filled_quantity, order.avg_fill_price, order.fees) == ("filled", D(10), D(191), D(1))
    [placed] = [o for o in gateway.orders.values() if o.order_ref == order.client_order_id]
    assert (placed.status, placed.filled, placed.client_id) == ("Filled", D(10), 17)
    assert position.quantity == gateway.positions["AAPL"][0] == D(10)
