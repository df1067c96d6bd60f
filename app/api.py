"""Plain HTTP routes beside Reflex: health probes and the TradingView webhook.

Mounted with ``rx.App(api_transformer=...)``; these routes are matched
before Reflex's own, on the same port.

* ``GET /healthz``: the process is up (no I/O; for liveness probes).
* ``GET /readyz``: the process can serve: the database answers ``select 1``
  and, when ``REDIS_URL`` is set, Redis answers PING.  503 names the part
  that failed, so an operator knows where to look.  ``workers`` reports the
  background processes' heartbeats (bot connected, guilds, last message);
  a dead worker does not make the web process unready, it is shown.
* ``POST /webhooks/tradingview/{token}``: TradingView alerts.  The raw body
  goes to ``backend.services.trading.ingest_tradingview`` untouched (the
  secret inside it is checked there).  Refusals map to 4xx with a JSON
  ``{"error": code, "message": ...}``; bad input never produces a 500.
* ``/auth/discord/*``: Discord sign-in (``app/auth_routes.py``).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict, is_dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from backend import errors
from backend.config import get_settings
from backend.db.types import utcnow
from app.auth_routes import auth_routes
from pages import routes

log = logging.getLogger(__name__)

READY_TIMEOUT_SECONDS = 5.0
MAX_WEBHOOK_BYTES = 64 * 1024

# Most specific first: StaleSignal is an InvalidSignal is a ValidationError.
_ERROR_STATUS: list[tuple[type[errors.TradeExecutorError], int]] = [
    (errors.WebhookAuthError, 401),
    (errors.StaleSignal, 422),
    (errors.DuplicateSignal, 200),
    (errors.InvalidSignal, 400),
    (errors.ValidationError, 400),
    (errors.NotFound, 404),
    (errors.PermissionDenied, 403),
]


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status)


async def healthz(_request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


def _short(exc: BaseException) -> str:
    """One line, no secrets: the exception class and the first line of its message."""
    from backend.security.redact import redact

    first = (str(exc).strip().splitlines() or [""])[0]
    return redact(f"{type(exc).__name__}: {first}"[:300])


def _check_database() -> None:
    import sqlalchemy as sa

    from backend.db.session import get_engine

    with get_engine().connect() as conn:
        conn.execute(sa.text("select 1"))


def _workers() -> dict[str, Any]:
    from backend.db.session import get_engine
    from backend.services.worker_health import readiness_view, worker_health

    with get_engine().connect() as conn:
        return readiness_view(worker_health(conn))


def _check_redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    finally:
        client.close()


async def _probe(check, *args) -> str | None:
    """None when the check passes, else a one-line reason."""
    try:
        await asyncio.wait_for(run_in_threadpool(check, *args), READY_TIMEOUT_SECONDS)
    except asyncio.TimeoutError:
        return f"no answer within {READY_TIMEOUT_SECONDS:g} s"
    except Exception as exc:  # any failure means "not ready"; the reason is reported, not raised
        return _short(exc)
    return None


async def readyz(_request: Request) -> JSONResponse:
    settings = get_settings()
    body: dict[str, Any] = {}
    failed = False
    db_problem = await _probe(_check_database)
    body["database"] = "ok" if db_problem is None else "unavailable"
    if db_problem:
        failed = True
        body["database_error"] = db_problem
    else:
        try:
            body["workers"] = await asyncio.wait_for(run_in_threadpool(_workers), READY_TIMEOUT_SECONDS)
        except Exception as exc:  # informative only: never turns readiness red
            body["workers_error"] = _short(exc)
    if settings.redis_url:
        redis_problem = await _probe(_check_redis, settings.redis_url)
        body["redis"] = "ok" if redis_problem is None else "unavailable"
        if redis_problem:
            failed = True
            body["redis_error"] = redis_problem
    else:
        body["redis"] = "not configured"
    if failed:
        parts = [name for name in ("database", "redis") if body.get(name) == "unavailable"]
        body["message"] = f"not ready: {' and '.join(parts)} unavailable"
        return JSONResponse(body, status_code=503)
    return JSONResponse(body)


def _jsonable(result: Any) -> dict[str, Any]:
    if result is None:
        return {}
    if is_dataclass(result):
        result = asdict(result)
    if isinstance(result, dict):
        return {k: (v if isinstance(v, (str, int, float, bool, type(None), list)) else str(v))
                for k, v in result.items()}
    return {"result": str(result)}


async def tradingview_webhook(request: Request) -> JSONResponse:
    token = request.path_params["token"]
    body = await request.body()
    if len(body) > MAX_WEBHOOK_BYTES:
        return _error(413, "too_large", f"The alert body is larger than {MAX_WEBHOOK_BYTES // 1024} kB.")
    from backend.services.trading import ingest_tradingview  # lazy: the web app starts without the engine loaded

    try:
        result = await ingest_tradingview(token, body, utcnow())
    except errors.TradeExecutorError as exc:
        for cls, status in _ERROR_STATUS:
            if isinstance(exc, cls):
                if status == 200:
                    return JSONResponse({"status": "duplicate", "message": exc.message})
                return _error(status, exc.code, exc.message)
        if exc.retryable:
            return _error(503, exc.code, exc.message)
        log.warning("tradingview webhook refused: %s", exc.message)
        return _error(400, exc.code, exc.message)
    if isinstance(result, dict) and result.get("status") == "stale":
        # Recorded (the history stays complete) but refused: TradingView's log shows why.
        return _error(422, "stale_signal", result.get("reason") or "The alert is too old to trade.")
    return JSONResponse({"status": "accepted", "result": _jsonable(result)})


def build_api() -> Starlette:
    """A new Starlette app each call (the tests build several)."""
    return Starlette(routes=[
        Route(routes.HEALTHZ, healthz, methods=["GET"]),
        Route(routes.READYZ, readyz, methods=["GET"]),
        Route(routes.TRADINGVIEW_WEBHOOK, tradingview_webhook, methods=["POST"]),
        *auth_routes(),
    ])
