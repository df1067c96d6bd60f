"""Ladders at spot crypto exchanges (ccxt): the stop at the venue, the take-profits held by the engine.

An open sell locks the coins it sells at a spot exchange (the fakes model it:
``fakes.ccxt_fake_base.SpotBook``), so a full-size stop and the targets
cannot all rest at the venue (``test_broker_contract`` shows the refusal).
A parsed signal with a stop and a three-target ladder goes through the engine
to the loopback Binance / Kraken / Coinbase: the entry fills, the stop goes to the
venue for the whole position, the targets stay ``new`` in the engine.  When
the fake's price reaches a target, the ``held_targets`` pass shrinks the
stop (cancel, confirmed, then a smaller replacement), sends the target (it
fills at the venue) and never sends it twice; stop to breakeven and close-all
still work; no order is refused for insufficient funds anywhere.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from decimal import Decimal as D

import pytest
from sqlmodel import Session, select

from backend.brokers.credentials import build_provider
from backend.db.models import AuditEvent, Order, Position
from backend.db.types import utcnow
from backend.execution.adapters import Adapters
from backend.execution.held_targets import check_held_targets
from backend.execution.seeding import connect_followed, seed_world
from backend.services import trading
from fakes.fake_ccxt import make_fake
from fakes.loopback import serve

OPTIONS = {"requests_per_minute": 100_000, "ccxt_throttle": False, "timeout": 2.0}
VENUES = {  # signal, engine symbol, venue symbol, entry price at the fake, targets, secret
    "binance": ("Buy BTC/USDT 61000 SL 55000 TP 65000 TP 70000 TP 75000", "BTC/USDT", "BTCUSDT", D(60000),
                (D(65000), D(70000), D(75000)), f"sec-{uuid.uuid4().hex}"),
    "kraken": ("Buy BTC/USD 31000 SL 27000 TP 33000 TP 35000 TP 37000", "BTC/USD", "XXBTZUSD", D(30000),
               (D(33000), D(35000), D(37000)), base64.b64encode(uuid.uuid4().bytes).decode()),
    # no plain stops: the stop rests as a stop-limit (``stop_limits``), resized and moved all the same
    "coinbase": ("Buy BTC/USD 68000 SL 60000 TP 70000 TP 72000 TP 74000", "BTC/USD", "BTC-USD", D(67060),
                 (D(70000), D(72000), D(74000)), f"sec-{uuid.uuid4().hex}"),
}


def live(engine, leg: str) -> list[Order]:
    with Session(engine) as s:
        return list(s.exec(select(Order).where(Order.leg == leg, Order.status.in_(("submitted", "partially_filled")))))


def legs(engine) -> dict[str, list[Order]]:
    out: dict[str, list[Order]] = {}
    with Session(engine) as s:
        for o in s.exec(select(Order).order_by(Order.id)):
            out.setdefault(o.leg, []).append(o)
    return out


def position(engine) -> Position | None:
    with Session(engine) as s:
        return s.exec(select(Position)).first()


def venue_stops(fake) -> list[tuple[str, D]]:
    return [(o.client_id, o.quantity) for o in fake.book.orders.values() if o.is_open and o.stop_price is not None]


def sent_to_venue(fake, cid: str) -> int:
    return sum(1 for o in fake.book.orders.values() if o.client_id == cid)


@pytest.mark.parametrize("exchange_id", sorted(VENUES))
async def test_a_ladder_is_held_by_the_engine_under_a_venue_stop_and_sent_target_by_target(engine, exchange_id):
    text, symbol, venue_symbol, entry_price, targets, secret = VENUES[exchange_id]
    with Session(engine, expire_on_commit=False) as s:
        world = seed_world(s, profile={"sizing_value": D("0.03")})
    fake = make_fake(exchange_id, api_key=f"key-{uuid.uuid4().hex[:10]}", secret=secret)
    user = world.followers[0].id
    async with serve(fake.app()) as url:
        account = await connect_followed(engine, world, "ccxt", exchange_id.title(),
                                         {"api_key": fake.api_key, "secret": fake.secret}, exchange_id=exchange_id,
                                         live=True, base_url=url, adapter_options=OPTIONS)
        adapters = Adapters(engine, provider=build_provider(options={"ccxt": OPTIONS}))
        try:
            result = await trading.ingest_discord_message(channel_id=world.source.discord_channel_id,
                                                          message_id="br", content=text, sent_at=utcnow(),
                                                          engine=engine, adapters=adapters)
            assert (result["approved"], result["orders_submitted"]) == (1, 2)  # the entry, then the stop only
            [stop] = live(engine, "stop")
            assert (stop.quantity, fake.book.by_client_id(stop.client_order_id).is_open) == (D("0.03"), True)
            tps = [legs(engine)[f"tp{n}"][0] for n in (1, 2, 3)]
            assert [(t.status, t.wait_for_order_id, t.quantity, t.limit_price) for t in tps] == [
                ("new", t.id, D("0.01"), price) for t, price in zip(tps, targets)]       # held: waits for itself
            assert venue_stops(fake) == [(stop.client_order_id, D("0.03"))]
            assert not any(sent_to_venue(fake, t.client_order_id) for t in tps)

            quiet = await check_held_targets(engine, adapters)                 # the price is still the entry's
            assert (quiet.held, quiet.quoted, quiet.triggered) == (3, 1, [])

            fake.book.prices[venue_symbol] = targets[0]                          # the market reaches TP1
            first = await check_held_targets(engine, adapters)
            assert first.triggered == [tps[0].id]
            now = legs(engine)
            assert (now["tp1"][0].status, now["tp1"][0].filled_quantity, now["tp1"][0].avg_fill_price) == (
                "filled", D("0.01"), targets[0])
            assert now["stop"][0].status == "cancelled"
            [smaller] = live(engine, "stop")
            assert (smaller.quantity, smaller.stop_price) == (D("0.02"), stop.stop_price)
            assert venue_stops(fake) == [(smaller.client_order_id, D("0.02"))]
            pos = position(engine)
            assert pos.quantity == fake.book.positions[venue_symbol][0] == D("0.02")
            fees = sum((f.fee for o in fake.book.orders.values() for f in o.fills), D(0))   # entry's and TP1's
            # Binance's answers carry per-trade fills with fees; Kraken's and Coinbase's only the order's
            # cumulative fee, which the engine books with each synthetic fill (``state_machine._fee_delta``).
            assert fees > 0 and (pos.avg_price, pos.fees) == (entry_price, fees)
            assert pos.realized_pnl == (targets[0] - entry_price) * D("0.01") - pos.fees  # every booked fee counts

            again = await check_held_targets(engine, adapters)                   # nothing new: TP1 went once
            assert again.triggered == [] and sent_to_venue(fake, tps[0].client_order_id) == 1

            fake.book.prices[venue_symbol] = targets[1]                          # two passes at once at TP2
            both = await asyncio.gather(check_held_targets(engine, adapters), check_held_targets(engine, adapters))
            assert sorted(t for r in both for t in r.triggered) == [tps[1].id]
            assert sent_to_venue(fake, tps[1].client_order_id) == 1
            [last_stop] = live(engine, "stop")
            assert venue_stops(fake) == [(last_stop.client_order_id, D("0.01"))]
            assert position(engine).quantity == fake.book.positions[venue_symbol][0] == D("0.01")
            with Session(engine) as s:
                events = [e.action for e in s.exec(select(AuditEvent).where(AuditEvent.subject_id == str(tps[1].id)))]
            assert events.count("order.held_by_engine") == 1 and events.count("order.target_triggered") == 1

            moved = await trading.move_stop(user, account["id"], symbol, engine=engine, adapters=adapters)
            assert moved["orders_changed"] == 1
            [breakeven] = live(engine, "stop")
            assert (breakeven.stop_price, breakeven.quantity) == (entry_price, D("0.01"))
            assert venue_stops(fake) == [(breakeven.client_order_id, D("0.01"))]
            assert fake.book.by_client_id(breakeven.client_order_id).stop_price == entry_price

            closed = await trading.close_position(user, account["id"], symbol, engine=engine, adapters=adapters)
            [close] = closed["orders"]
            assert (close["status"], close["filled_quantity"]) == ("filled", D("0.01"))
            final = legs(engine)
            assert final["tp3"][0].status == "cancelled" and sent_to_venue(fake, tps[2].client_order_id) == 0
            assert live(engine, "stop") == [] and venue_stops(fake) == []
            fake.book.prices[venue_symbol] = targets[2]
            assert (await check_held_targets(engine, adapters)).held == 0       # nothing left to send
        finally:
            await adapters.aclose()
    assert position(engine).quantity == D(0) and venue_symbol not in fake.book.positions
    assert not [o for o in fake.book.orders.values() if o.is_open]
    assert fake.book.refusals == []                                            # no insufficient funds anywhere
    assert not [o for group in final.values() for o in group if o.status in ("rejected", "failed")]


async def test_a_stop_goes_to_coinbase_as_a_stop_limit_bounded_by_the_slippage_setting(engine):
    """Coinbase takes no plain stop: the engine sends a stop-limit whose limit is STOP_LIMIT_SLIPPAGE_BPS
    (100 by default) below a long's trigger, rounded down to the 0.01 tick, and records it on the row."""
    with Session(engine, expire_on_commit=False) as s:
        world = seed_world(s, profile={"sizing_value": D("0.01")})
    fake = make_fake("coinbase", api_key=f"key-{uuid.uuid4().hex[:10]}", secret=f"sec-{uuid.uuid4().hex}")
    async with serve(fake.app()) as url:
        account = await connect_followed(engine, world, "ccxt", "Coinbase",
                                         {"api_key": fake.api_key, "secret": fake.secret}, exchange_id="coinbase",
                                         live=True, base_url=url, adapter_options=OPTIONS)
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
