"""Venue fees reach positions and realised P&L at Kraken and Coinbase (ccxt), exactly.

Their order answers carry no per-trade fills: Kraken lists trade ids only,
Coinbase totals only.  Each states the order's cumulative fee (Kraken ``fee``,
Coinbase ``total_fees``; ccxt's ``fee``), which the adapter reports on the
snapshot and the engine books as the increase since the last one
(``state_machine._fee_delta``).  Through the engine against the loopback
venues: a marketable entry, a resting limit entry filled in two parts, and
the close; ``Position.fees`` is the sum of every fee the venue charged and the
realised P&L is the gross P&L less exactly that, polled again without change.
"""

from __future__ import annotations

import base64
import uuid
from decimal import Decimal as D

import pytest
from sqlmodel import Session, select

from backend.brokers.credentials import build_provider
from backend.db.models import Fill, Order, Position, RealizedPnl
from backend.db.types import utcnow
from backend.execution.adapters import Adapters
from backend.execution.seeding import connect_followed, seed_world
from backend.execution.tracking import sync_orders
from backend.services import trading
from fakes.fake_ccxt import make_fake
from fakes.loopback import serve

OPTIONS = {"requests_per_minute": 100_000, "ccxt_throttle": False, "timeout": 2.0}
VENUES = {  # symbol, venue symbol, price at the fake, a limit below it, secret
    "kraken": ("BTC/USD", "XXBTZUSD", D(30000), D(29000), base64.b64encode(uuid.uuid4().bytes).decode()),
    "coinbase": ("BTC/USD", "BTC-USD", D(67060), D(66000), f"sec-{uuid.uuid4().hex}"),
}


def venue_fees(fake) -> D:
    return sum((f.fee for o in fake.book.orders.values() for f in o.fills), D(0))


def booked(engine) -> tuple[Position, D, D, int]:
    """The position, the P&L ledger's sum, the fills' fees and the number of fills, as stored."""
    with Session(engine) as s:
        pos = s.exec(select(Position)).one()
        ledger = sum((r.amount for r in s.exec(select(RealizedPnl))), D(0))
        fills = s.exec(select(Fill)).all()
        return pos, ledger, sum((f.fee for f in fills), D(0)), len(fills)


@pytest.mark.parametrize("exchange_id", sorted(VENUES))
async def test_the_venue_fee_of_a_market_entry_and_a_two_part_limit_fill_is_booked_once(engine, exchange_id):
    symbol, venue_symbol, price, limit, secret = VENUES[exchange_id]
    with Session(engine, expire_on_commit=False) as s:
        world = seed_world(s, profile={"sizing_value": D("0.01")})
    fake = make_fake(exchange_id, api_key=f"key-{uuid.uuid4().hex[:10]}", secret=secret)
    user = world.followers[0].id
    async with serve(fake.app()) as url:
        account = await connect_followed(engine, world, "ccxt", exchange_id.title(),
                                         {"api_key": fake.api_key, "secret": fake.secret}, exchange_id=exchange_id,
                                         live=True, base_url=url, adapter_options=OPTIONS)
        adapters = Adapters(engine, provider=build_provider(options={"ccxt": OPTIONS}))
        try:
            first = await trading.ingest_discord_message(channel_id=world.source.discord_channel_id,
                                                         message_id="fee-1", content=f"Buy {symbol} {price + 1000}",
                                                         sent_at=utcnow(), engine=engine, adapters=adapters)
            assert first["orders_submitted"] == 1
            entry_fee = venue_fees(fake)
            pos, ledger, fill_fees, _ = booked(engine)
            assert entry_fee > 0 and (pos.quantity, pos.avg_price) == (D("0.01"), price)
            assert pos.fees == fill_fees == entry_fee and pos.realized_pnl == ledger == -entry_fee

            second = await trading.ingest_discord_message(channel_id=world.source.discord_channel_id,
                                                          message_id="fee-2", content=f"Buy {symbol} {limit}",
                                                          sent_at=utcnow(), engine=engine, adapters=adapters)
            assert second["orders_submitted"] == 1
            with Session(engine) as s:
                resting = s.exec(select(Order).where(Order.status == "submitted")).one()
            assert (resting.order_type, resting.limit_price, resting.quantity) == ("limit", limit, D("0.01"))
            venue_order = fake.book.by_client_id(resting.client_order_id)

            fake.book.fill(venue_order.order_id, quantity=D("0.004"))            # a partial fill...
            await sync_orders(engine, adapters)
            part_fee = venue_order.fills[0].fee
            pos, ledger, fill_fees, _ = booked(engine)
            assert (pos.quantity, pos.fees) == (D("0.014"), entry_fee + part_fee) and fill_fees == pos.fees
            assert pos.realized_pnl == ledger == -(entry_fee + part_fee)

            fake.book.fill(venue_order.order_id)                                  # ...then the rest
            await sync_orders(engine, adapters)
            await sync_orders(engine, adapters)                                   # polled again: nothing new
            with Session(engine) as s:
                done = s.get(Order, resting.id)
            assert (done.status, done.filled_quantity, done.fees) == ("filled", D("0.01"), venue_order.fee)
            pos, ledger, fill_fees, count = booked(engine)
            assert venue_order.fee > part_fee and count == 3
            assert pos.fees == fill_fees == venue_fees(fake) == entry_fee + venue_order.fee
            assert pos.realized_pnl == ledger == -pos.fees

            fake.book.prices[venue_symbol] = price + 500
            closed = await trading.close_position(user, account["id"], symbol, engine=engine, adapters=adapters)
            assert [o["status"] for o in closed["orders"]] == ["filled"]
            await sync_orders(engine, adapters)
        finally:
            await adapters.aclose()
    pos, ledger, fill_fees, _ = booked(engine)
    gross = (price + 500 - price) * D("0.01") + (price + 500 - limit) * D("0.01")
    assert pos.quantity == 0 and venue_symbol not in fake.book.positions
    assert pos.fees == fill_fees == venue_fees(fake) and len(fake.book.orders) == 3
    assert pos.realized_pnl == ledger == gross - pos.fees                   # every fee the venue charged, once
