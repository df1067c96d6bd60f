"""Token buckets that keep each broker account under half its venue's published limit.

Why half: the venue counts every request of the account (other apps, the
member's own scripts, our reconciliation job), so we leave headroom instead
of discovering the limit through 429s and bans.

Why shared: two adapter instances for the same account (the execution queue
and the reconciliation job, say) must draw from ONE bucket, so buckets live in
a module-level registry keyed by ``(broker, account_key)``.  The key is built
by the adapter from non-secret material (a hash of the API key, a host:port).
The worker and the scheduler are separate processes: with ``REDIS_URL`` set
the bucket is kept in Redis (``rate_limit_redis``, an atomic Lua script) so
they share one budget; the embedded default (no Redis) keeps it in-process.

The bucket never holds an ``asyncio`` primitive: a caller reserves its token
under a thread lock (tokens may go negative = a queue of reservations) and
then sleeps for its own share of the deficit.  That keeps FIFO order, works
from any event loop or thread, and makes the arithmetic testable with an
injected clock.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections.abc import Awaitable, Callable

Clock = Callable[[], float]
Sleeper = Callable[[float], Awaitable[None]]

# Published limits (requests per minute) the adapters halve.
ALPACA_PUBLISHED_PER_MINUTE = 200
# IBKR documents 50 API messages per SECOND per client connection.
IBKR_PUBLISHED_PER_MINUTE = 50 * 60


def half_of(published_per_minute: float) -> int:
    return max(1, int(published_per_minute // 2))


def ccxt_published_per_minute(rate_limit_ms: float | int | None) -> float:
    """ccxt's ``exchange.rateLimit`` is the minimum gap between requests in milliseconds."""
    if not rate_limit_ms or rate_limit_ms <= 0:
        return 60.0  # unknown: assume one request a second
    return 60_000 / float(rate_limit_ms)


class TokenBucket:
    """``rate_per_minute`` tokens refill continuously; at most ``capacity`` accumulate."""

    def __init__(
        self,
        rate_per_minute: float,
        capacity: float | None = None,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleeper = asyncio.sleep,
    ) -> None:
        if rate_per_minute <= 0:
            raise ValueError("rate_per_minute must be positive")
        self.rate_per_minute = float(rate_per_minute)
        self.capacity = float(capacity if capacity is not None else max(1.0, rate_per_minute / 10))
        self._per_second = self.rate_per_minute / 60.0
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.capacity
        self._updated = clock()
        self._lock = threading.Lock()

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self._updated)
        self._tokens = min(self.capacity, self._tokens + elapsed * self._per_second)
        self._updated = now

    def reserve(self, tokens: float = 1.0) -> float:
        """Take ``tokens`` now and return how many seconds the caller must wait before using them."""
        with self._lock:
            self._refill(self._clock())
            self._tokens -= tokens
            if self._tokens >= 0:
                return 0.0
            return -self._tokens / self._per_second

    def try_acquire(self, tokens: float = 1.0) -> bool:
        """Take ``tokens`` only if available right now (never queues)."""
        with self._lock:
            self._refill(self._clock())
            if self._tokens >= tokens:
                self._tokens -= tokens
                return True
            return False

    async def acquire(self, tokens: float = 1.0) -> float:
        """Wait for a token; returns the seconds waited (0 when the bucket had one)."""
        wait = self.reserve(tokens)
        if wait > 0:
            await self._sleep(wait)
        return wait

    @property
    def available(self) -> float:
        with self._lock:
            self._refill(self._clock())
            return self._tokens


_BUCKETS: dict[tuple[str, str], TokenBucket] = {}
_REGISTRY_LOCK = threading.Lock()
_REDIS_CLIENTS: dict[str, object] = {}


def shared_bucket(broker: str, account_key: str, rate_per_minute: float, *, redis_url: str | None = None,
                  **kwargs) -> TokenBucket:
    """The one bucket of this account (created on first use).

    With Redis configured (``redis_url``, default the ``REDIS_URL`` setting) the
    bucket lives in Redis and every process shares it (``rate_limit_redis``);
    without it (the embedded default) it lives in this process.
    """
    url = redis_url if redis_url is not None else _configured_redis_url()
    key = (broker, account_key)
    with _REGISTRY_LOCK:
        bucket = _BUCKETS.get(key)
        if bucket is None:
            if url:
                from backend.brokers.rate_limit_redis import RedisTokenBucket

                client = _REDIS_CLIENTS.get(url)
                if client is None:
                    import redis

                    client = _REDIS_CLIENTS[url] = redis.Redis.from_url(url, socket_timeout=2,
                                                                        socket_connect_timeout=2)
                bucket = RedisTokenBucket(client, f"{broker}:{account_key}", rate_per_minute, **kwargs)
            else:
                bucket = TokenBucket(rate_per_minute, **kwargs)
            _BUCKETS[key] = bucket
        return bucket


def _configured_redis_url() -> str | None:
    from backend.config import get_settings

    return get_settings().redis_url or None


def forget_buckets() -> None:
    """Tests only: start from empty buckets."""
    with _REGISTRY_LOCK:
        _BUCKETS.clear()


def account_key(*parts: object) -> str:
    """A stable, non-reversible key for an account (never the credential itself)."""
    raw = "\x1f".join("" if p is None else str(p) for p in parts)
    return hashlib.sha256(raw.encode()).hexdigest()[:16]
