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
Whenever the bus itself knows that a subscriber may have missed something
(its queue overflowed, its Redis connection was lost and re-established) it
puts ``RESYNC`` (``{"type": "bus.resync"}``) in the subscriber's queue, and
the subscriber reloads everything.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from datetime import date, datetime
from decimal import Decimal
from typing import Any

log = logging.getLogger(__name__)

QUEUE_SIZE = 10_000
SUBSCRIBE_TIMEOUT = 5.0
RESYNC_TYPE = "bus.resync"


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


RESYNC = encode({"type": RESYNC_TYPE})


def offer(queue: asyncio.Queue, message: str) -> bool:
    """Put ``message`` without ever blocking the producer; False when the queue had overflowed.

    A full queue belongs to a subscriber that stopped reading; rather than
    keep a stale backlog (or raise inside the pump, which would end it), the
    backlog is replaced by ``RESYNC``: whatever it held, reloading from the
    database covers it.
    """
    try:
        queue.put_nowait(message)
        return True
    except asyncio.QueueFull:
        while not queue.empty():
            queue.get_nowait()
        queue.put_nowait(RESYNC)
        if queue.maxsize != 1:
            queue.put_nowait(message)
        return False


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
                loop.call_soon_threadsafe(offer, queue, message)
            except RuntimeError:  # loop closed: the subscriber is gone
                pass

    @asynccontextmanager
    async def subscribe(self, *topics: str, maxsize: int = QUEUE_SIZE) -> AsyncIterator[asyncio.Queue]:
        queue: asyncio.Queue = asyncio.Queue(maxsize=maxsize)
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


def channel_prefix(url: str) -> str:
    """Redis pub/sub ignores the database number: without a prefix, two deployments (or test runs)
    sharing one server on different databases would receive each other's events."""
    from redis.connection import parse_url

    return f"dte:{parse_url(url).get('db', 0) or 0}:"


class RedisBus:
    """Redis pub/sub: crosses process boundaries (bot, scheduler, web workers).

    Each subscription has its own connection and pump task.  redis-py
    reconnects and re-subscribes by itself within its retry budget; when the
    budget is spent (Redis down for longer) the pump keeps retrying with a
    capped back-off instead of dying.  Either way the subscriber receives
    ``RESYNC`` once it is subscribed again, since events published meanwhile
    are lost.
    """

    def __init__(self, url: str, *, retry_delay: float = 0.2, max_retry_delay: float = 5.0) -> None:
        import redis

        self._url = url
        self._prefix = channel_prefix(url)
        self._sync = redis.Redis.from_url(url)
        self.retry_delay, self.max_retry_delay = retry_delay, max_retry_delay

    def channel(self, topic: str) -> str:
        return self._prefix + topic

    def publish(self, topic: str, event: dict[str, Any]) -> None:
        try:
            self._sync.publish(self.channel(topic), encode(event))
        except Exception as exc:  # a dashboard push must never break the money path
            log.warning("event bus publish failed for %s: %s", topic, exc)

    @asynccontextmanager
    async def subscribe(self, *topics: str, maxsize: int = QUEUE_SIZE) -> AsyncIterator[asyncio.Queue]:
        import redis.asyncio as aredis

        client = aredis.Redis.from_url(self._url, client_name=f"dte-bus-{os.getpid()}")
        pubsub = client.pubsub()
        channels = [self.channel(t) for t in topics]
        queue: asyncio.Queue = asyncio.Queue(maxsize=maxsize)
        try:
            await self._subscribed(pubsub, queue, channels)  # Redis unreachable now: the caller hears it at once
        except BaseException:
            await client.aclose()
            raise
        task = asyncio.create_task(self._pump(pubsub, queue, channels), name=f"bus-pump:{','.join(topics)}")
        try:
            yield queue
        finally:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
            with suppress(Exception):
                await pubsub.aclose()
            with suppress(Exception):
                await client.aclose()

    @staticmethod
    async def _subscribed(pubsub, queue: asyncio.Queue, channels: list[str]) -> None:
        """SUBSCRIBE and wait for Redis to confirm every channel: an event published after
        ``subscribe()`` returned must arrive (the command alone would only have been sent)."""
        import redis.exceptions as rexc

        await pubsub.subscribe(*channels)
        loop = asyncio.get_running_loop()
        deadline, confirmed = loop.time() + SUBSCRIBE_TIMEOUT, 0
        while confirmed < len(channels):
            if loop.time() > deadline:
                raise rexc.TimeoutError(f"Redis did not confirm the subscription to {channels}")
            msg = await pubsub.get_message(timeout=max(0.0, deadline - loop.time()))
            if msg is None:
                continue
            if msg.get("type") == "subscribe":
                confirmed += 1
            elif msg.get("type") == "message":
                data = msg["data"]
                offer(queue, data.decode() if isinstance(data, bytes) else data)

    async def _pump(self, pubsub, queue: asyncio.Queue, channels: list[str]) -> None:
        import redis.exceptions as rexc

        delay = self.retry_delay
        while True:
            try:
                async for msg in pubsub.listen():
                    kind = msg.get("type")
                    if kind == "message":
                        data = msg["data"]
                        if not offer(queue, data.decode() if isinstance(data, bytes) else data):
                            log.warning("event bus: a subscriber of %s fell behind; it will resync", channels)
                    elif kind == "subscribe":  # after _subscribed: the connection was renewed
                        offer(queue, RESYNC)
                    delay = self.retry_delay
                raise rexc.ConnectionError("the subscription ended")  # listen() stops once unsubscribed
            except (rexc.ConnectionError, rexc.TimeoutError, OSError) as exc:
                log.warning("event bus: lost Redis for %s (%s); retrying in %.1f s", channels, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_retry_delay)
                with suppress(rexc.ConnectionError, rexc.TimeoutError, OSError):
                    # Re-subscribing reconnects; its confirmation (above) puts RESYNC in the queue.
                    await pubsub.subscribe(*channels)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug must be loud, and must not leave the page silently deaf
                log.exception("event bus pump for %s failed; restarting it", channels)
                offer(queue, RESYNC)
                await asyncio.sleep(delay)


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
