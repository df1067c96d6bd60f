"""The Redis token bucket: one budget per account across processes, against the real Redis (TEST_REDIS_URL).

Two limiter instances with separate connections stand for the execution
worker and the scheduler; two real OS processes then draw from one bucket
with the Redis server's clock.  With Redis unreachable the bucket limits in
the process (and says so) instead of failing the request.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import redis

from backend.brokers import rate_limit
from backend.brokers.rate_limit import TokenBucket, forget_buckets, shared_bucket
from backend.brokers.rate_limit_redis import KEY_PREFIX, RedisTokenBucket

ROOT = Path(__file__).resolve().parents[3]


class Clock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def url(redis_client) -> str:
    """The test Redis (its database emptied by ``redis_client`` before and after)."""
    kwargs = redis_client.connection_pool.connection_kwargs
    return f"redis://{kwargs['host']}:{kwargs['port']}/{kwargs['db']}"


@pytest.fixture(autouse=True)
def fresh_registry():
    forget_buckets()
    yield
    forget_buckets()


def pair(url: str, name: str, clock: Clock, **kw) -> tuple[RedisTokenBucket, RedisTokenBucket]:
    """Two limiters of one account, each with its own connection pool (as two processes would have)."""
    return tuple(RedisTokenBucket(redis.Redis.from_url(url), name, 60, 3, clock=clock, **kw) for _ in range(2))


def test_two_limiters_with_their_own_connections_share_one_budget(url):
    clock = Clock()
    worker, scheduler = pair(url, f"t:{uuid.uuid4().hex}", clock)
    assert [worker.reserve() for _ in range(2)] + [scheduler.reserve()] == [0, 0, 0]   # capacity 3, shared
    assert scheduler.reserve() == pytest.approx(1.0)   # 60/min: the 4th waits a second ...
    assert worker.reserve() == pytest.approx(2.0)      # ... and the 5th two, whoever asks
    assert not worker.try_acquire() and scheduler.available == pytest.approx(-2.0)
    clock.now += 5                                     # refills to the capacity, never beyond
    assert worker.available == pytest.approx(3.0) and scheduler.try_acquire()


def test_an_in_process_bucket_of_each_would_have_spent_the_budget_twice():
    clock = Clock()
    worker, scheduler = (TokenBucket(60, 3, clock=clock) for _ in range(2))
    assert [b.reserve() for b in (worker, scheduler) for _ in range(3)] == [0] * 6   # what Redis prevents


def test_the_bucket_key_holds_no_credential_and_expires(url, redis_client):
    key = rate_limit.account_key("PKSECRETKEY", False)
    bucket = RedisTokenBucket(redis.Redis.from_url(url), f"alpaca:{key}", 60, 3)
    bucket.reserve()
    [stored] = redis_client.keys(f"{KEY_PREFIX}*")
    assert b"PKSECRET" not in stored and 0 < redis_client.pttl(stored) <= (3 + 60) * 1000


_CHILD = """
import asyncio, json, sys, time
sys.path.insert(0, sys.argv[1])
import redis
from backend.brokers.rate_limit_redis import RedisTokenBucket
bucket = RedisTokenBucket(redis.Redis.from_url(sys.argv[2]), sys.argv[3], 600, 5)
start = float(sys.argv[4])
while time.time() < start:
    time.sleep(0.001)
async def main():
    waits = [await bucket.acquire() for _ in range(10)]
    print(json.dumps({"waits": waits, "elapsed": time.time() - start}))
asyncio.run(main())
"""


def test_two_processes_draw_from_one_bucket(url):
    """600/min with 5 in the bucket: 20 requests between two processes take ~1.5 s, not ~0.5 s each."""
    name, start = f"proc:{uuid.uuid4().hex}", time.time() + 1.0
    children = [subprocess.Popen([sys.executable, "-c", _CHILD, str(ROOT), url, name, repr(start)],
                                 stdout=subprocess.PIPE, text=True) for _ in range(2)]
    results = [json.loads(child.communicate(timeout=60)[0]) for child in children]
    assert all(child.returncode == 0 for child in children)
    waits = sorted(w for r in results for w in r["waits"])
    assert sum(1 for w in waits if w == 0) == 5                      # the bucket's capacity, once for both
    elapsed = max(r["elapsed"] for r in results)
    assert 1.3 <= elapsed <= 3.0, elapsed                            # 15 more at 10 a second; alone ~0.5 s each


def test_shared_bucket_uses_redis_when_configured_and_the_process_otherwise(url, settings_env):
    settings_env(REDIS_URL=url)
    in_redis = shared_bucket("alpaca", "k1", 100)
    assert isinstance(in_redis, RedisTokenBucket) and in_redis is shared_bucket("alpaca", "k1", 100)
    forget_buckets()
    settings_env(REDIS_URL="")
    assert type(shared_bucket("alpaca", "k1", 100)) is TokenBucket


async def test_with_redis_down_requests_are_limited_in_process_and_it_is_logged(caplog):
    down = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    bucket = RedisTokenBucket(down, "down", 60, 2, sleep=sleep)
    with caplog.at_level(logging.WARNING, logger="backend.brokers.rate_limit_redis"):
        waits = [await bucket.acquire() for _ in range(3)]
    assert waits[:2] == [0, 0] and waits[2] == pytest.approx(1.0, abs=0.05) and len(slept) == 1
    assert sum("Redis unreachable" in r.getMessage() for r in caplog.records) == 1   # said once, not per request
