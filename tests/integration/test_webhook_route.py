"""The TradingView webhook route end to end: HTTP -> real intake -> engine -> paper orders.

No stand-ins: the Reflex app's API routes (built without a frontend compile),
the real money-path service, and the seeded demo database on SQLite and
Postgres.  A retry of the same alert must not place a second order.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from backend.db.models import Follow, Order, Signal, SignalSource
from backend.db.types import utcnow
from backend.services.demo_seed import DEMO_TV_SECRET, DEMO_TV_TOKEN, seed_demo

URL = f"/webhooks/tradingview/{DEMO_TV_TOKEN}"


@pytest.fixture
def client(engine, settings_env, reflex_asgi):
    settings_env(DATABASE_URL=engine.url.render_as_string(hide_password=False))
    seed_demo(engine)
    with TestClient(reflex_asgi, raise_server_exceptions=False) as c:
        yield c


def _count(engine, model, *where) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(model).where(*where)).scalar_one()


def _followers(engine) -> int:
    with engine.connect() as conn:
        source_id = conn.execute(sa.select(SignalSource.id).where(SignalSource.webhook_token == DEMO_TV_TOKEN)).scalar_one()
    return _count(engine, Follow, Follow.source_id == source_id, Follow.auto_trade.is_(True))


def test_an_alert_becomes_filled_orders_once(client, engine):
    followers = _followers(engine)
    assert followers > 0, "the demo TradingView source must have followers"
    before = _count(engine, Order)
    held = _count(engine, Order, Order.symbol == "AAPL", Order.status == "filled")
    body = json.dumps({"secret": DEMO_TV_SECRET, "ticker": "NASDAQ:AAPL", "action": "buy",
                       "alert_id": "tv-route-1", "time": utcnow().isoformat()})
    first = client.post(URL, content=body)
    assert first.status_code == 200, first.text
    assert _count(engine, Order) - before == followers
    assert _count(engine, Order, Order.symbol == "AAPL", Order.status == "filled") - held == followers

    retry = client.post(URL, content=body)
    assert retry.status_code == 200, retry.text
    assert _count(engine, Order) - before == followers, "a webhook retry placed a second order"
    assert _count(engine, Signal, Signal.source_message_id == "tv-route-1") == 1


def test_refusals_store_nothing_and_say_why(client, engine):
    signals, orders = _count(engine, Signal), _count(engine, Order)
    wrong = client.post(URL, content=json.dumps({"secret": "nope", "ticker": "AAPL", "action": "buy"}))
    assert wrong.status_code == 401 and wrong.json()["error"] == "webhook_auth"

    old = (utcnow() - timedelta(minutes=10)).isoformat()
    stale = client.post(URL, content=json.dumps(
        {"secret": DEMO_TV_SECRET, "ticker": "AAPL", "action": "buy", "time": old, "alert_id": "old-1"}))
    assert stale.status_code == 422 and "old" in stale.json()["message"].lower()

    typo = client.post(URL, content=json.dumps({"secret": DEMO_TV_SECRET, "ticker": "AAPL", "action": "buy",
                                                "stoploss": 100}))
    assert typo.status_code == 400 and "stoploss" in typo.json()["message"]

    unknown = client.post("/webhooks/tradingview/no-such-token", content=b"{}")
    assert unknown.status_code in (401, 404)
    assert _count(engine, Order) == orders
    # Authenticated alerts are recorded for the history (stale / rejected), never traded;
    # the wrong-secret and unknown-token calls leave no trace.
    assert _count(engine, Signal) - signals == 2
    assert _count(engine, Signal, Signal.status == "stale") == 1
    assert _count(engine, Signal, Signal.status == "rejected") == 1
