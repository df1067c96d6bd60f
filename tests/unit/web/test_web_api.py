"""The HTTP routes beside Reflex, through the real ASGI app (frontend compile skipped)."""

from __future__ import annotations

import sys
import types

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from backend import errors


@pytest.fixture
def asgi(reflex_asgi):
    return reflex_asgi


@pytest.fixture
def client(asgi, settings_env):
    with TestClient(asgi, raise_server_exceptions=False) as c:
        yield c


def test_healthz_needs_nothing(client, settings_env):
    settings_env(DATABASE_URL="postgresql+psycopg://nobody@127.0.0.1:1/nowhere")
    r = client.get("/healthz")
    assert (r.status_code, r.json()) == (200, {"status": "ok"})


def test_reflex_own_routes_are_still_served(client):
    assert client.get("/ping").status_code == 200


def test_readyz_ok_on_each_database(client, engine, settings_env):
    settings_env(DATABASE_URL=engine.url.render_as_string(hide_password=False))
    r = client.get("/readyz")
    assert r.status_code == 200
    assert r.json() == {"database": "ok", "redis": "not configured", "workers": {}}


def test_readyz_shows_worker_heartbeats_without_failing_on_a_dead_one(client, engine, settings_env):
    from datetime import timedelta

    from backend.db.types import utcnow
    from backend.workers.heartbeat import beat

    settings_env(DATABASE_URL=engine.url.render_as_string(hide_password=False))
    beat(engine, "bot", {"connected": True, "guilds": 2, "source_channels": 3,
                         "last_message_at": "2026-11-22T10:00:00+00:00"})
    beat(engine, "scheduler", {"jobs": ["heartbeat"]})
    with engine.begin() as conn:   # the scheduler stopped writing two minutes ago
        conn.execute(sa.text("UPDATE worker_heartbeats SET last_seen = :t WHERE name = 'scheduler'"),
                     {"t": utcnow() - timedelta(minutes=2)})
    r = client.get("/readyz")
    assert r.status_code == 200
    workers = r.json()["workers"]
    assert workers["bot"]["alive"] is True and workers["bot"]["connected"] is True
    assert (workers["bot"]["guilds"], workers["bot"]["last_message_at"]) == (2, "2026-11-22T10:00:00+00:00")
    assert workers["scheduler"]["alive"] is False and workers["scheduler"]["age_seconds"] >= 119


def test_readyz_names_an_unreachable_postgres_without_its_password(client, settings_env):
    settings_env(DATABASE_URL="postgresql://admin:hunter2-secret@127.0.0.1:1/app")
    r = client.get("/readyz")
    assert r.status_code == 503
    body = r.json()
    assert body["database"] == "unavailable" and body["redis"] == "not configured"
    assert body["message"] == "not ready: database unavailable"
    assert "OperationalError" in body["database_error"]
    assert "hunter2" not in r.text


def test_readyz_names_an_unopenable_sqlite_file(client, settings_env, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    settings_env(DATABASE_URL=f"sqlite:///{blocker}/app.db")
    r = client.get("/readyz")
    assert r.status_code == 503 and r.json()["database"] == "unavailable"


def test_readyz_checks_redis_when_configured(client, engine, settings_env, redis_client):
    url = redis_client.connection_pool.connection_kwargs
    settings_env(DATABASE_URL=engine.url.render_as_string(hide_password=False),
                 REDIS_URL=f"redis://{url['host']}:{url['port']}/{url['db']}")
    r = client.get("/readyz")
    assert (r.status_code, r.json()) == (200, {"database": "ok", "redis": "ok", "workers": {}})


def test_readyz_names_a_down_redis(client, engine, settings_env):
    settings_env(DATABASE_URL=engine.url.render_as_string(hide_password=False), REDIS_URL="redis://127.0.0.1:1/0")
    r = client.get("/readyz")
    assert r.status_code == 503
    body = r.json()
    assert (body["database"], body["redis"]) == ("ok", "unavailable")
    assert body["message"] == "not ready: redis unavailable"
    assert "ConnectionError" in body["redis_error"]


@pytest.fixture
def intake(monkeypatch):
    """Stand-in for the money path's entry point: the route's error mapping is what is tested here."""
    calls = []
    module = types.ModuleType("backend.services.trading")

    async def ingest_tradingview(token, body, now):  # async, like the real one
        calls.append((token, body, now))
        raise_for = {
            "bad-token": errors.WebhookAuthError("Unknown webhook token or wrong secret."),
            "stale": errors.StaleSignal("The alert is 300 s old; the limit is 60 s."),
            "garbage": errors.InvalidSignal("The alert body is not valid JSON.", field="body"),
            "invalid": errors.ValidationError("quantity must be positive", field="quantity"),
            "gone": errors.NotFound("This webhook was deleted."),
            "dup": errors.DuplicateSignal("Already received."),
            "busy": errors.TemporaryBrokerError("Database busy, try again."),
        }
        if token in raise_for:
            raise raise_for[token]
        return {"signal_id": 7, "status": "dispatched"}

    module.ingest_tradingview = ingest_tradingview
    monkeypatch.setitem(sys.modules, "backend.services.trading", module)
    return calls


@pytest.mark.parametrize("token,status,code", [
    ("bad-token", 401, "webhook_auth"),
    ("stale", 422, "stale_signal"),
    ("garbage", 400, "invalid_signal"),
    ("invalid", 400, "validation"),
    ("gone", 404, "not_found"),
    ("busy", 503, "temporary"),
])
def test_webhook_refusals_map_to_4xx_with_a_message(client, intake, token, status, code):
    r = client.post(f"/webhooks/tradingview/{token}", content=b"{not json")
    assert r.status_code == status
    assert r.json()["error"] == code and r.json()["message"]


def test_webhook_passes_the_raw_body_and_an_aware_time(client, intake):
    raw = b'{"secret":"s","text":"buy AAPL"}  '
    r = client.post("/webhooks/tradingview/good", content=raw, headers={"content-type": "text/plain"})
    assert (r.status_code, r.json()) == (200, {"status": "accepted", "result": {"signal_id": 7, "status": "dispatched"}})
    token, body, now = intake[-1]
    assert (token, body) == ("good", raw) and now.tzinfo is not None


def test_a_replayed_alert_is_acknowledged_not_refused(client, intake):
    r = client.post("/webhooks/tradingview/dup", content=b"{}")
    assert r.status_code == 200 and r.json()["status"] == "duplicate"


def test_an_oversized_alert_is_refused_before_parsing(client, intake):
    r = client.post("/webhooks/tradingview/good", content=b"x" * (65 * 1024))
    assert r.status_code == 413 and not intake


def test_webhook_only_accepts_post(client, intake):
    assert client.get("/webhooks/tradingview/good").status_code in (404, 405)
    assert not intake
