"""The Redis event bus against the real Redis: across processes, to every subscriber, through
overflow and through lost connections (the dashboard must never go silently deaf)."""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import redis as redis_sync

from backend.events import RESYNC, RedisBus, user_topic
from fakes.tcp_proxy import TcpProxy

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.redis


@pytest.fixture
def redis_url(redis_client) -> str:
    kw = redis_client.connection_pool.connection_kwargs
    return f"redis://{kw['host']}:{kw['port']}/{kw['db']}"


@pytest.fixture
def user_id() -> int:
    """Pub/sub channels are server-wide: a random user keeps parallel runs apart."""
    return random.randrange(10**9, 2 * 10**9)


async def next_message(queue: asyncio.Queue, timeout: float = 3.0) -> str:
    return await asyncio.wait_for(queue.get(), timeout)


async def publish_until_received(bus: RedisBus, queue: asyncio.Queue, topic: str, *, within: float) -> list[str]:
    """Publish a marker every 100 ms until the subscriber gets one; everything it got meanwhile."""
    seen: list[str] = []
    deadline = asyncio.get_running_loop().time() + within
    n = 0
    while asyncio.get_running_loop().time() < deadline:
        n += 1
        await asyncio.to_thread(bus.publish, topic, {"type": "order.updated", "n": n})
        try:
            while True:
                seen.append(await asyncio.wait_for(queue.get(), 0.1))
                if json.loads(seen[-1]).get("type") == "order.updated":
                    return seen
        except TimeoutError:
            continue
    pytest.fail(f"no event reached the subscriber within {within} s; it got {seen}")


async def test_an_event_published_by_another_process_reaches_the_subscriber(redis_url, user_id):
    bus = RedisBus(redis_url)
    async with bus.subscribe(user_topic(user_id)) as queue:
        code = ("import sys; from backend.events import RedisBus; b = RedisBus(sys.argv[1]);"
                "[b.publish(sys.argv[2], {'type': 'order.updated', 'order_id': i}) for i in range(3)]")
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        await asyncio.to_thread(subprocess.run, [sys.executable, "-c", code, redis_url, user_topic(user_id)],
                                cwd=ROOT, env=env, check=True, timeout=60)
        got = [json.loads(await next_message(queue)) for _ in range(3)]
    assert [e["order_id"] for e in got] == [0, 1, 2]
    assert {e["type"] for e in got} == {"order.updated"}


async def test_every_subscriber_of_the_topic_gets_each_event_and_no_one_else(redis_url, user_id):
    bus = RedisBus(redis_url)
    async with bus.subscribe(user_topic(user_id)) as a, bus.subscribe(user_topic(user_id)) as b, \
            bus.subscribe(user_topic(user_id), user_topic(user_id + 1)) as both, \
            bus.subscribe(user_topic(user_id + 1)) as other:
        bus.publish(user_topic(user_id), {"type": "position.updated", "qty": "1.5"})
        for queue in (a, b, both):
            assert json.loads(await next_message(queue)) == {"type": "position.updated", "qty": "1.5"}
        bus.publish(user_topic(user_id + 1), {"type": "order.updated"})
        assert json.loads(await next_message(other))["type"] == "order.updated"
        assert json.loads(await next_message(both))["type"] == "order.updated"
        await asyncio.sleep(0.2)
        assert a.empty() and b.empty()  # user_id never saw user_id + 1's event


async def test_another_database_on_the_same_server_is_another_bus(redis_url, user_id):
    mine = RedisBus(redis_url)
    db = int(redis_url.rsplit("/", 1)[1])
    theirs = RedisBus(redis_url.rsplit("/", 1)[0] + f"/{(db + 1) % 16}")
    async with mine.subscribe(user_topic(user_id)) as queue:
        theirs.publish(user_topic(user_id), {"type": "order.updated", "from": "theirs"})
        mine.publish(user_topic(user_id), {"type": "order.updated", "from": "mine"})
        assert json.loads(await next_message(queue))["from"] == "mine"
        await asyncio.sleep(0.2)
        assert queue.empty()


async def test_a_full_queue_turns_into_a_resync_and_the_pump_keeps_running(redis_url, user_id):
    bus = RedisBus(redis_url)
    async with bus.subscribe(user_topic(user_id), maxsize=3) as queue:
        for i in range(10):  # nobody reads: the queue overflows several times
            bus.publish(user_topic(user_id), {"type": "order.updated", "n": i})
        deadline = asyncio.get_running_loop().time() + 3
        while "9" not in "".join(queue._queue) and asyncio.get_running_loop().time() < deadline:  # noqa: SLF001
            await asyncio.sleep(0.02)
        backlog = [queue.get_nowait() for _ in range(queue.qsize())]
        assert RESYNC in backlog
        assert json.loads(backlog[-1]) == {"type": "order.updated", "n": 9}
        assert len(backlog) <= 3
        bus.publish(user_topic(user_id), {"type": "order.updated", "n": 10})
        assert json.loads(await next_message(queue)) == {"type": "order.updated", "n": 10}


async def test_the_subscriber_comes_back_after_redis_drops_its_connection(redis_url, redis_client, user_id):
    bus = RedisBus(redis_url)
    async with bus.subscribe(user_topic(user_id)) as queue:
        bus.publish(user_topic(user_id), {"type": "order.updated"})
        await next_message(queue)
        mine = [c for c in redis_client.client_list(_type="pubsub") if c["name"] == f"dte-bus-{os.getpid()}"]
        assert len(mine) == 1
        redis_client.client_kill_filter(_id=mine[0]["id"])
        seen = await publish_until_received(bus, queue, user_topic(user_id), within=10)
        assert RESYNC in seen  # it says that it may have missed events
        after = [c for c in redis_client.client_list(_type="pubsub") if c["name"] == f"dte-bus-{os.getpid()}"]
        assert len(after) == 1 and after[0]["id"] != mine[0]["id"]


async def test_the_subscriber_comes_back_after_redis_was_unreachable_for_seconds(redis_url, user_id):
    kw = redis_sync.connection.parse_url(redis_url)
    proxy = await TcpProxy(kw.get("host", "127.0.0.1"), kw.get("port", 6379)).start()
    via_proxy = RedisBus(f"redis://127.0.0.1:{proxy.port}/{kw.get('db', 0)}", retry_delay=0.1, max_retry_delay=0.5)
    direct = RedisBus(redis_url)
    try:
        async with via_proxy.subscribe(user_topic(user_id)) as queue:
            direct.publish(user_topic(user_id), {"type": "order.updated"})
            await next_message(queue)
            await proxy.pause()  # connection cut and refused: redis-py's own retries run out
            direct.publish(user_topic(user_id), {"type": "order.updated", "lost": True})
            await asyncio.sleep(4)
            assert proxy.connections == 1
            await proxy.resume()
            seen = await publish_until_received(direct, queue, user_topic(user_id), within=10)
            assert RESYNC in seen
            assert not any(json.loads(m).get("lost") for m in seen)  # published while down: gone, hence RESYNC
            assert proxy.connections >= 2
    finally:
        await proxy.close()
