"""The event bus that pushes changes to open dashboards (and the bot's DMs).

Producers (the execution engine, the bot worker, jobs) call ``publish``
after their transaction commits.  In the embedded default the bus is
in-process; with ``REDIS_URL`` set it is Redis pub/sub, so a bot process,
the scheduler and any number of web workers reach each other.

Topics are per user (``user:<id>``) so a subscriber only ever receives its
own user's events; each event is a small JSON dict with a ``type`` such as
``order.updated``, ``position.updated``, ``notification.created``.
Delivery is best-effort: a page that missed events resynchronises from the
database (the database is the truth, the bus only says "look again").
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from datetime import date, datetime
from typing import Any

log = logging.getLogger(__name__)


def user_topic(user_id: int) -> str:
    return f"user:{user_id}"


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def encode(event: dict[str, Any]) -> str:
    return json.dumps(event, default=_default, separators=(",", ":"))


class InProcessBus:
    """Fan-out to asyncio queues in this process; thread-safe publish."""

    def __init__(self) -> None:
        self._subs: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Queue]]] = defaultdict(set)
        self._lock = threading.Lock()

    def publish(self, topic: str, event: dict[str, Any]) -> None:
        message = encode(event)
        with self._lock:
            targets = list(self._subs.get(topic, ()))
        for loop, queue in targets:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, message)
            except RuntimeError:  # loop closed: the subscriber is gone
                pass

    @asynccontextmanager
    async def subscribe(self, *topics: str) -> AsyncIterator[asyncio.Queue]:
        queue: asyncio.Queue = asyncio.Queue(maxsize=10_000)
        entry = (asyncio.get_running_loop(), queue)
        with self._lock:
            for t in topics:
                self._subs[t].add(entry)
        try:
            yield queue
        finally:
            with self._lock:
                for t in topics:
                    self._subs[t].discard(entry)


class RedisBus:
    """Redis pub/sub: crosses process boundaries (bot, scheduler, web workers)."""

    def __init__(self, url: str) -> None:
        import redis
        import redis.asyncio as aredis

        self._url = url
        self._sync = redis.Redis.from_url(url)
        self._aredis = aredis

    def publish(self, topic: str, event: dict[str, Any]) -> None:
        try:
            self._sync.publish(topic, encode(event))
        except Exception as exc:  # a dashboard push must never break the money path
            log.warning("event bus publish failed for %s: %s", topic, exc)

    @asynccontextmanager
    async def subscribe(self, *topics: str) -> AsyncIterator[asyncio.Queue]:
        client = self._aredis.Redis.from_url(self._url)
        pubsub = client.pubsub()
        await pubsub.subscribe(*topics)
        queue: asyncio.Queue = asyncio.Queue(maxsize=10_000)

        async def pump() -> None:
            async for msg in pubsub.listen():
                if msg.get("type") == "message":
                    data = msg["data"]
                    queue.put_nowait(data.decode() if isinstance(data, bytes) else data)

        task = asyncio.create_task(pump())
        try:
            yield queue
        finally:
            task.cancel()
            await pubsub.unsubscribe(*topics)
            await pubsub.aclose()
            await client.aclose()


_bus: InProcessBus | RedisBus | None = None


def get_bus() -> InProcessBus | RedisBus:
    global _bus
    if _bus is None:
        from backend.config import get_settings

        url = get_settings().redis_url
        _bus = RedisBus(url) if url else InProcessBus()
    return _bus


def set_bus(bus: InProcessBus | RedisBus | None) -> None:
    """Tests swap the bus; ``None`` makes the next ``get_bus`` read settings again."""
    global _bus
    _bus = bus


def publish_to_user(user_id: int, event: dict[str, Any]) -> None:
    get_bus().publish(user_topic(user_id), event)
