"""A bracket the engine manages itself at crypto exchanges (ccxt: no native brackets, no order amendment).

A parsed signal with a stop and a two-target ladder goes through the engine
to the loopback Binance / Kraken: the entry fills, the engine then places the
stop and both targets as separate orders; a target fill makes it cancel the
stop and place a smaller one (cancel + replace: ccxt cannot amend), and the
last target fill cancels the stop, leaving the position flat at the venue.
"""

from __future__ import annotations

import base64
import uuid
from decimal import Decimal as D

import pytest
from sqlmodel import Session, select

from backend.brokers.credentials import build_provider
from backend.db.models import AuditEvent, BrokerAccount, Follow, Order, Position
from backend.db.types import utcnow
from backend.execution.adapters import Adapters
from backend.execution.runner import recover
from backend.execution.seeding import seed_world
from backend.services import trading
from backend.services.accounts import connect_account
from fakes.fake_ccxt import make_fake
from fakes.loopback import serve

OPTIONS = {"requests_per_minute": 100_000, "ccxt_throttle": False, "timeout": 2.0}
VENUES = {
    "binance": ("Buy BTC/USDT 61000 SL 55000 TP 65000 TP 70000", "BTCUSDT", f"sec-{uuid.uuid4().hex}"),
    "kraken": ("Buy BTC/USD 31000 SL 27000 TP 33000 TP 35000", "XXBTZUSD",
               base64.b64encode(uuid.uuid4().bytes).decode()),
}


def live(engine, leg: str) -> list[Order]:
    with Session(engine) as s:
        return list(s.exec(select(Order).where(Order.leg == leg, Order.status.in_(("submitted", "partially_filled")))))


def held(engine) -> D:
    with Session(engine) as s:
        pos = s.exec(select(Position)).first()
        return pos.quantity if pos else D(0)


@pytest.mark.parametrize("exchange_id", sorted(VENUES))
async def test_the_engine_keeps_the_stop_no_larger_than_the_position_through_the_ladder(engine, exchange_id):
    text, venue_symbol, secret = VENUES[exchange_id]
    with Session(engine, expire_on_commit=False) as s:
        world = seed_world(s, profile={"sizing_value": D("0.02")})
    fake = make_fake(exchange_id, api_key=f"key-{uuid.uuid4().hex[:10]}", secret=secret)
    async with serve(fake.app()) as url:
        account = await connect_account(engine, world.followers[0].id, "ccxt", exchange_id.title(),
                                        {"api_key": fake.api_key, "secret": fake.secret}, exchange_id=exchange_id,
                                        live=True, base_url=url, adapter_options=OPTIONS)
        with Session(engine) as s:
            s.get(Follow, world.follows[0].id).broker_account_id = account["id"]
            s.get(BrokerAccount, world.accounts[0].id).status = "disconnected"
            s.commit()
        adapters = Adapters(engine, provider=build_provider(options={"ccxt": OPTIONS}))
        try:
            result = await trading.ingest_discord_message(channel_id=world.source.discord_channel_id,
                                                          message_id="br", content=text, sent_at=utcnow(),
                                                          engine=engine, adapters=adapters)
            assert (result["approved"], result["orders_submitted"]) == (1, 4)  # entry, then stop + 2 targets
            [stop], tps = live(engine, "stop"), live(engine, "tp1") + live(engine, "tp2")
            assert stop.quantity == D("0.02") and [t.quantity for t in tps] == [D("0.01"), D("0.01")]
            resting = {o.client_id: o for o in fake.book.orders.values() if o.is_open}
            assert set(resting) == {stop.client_order_id, *(t.client_order_id for t in tps)}
            assert resting[stop.client_order_id].stop_price is not None and venue_symbol == resting[
                stop.client_order_id].symbol

            fake.book.fill(resting[tps[0].client_order_id].order_id)       # the first target fills
            await recover(engine, adapters)
            [smaller] = live(engine, "stop")
            assert held(engine) == D("0.01") and smaller.quantity == D("0.01")
            assert smaller.client_order_id != stop.client_order_id
            venue_stops = [o for o in fake.book.orders.values() if o.is_open and o.stop_price is not None]
            assert [(o.client_id, o.quantity) for o in venue_stops] == [(smaller.client_order_id, D("0.01"))]

            fake.book.fill(resting[tps[1].client_order_id].order_id)       # the last target fills
            await recover(engine, adapters)
        finally:
            await adapters.aclose()
    assert held(engine) == D(0) and live(engine, "stop") == []
    assert not [o for o in fake.book.orders.values() if o.is_open]
    assert venue_symbol not in fake.book.positions


async def test_a_stop_goes_to_coinbase_as_a_stop_limit_bounded_by_the_slippage_setting(engine):
    """Coinbase takes no plain stop: the engine sends a stop-limit whose limit is STOP_LIMIT_SLIPPAGE_BPS
    (100 by default) below a long's trigger, rounded down to the 0.01 tick, and records it on the row."""
    with Session(engine, expire_on_commit=False) as s:
        world = seed_world(s, profile={"sizing_value": D("0.01")})
    fake = make_fake("coinbase", api_key=f"key-{uuid.uuid4().hex[:10]}", secret=f"sec-{uuid.uuid4().hex}")
    async with serve(fake.app()) as url:
        account = await connect_account(engine, world.followers[0].id, "ccxt", "Coinbase",
                                        {"api_key": fake.api_key, "secret": fake.secret}, exchange_id="coinbase",
                                        live=True, base_url=url, adapter_options=OPTIONS)
        with Session(engine) as s:
            s.get(Follow, world.follows[0].id).broker_account_id = account["id"]
            s.get(BrokerAccount, world.accounts[0].id).status = "disconnected"
            s.commit()
        adapters = Adapters(engine, provider=build_provider(options={"ccxt": OPTIONS}))
        try:
            result = await trading.ingest_discord_message(channel_id=world.source.discord_channel_id,
                                                          message_id="cb-sl", content="Buy BTC/USD 68000 SL 61234.57",
                                                          sent_at=utcnow(), engine=engine, adapters=adapters)
        finally:
            await adapters.aclose()
    assert (result["approved"], result["orders_submitted"]) == (1, 2)
    [stop] = live(engine, "stop")
    assert (stop.order_type, stop.stop_price, stop.limit_price, stop.quantity) == (
        "stop_limit", D("61234.57"), D("60622.22"), D("0.01"))       # 61234.57 x 0.99 = 60622.2243 -> down
    venue = fake.book.by_client_id(stop.client_order_id)
    assert (venue.status, venue.order_type, venue.side, venue.stop_price, venue.limit_price) == (
        "open", "stop_limit", "sell", D("61234.57"), D("60622.22"))
    assert venue.extra["stop_direction"] == "STOP_DIRECTION_STOP_DOWN"   # a sell stop triggers on the way down
    with Session(engine) as s:

        sent_as = s.exec(select(AuditEvent).where(AuditEvent.action == "order.sent_as")).all()
    assert [(e.subject_id, e.data["sent"], e.data["limit_price"]) for e in sent_as] == [
        (str(stop.id), "stop_limit", "60622.22")]
