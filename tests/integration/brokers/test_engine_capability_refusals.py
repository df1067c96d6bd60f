"""The engine refuses, from the venue's capabilities, what the venue cannot do: before any broker call.

A short entry at a spot exchange (``short_selling`` False) ends ``rejected``
with a reason the member can act on, and the loopback exchange never sees an
order request for it; a plain stop at Coinbase (``stop_limit`` but no
``stop``) is not refused but sent as a stop-limit.  ``venue_fit.refusal`` is also checked
on its own for each rule.
"""

from __future__ import annotations

import uuid
from decimal import Decimal as D

import pytest
from sqlmodel import Session, select

from backend.brokers.base import Capabilities
from backend.brokers.credentials import build_provider
from backend.db.models import Notification, Order
from backend.db.types import utcnow
from backend.execution.adapters import Adapters
from backend.execution.seeding import connect_followed, seed_world
from backend.execution.venue_fit import refusal
from backend.services import trading
from fakes.fake_ccxt import make_fake
from fakes.loopback import serve

OPTIONS = {"requests_per_minute": 100_000, "ccxt_throttle": False, "timeout": 2.0}
ORDER_PATHS = {"binance": "/api/v3/order", "coinbase": "/api/v3/brokerage/orders"}


async def _trade(engine, exchange_id: str, text: str):
    with Session(engine, expire_on_commit=False) as s:
        world = seed_world(s, profile={"sizing_value": D("0.01")})
    fake = make_fake(exchange_id, api_key=f"key-{uuid.uuid4().hex[:10]}", secret=f"sec-{uuid.uuid4().hex}")
    async with serve(fake.app()) as url:
        account = await connect_followed(engine, world, "ccxt", exchange_id.title(),
                                         {"api_key": fake.api_key, "secret": fake.secret}, exchange_id=exchange_id,
                                         live=True, base_url=url, adapter_options=OPTIONS)
        adapters = Adapters(engine, provider=build_provider(options={"ccxt": OPTIONS}))
        try:
            result = await trading.ingest_discord_message(channel_id=world.source.discord_channel_id,
                                                          message_id="m", content=text, sent_at=utcnow(),
                                                          engine=engine, adapters=adapters)
        finally:
            await adapters.aclose()
    with Session(engine) as s:
        orders = {o.leg: o for o in s.exec(select(Order))}
        notes = [(n.kind, n.body) for n in s.exec(select(Notification))]
    posted = [r for r in fake.requests if r[0] == "POST" and r[1] == ORDER_PATHS[exchange_id]]
    return result, orders, notes, posted


async def test_a_short_entry_at_a_spot_exchange_is_refused_without_a_broker_call(engine):
    result, orders, notes, posted = await _trade(engine, "binance", "Short BTC/USDT 59000")
    entry = orders["entry"]
    assert (result["approved"], result["orders_submitted"]) == (1, 0)
    assert (entry.status, entry.error_code, entry.attempts) == ("rejected", "unsupported_by_venue", 0)  # never sent
    assert "does not allow short selling" in entry.error_message and "BTC/USDT" in entry.error_message
    assert posted == []
    assert any("short selling" in body for _, body in notes)


async def test_a_plain_stop_at_an_exchange_with_stop_limits_only_goes_out_as_a_stop_limit(engine):
    """Not refused: the venue lacks ``stop`` but takes ``stop_limit`` (``execution.stop_limits``)."""
    result, orders, _, posted = await _trade(engine, "coinbase", "Buy BTC/USD 68000 SL 60000 TP 70000")
    assert orders["entry"].status == "filled"
    stop = orders["stop"]
    assert (stop.status, stop.order_type, stop.error_code) == ("submitted", "stop_limit", None)
    sent = {r[2].get("client_order_id") for r in posted}
    assert {orders["entry"].client_order_id, stop.client_order_id} <= sent


def _order(**kw) -> Order:
    base = dict(client_order_id="x", user_id=1, broker_account_id=1, symbol="AAPL", side="buy",
                quantity=D(10), leg="entry", order_type="market", asset_class="stock", reduce_only=False)
    base.update(kw)
    return Order(**base)


CAPS = Capabilities(asset_classes=frozenset({"stock"}), order_types=frozenset({"market", "limit"}))


@pytest.mark.parametrize("kw, words", [
    (dict(asset_class="option"), "does not trade option instruments"),
    (dict(order_type="stop", stop_price=D(90)), "does not take stop orders"),
    (dict(side="sell"), "does not allow short selling"),
    (dict(quantity=D("2.5")), "whole units only"),
])
def test_each_capability_rule_names_what_the_venue_cannot_do(kw, words):
    why = refusal(CAPS, _order(**kw), "Venue")
    assert why is not None and words in why.message and not why.retryable


@pytest.mark.parametrize("kw", [dict(), dict(side="sell", reduce_only=True), dict(side="sell", leg="close"),
                                dict(order_type="limit", limit_price=D(100))])
def test_what_the_venue_can_do_is_not_refused(kw):
    assert refusal(CAPS, _order(**kw), "Venue") is None
