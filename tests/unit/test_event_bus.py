"""The in-process event bus (embedded default): thread-safe publish, per-topic fan-out, overflow."""

from __future__ import annotations

import asyncio
import json
import threading

from backend.events import RESYNC, InProcessBus, encode, offer, user_topic
from decimal import Decimal


async def test_a_publish_from_another_thread_reaches_only_that_topics_subscribers():
    bus = InProcessBus()
    async with bus.subscribe(user_topic(1)) as one, bus.subscribe(user_topic(2)) as two:
        t = threading.Thread(target=bus.publish, args=(user_topic(1), {"type": "order.updated", "qty": Decimal("2.5")}))
        t.start()
        t.join()
        assert json.loads(await asyncio.wait_for(one.get(), 2)) == {"type": "order.updated", "qty": "2.5"}
        await asyncio.sleep(0.05)
        assert two.empty()
    bus.publish(user_topic(1), {"type": "order.updated"})  # no subscriber left: nothing to do, no error


async def test_an_overflowing_subscriber_gets_a_resync_and_keeps_receiving():
    bus = InProcessBus()
    async with bus.subscribe(user_topic(1), maxsize=2) as queue:
        for i in range(5):
            bus.publish(user_topic(1), {"type": "order.updated", "n": i})
        await asyncio.sleep(0.05)
        backlog = [queue.get_nowait() for _ in range(queue.qsize())]
        assert backlog == [RESYNC, encode({"type": "order.updated", "n": 4})]
        bus.publish(user_topic(1), {"type": "order.updated", "n": 5})
        assert json.loads(await asyncio.wait_for(queue.get(), 2))["n"] == 5


def test_offer_on_a_queue_of_one_keeps_only_the_resync():
    queue: asyncio.Queue = asyncio.Queue(maxsize=1)
    assert offer(queue, "a") is True
    assert offer(queue, "b") is False
    assert [queue.get_nowait() for _ in range(queue.qsize())] == [RESYNC]
