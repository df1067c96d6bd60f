"""Token buckets: arithmetic with an injected clock, FIFO reservations, one bucket per account."""

from __future__ import annotations

import asyncio
import threading
import uuid

import pytest

from backend.brokers.alpaca import AlpacaAdapter
from backend.brokers.rate_limit import (
    TokenBucket,
    account_key,
    ccxt_published_per_minute,
    half_of,
    shared_bucket,
)
from fakes.fake_alpaca import FakeAlpaca
from fakes.loopback import serve


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


def bucket(rate: float = 60, capacity: float = 3) -> tuple[TokenBucket, FakeClock]:
    clock = FakeClock()
    return TokenBucket(rate, capacity, clock=clock, sleep=clock.sleep), clock


async def test_a_full_bucket_serves_its_capacity_then_spaces_requests_at_the_rate():
    b, clock = bucket(rate=60, capacity=3)  # one token a second
    waits = [await b.acquire() for _ in range(5)]
    assert waits == [0, 0, 0, pytest.approx(1.0), pytest.approx(2.0)]  # queued callers wait their turn
    assert clock.slept == [pytest.approx(1.0), pytest.approx(2.0)]


async def test_tokens_refill_with_time_up_to_the_capacity():
    b, clock = bucket(rate=120, capacity=4)  # two tokens a second
    for _ in range(4):
        await b.acquire()
    assert b.available == pytest.approx(0)
    clock.now += 1.0
    assert b.available == pytest.approx(2)
    clock.now += 60
    assert b.available == pytest.approx(4)


async def test_try_acquire_never_queues():
    b, clock = bucket(rate=60, capacity=1)
    assert b.try_acquire() is True
    assert b.try_acquire() is False
    clock.now += 1.0
    assert b.try_acquire() is True


def test_reservations_from_many_threads_are_all_accounted_for():
    b, _ = bucket(rate=60, capacity=10)
    waits: list[float] = []
    lock = threading.Lock()

    def take():
        w = b.reserve()
        with lock:
            waits.append(w)

    threads = [threading.Thread(target=take) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(waits) == [0] * 10 + [pytest.approx(float(i)) for i in range(1, 41)]


def test_rate_must_be_positive():
    with pytest.raises(ValueError):
        TokenBucket(0)


def test_shared_bucket_is_one_per_broker_and_account():
    key = account_key("k", uuid.uuid4().hex)
    assert shared_bucket("alpaca", key, 100) is shared_bucket("alpaca", key, 100)
    assert shared_bucket("alpaca", key, 100) is not shared_bucket("ccxt", key, 100)
    assert shared_bucket("alpaca", key, 100) is not shared_bucket("alpaca", key + "x", 100)


def test_account_keys_never_contain_the_credential():
    key = account_key("PKSECRETAPIKEY123", False)
    assert "PKSECRET" not in key and len(key) == 16 and key == account_key("PKSECRETAPIKEY123", False)


def test_published_limits_are_halved():
    assert half_of(200) == 100  # Alpaca
    assert half_of(ccxt_published_per_minute(50)) == 600  # ccxt binance rateLimit 50 ms
    assert half_of(ccxt_published_per_minute(1000)) == 30  # ccxt kraken rateLimit 1000 ms
    assert ccxt_published_per_minute(None) == 60
    assert AlpacaAdapter.capabilities.max_requests_per_minute == 100


async def test_two_adapters_of_one_account_draw_from_one_bucket():
    """Two Alpaca adapter instances for the same key: the 11th request between them has to wait."""
    fake = FakeAlpaca(api_key=f"PK{uuid.uuid4().hex[:12].upper()}")
    clock = FakeClock()
    shared = shared_bucket("alpaca", account_key(fake.api_key, False), 60, capacity=10, clock=clock, sleep=clock.sleep)
    async with serve(fake.app()) as url:
        creds = {"api_key": fake.api_key, "api_secret": fake.api_secret}
        first, second = AlpacaAdapter(credentials=creds, base_url=url), AlpacaAdapter(credentials=creds, base_url=url)
        assert first._bucket is second._bucket is shared
        await asyncio.gather(*(a.account() for a in (first, second) for _ in range(6)))
        await first.close()
        await second.close()
    assert clock.slept == [pytest.approx(1.0), pytest.approx(2.0)]
