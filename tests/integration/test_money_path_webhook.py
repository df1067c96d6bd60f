"""TradingView webhooks through ``services.trading.ingest_tradingview``, on SQLite and Postgres.

Authenticated by the source's secret (only its sha256 is stored), stored
once per alert (its ``alert_id``, else a hash of the body), stale alerts
recorded but not traded, and a retried delivery never trades twice.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal as D

import pytest
from sqlmodel import Session, select

from backend.brokers.paper import PaperBroker
from backend.db.models import Notification, Order, PaperOrder, Signal as SignalRow
from backend.errors import InvalidSignal, WebhookAuthError
from backend.execution.adapters import Adapters
from backend.execution.seeding import seed_world
from backend.services import trading

SECRET = "tv-s3cret-value"


@pytest.fixture
async def world(engine, settings_env):
    settings_env(PAPER_SLIPPAGE_BPS="0")
    with Session(engine, expire_on_commit=False) as s:
        world = seed_world(s, followers=2, source={"kind": "tradingview", "max_lag_seconds": 60},
                           webhook_secret=SECRET)
    await PaperBroker(engine, world.accounts[0].id).set_quote("AAPL", D(100))
    return world


def body(**fields) -> bytes:
    return json.dumps({"secret": SECRET, "ticker": "NASDAQ:AAPL", "action": "buy", **fields}).encode()


async def send(engine, world, raw: bytes, now: datetime):
    return await trading.ingest_tradingview(world.source.webhook_token, raw, now, engine=engine,
                                            adapters=Adapters(engine))


def count(engine, model) -> int:
    with Session(engine) as s:
        return len(s.exec(select(model)).all())


async def test_a_retried_webhook_places_one_order_per_follower(engine, world):
    now = datetime.now(timezone.utc)
    raw = body(alert_id="a-1", time=now.isoformat())
    first = await send(engine, world, raw, now)
    retry = await send(engine, world, raw, now + timedelta(seconds=3))
    assert first["created"] and first["approved"] == 2 and not retry["created"]
    assert retry["signal_id"] == first["signal_id"]
    assert count(engine, SignalRow) == 1 and count(engine, Order) == 2 and count(engine, PaperOrder) == 2
    with Session(engine) as s:
        stored = s.exec(select(SignalRow)).one()
    assert stored.source_message_id == "a-1" and SECRET not in stored.raw_text


async def test_without_an_alert_id_the_body_is_the_key(engine, world):
    now = datetime.now(timezone.utc)
    raw = body(time=now.isoformat())
    await send(engine, world, raw, now)
    await send(engine, world, raw, now)
    assert count(engine, SignalRow) == 1 and count(engine, PaperOrder) == 2
    await send(engine, world, body(time=(now + timedelta(seconds=1)).isoformat()), now)  # a new alert
    assert count(engine, SignalRow) == 2


async def test_a_wrong_or_missing_secret_is_refused_and_nothing_is_stored(engine, world):
    now = datetime.now(timezone.utc)
    with pytest.raises(WebhookAuthError):
        await send(engine, world, body(secret="guess"), now)
    with pytest.raises(WebhookAuthError):
        await send(engine, world, b'{"ticker": "AAPL", "action": "buy"}', now)
    with pytest.raises(WebhookAuthError):
        await trading.ingest_tradingview("no-such-token", body(), now, engine=engine)
    assert count(engine, SignalRow) == 0


async def test_a_late_alert_is_recorded_as_stale_and_the_followers_told(engine, world):
    now = datetime.now(timezone.utc)
    result = await send(engine, world, body(alert_id="late", time=(now - timedelta(seconds=300)).isoformat()), now)
    assert result["status"] == "stale" and count(engine, Order) == 0
    with Session(engine) as s:
        kinds = [n.kind for n in s.exec(select(Notification))]
    assert kinds == ["signal.stale", "signal.stale"]


async def test_an_authenticated_but_invalid_alert_is_recorded_as_rejected(engine, world):
    now = datetime.now(timezone.utc)
    with pytest.raises(InvalidSignal):
        await send(engine, world, body(alert_id="bad", stoploss=95), now)  # a typo must not drop a stop silently
    with Session(engine) as s:
        row = s.exec(select(SignalRow)).one()
    assert row.status == "rejected" and "stoploss" in row.status_reason
    assert count(engine, Order) == 0
