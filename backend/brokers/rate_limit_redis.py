"""A token bucket kept in Redis, so every process trading or reconciling one account shares one budget.

The execution worker, the scheduler's reconciliation job and the bot are
separate processes (often on separate machines); an in-process bucket each
would let them spend the account's allowance two or three times over.  With
``REDIS_URL`` set, ``rate_limit.shared_bucket`` hands out this bucket instead.

One Lua script does the whole arithmetic atomically on the server (refill
since the last call, take, work out the wait), with the server's own clock
(``TIME``), so processes with skewed clocks still agree.  As in the
in-process bucket, a reservation may drive the balance negative (a queue of
reservations, FIFO by arrival) and the caller sleeps for its share.  Values
travel as strings: Redis would truncate a Lua number to an integer.

If Redis cannot be reached the bucket falls back to an in-process one and
says so once in the log: a pause in rate limiting across processes costs
less than a pause in trading, and the halved rates leave headroom.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from backend.brokers.rate_limit import Sleeper, TokenBucket

log = logging.getLogger(__name__)
KEY_PREFIX = "dte:ratelimit:"

# KEYS[1] the bucket hash; ARGV rate per second, capacity, tokens wanted, now ('' = server TIME),
# mode: 'reserve' (take, may go negative), 'try' (take only if available), 'peek'.
# Returns {seconds to wait (-1: 'try' refused), tokens left}.
_SCRIPT = """
local rate, cap, want = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local now
if ARGV[4] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
else
  now = tonumber(ARGV[4])
end
local state = redis.call('HMGET', KEYS[1], 'tokens', 'updated')
local tokens, updated = tonumber(state[1]), tonumber(state[2])
if tokens == nil or updated == nil then
  tokens, updated = cap, now
end
tokens = math.min(cap, tokens + math.max(0, now - updated) * rate)
local wait = 0
if ARGV[5] == 'reserve' then
  tokens = tokens - want
  if tokens < 0 then wait = -tokens / rate end
elseif ARGV[5] == 'try' then
  if tokens >= want then tokens = tokens - want else wait = -1 end
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'updated', tostring(math.max(now, updated)))
redis.call('PEXPIRE', KEYS[1], math.ceil((cap + math.max(0, -tokens)) / rate * 1000) + 60000)
return {tostring(wait), tostring(tokens)}
"""


class RedisTokenBucket:
    """The interface of ``TokenBucket`` (``reserve``, ``try_acquire``, ``acquire``, ``available``).

    ``client``: a ``redis.Redis`` (sync; thread-safe pool), called from a
    worker thread in ``acquire`` so the event loop never waits on the network.
    ``clock``: tests only; by default the Redis server's clock is used.
    """

    def __init__(self, client, name: str, rate_per_minute: float, capacity: float | None = None, *,
                 clock: Callable[[], float] | None = None, sleep: Sleeper = asyncio.sleep) -> None:
        if rate_per_minute <= 0:
            raise ValueError("rate_per_minute must be positive")
        self.rate_per_minute = float(rate_per_minute)
        self.capacity = float(capacity if capacity is not None else max(1.0, rate_per_minute / 10))
        self.key = KEY_PREFIX + name
        self._client = client
        self._script = client.register_script(_SCRIPT)
        self._clock, self._sleep = clock, sleep
        self._local: TokenBucket | None = None  # the fallback while Redis is unreachable
        self._degraded = False

    def _run(self, tokens: float, mode: str) -> tuple[float, float] | None:
        import redis.exceptions as rexc

        now = "" if self._clock is None else repr(float(self._clock()))
        try:
            wait, left = self._script(keys=[self.key], args=[repr(self.rate_per_minute / 60.0), repr(self.capacity),
                                                             repr(float(tokens)), now, mode])
        except rexc.RedisError as exc:
            if not self._degraded:
                log.warning("rate limit %s: Redis unreachable (%s); limiting in this process only until it is back",
                            self.key, type(exc).__name__)
                self._degraded = True
            return None
        if self._degraded:
            log.info("rate limit %s: Redis is back; the budget is shared again", self.key)
            self._degraded = False
        return float(wait), float(left)

    def _fallback(self) -> TokenBucket:
        if self._local is None:
            self._local = TokenBucket(self.rate_per_minute, self.capacity, sleep=self._sleep)
        return self._local

    def reserve(self, tokens: float = 1.0) -> float:
        answer = self._run(tokens, "reserve")
        return self._fallback().reserve(tokens) if answer is None else answer[0]

    def try_acquire(self, tokens: float = 1.0) -> bool:
        answer = self._run(tokens, "try")
        return self._fallback().try_acquire(tokens) if answer is None else answer[0] >= 0

    async def acquire(self, tokens: float = 1.0) -> float:
        wait = await asyncio.to_thread(self.reserve, tokens)
        if wait > 0:
            await self._sleep(wait)
        return wait

    @property
    def available(self) -> float:
        answer = self._run(0, "peek")
        return self._fallback().available if answer is None else answer[1]
