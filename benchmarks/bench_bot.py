"""Latency through the Discord bot: MESSAGE_CREATE on the gateway -> order acknowledged by the paper broker.

    .venv/bin/python benchmarks/bench_bot.py [--messages 500] [--warmup 20] [--admin-url URL]

Creates a throw-away Postgres database (from ``--admin-url``, dropped at the
end), seeds one follower with a paper account, starts the real discord.py
client (``TradeBot``) against the loopback fake Discord
(``tests/fakes/fake_discord.py``) and pushes ``--messages`` MESSAGE_CREATE
events, one at a time, alternating "BUY AAPL @ 185.50" and "Sell AAPL @ 185"
so every order fills and the position stays small.

Each sample runs from the moment the fake writes the event on the websocket
to the moment the bot's router has the money path's answer (signal stored,
risk decision, order intent, submitted to the paper venue, ack and fill
recorded): discord.py's websocket read and parse, the router, the hop to the
money loop, the whole money path.  Also printed: the part spent inside the
money path alone, and what the gateway + bot add.  Target: p95 < 25 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("APP_ENV", "test")
os.environ.setdefault("DATA_DIR", tempfile.mkdtemp(prefix="dte-bench-bot-"))

from sqlmodel import Session, select  # noqa: E402

from backend.bot.client import TradeBot  # noqa: E402
from backend.brokers.paper import PaperBroker  # noqa: E402
from backend.db.models import Community, Order, User  # noqa: E402
from backend.execution.seeding import seed_world, temporary_database  # noqa: E402
from fakes.fake_discord import FakeDiscord, running_fake  # noqa: E402

ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
GUILD, CHANNEL, PROVIDER, FOLLOWER = "510000000000000001", "520000000000000001", "530000000000000001", "530000000000000002"


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(pct / 100 * (len(ordered) - 1))))]


def seed(engine) -> int:
    with Session(engine, expire_on_commit=False) as s:
        world = seed_world(s, followers=1, tag="bench", source={"discord_channel_id": CHANNEL})
        s.get(User, world.provider.id).discord_id = PROVIDER
        s.get(User, world.followers[0].id).discord_id = FOLLOWER  # fill DMs go out during the run, as in production
        s.get(Community, world.community.id).discord_guild_id = GUILD
        s.commit()
        return world.accounts[0].id


async def run(engine, messages: int, warmup: int) -> None:
    account_id = seed(engine)
    await PaperBroker(engine, account_id).set_quote("AAPL", Decimal("185"))
    done: dict[int, tuple[float, float, dict]] = {}  # message id -> (perf time, money-path ms, result)
    arrived: asyncio.Queue = asyncio.Queue()

    def observer(_source, msg, result) -> None:
        now = time.perf_counter()
        money_ms = (time.time() - msg.received_at.timestamp()) * 1000
        done[msg.message_id] = (now, money_ms, result)
        arrived.put_nowait(msg.message_id)

    fake = FakeDiscord()
    fake.add_guild(GUILD, CHANNEL)
    async with running_fake(fake):
        bot = TradeBot(engine, observer=observer, guild_ready_timeout=0.01, heartbeat_seconds=5, dm_interval=1.0)
        await bot.login("bench-token")
        task = asyncio.create_task(bot.connect())
        await fake.wait_connected()
        while not bot.connected or bot.router.catching_up:
            await asyncio.sleep(0.01)
        total, inside = [], []
        for i in range(warmup + messages):
            text = "BUY AAPL @ 185.50" if i % 2 == 0 else "Sell AAPL @ 185"
            t0 = time.perf_counter()
            posted = await fake.post(CHANNEL, text, author_id=PROVIDER)
            message_id = await asyncio.wait_for(arrived.get(), 10)
            assert message_id == int(posted["id"])
            t1, money_ms, result = done[message_id]
            assert result.get("orders_submitted") == 1, result
            if i >= warmup:
                total.append((t1 - t0) * 1000)
                inside.append(money_ms)
        await bot.close()
        await task
        dms = len(fake.dms_to(FOLLOWER))
    with Session(engine) as s:
        orders = s.exec(select(Order)).all()
    filled = sum(1 for o in orders if o.status == "filled")
    gateway = [t - m for t, m in zip(total, inside)]
    print(f"messages: {messages} (after {warmup} warm-up) through the fake gateway; orders filled {filled}/{len(orders)}; "
          f"fill DMs delivered meanwhile: {dms}")
    print(f"gateway -> order acked: p50 {statistics.median(total):.2f} ms, p95 {percentile(total, 95):.2f} ms, "
          f"p99 {percentile(total, 99):.2f} ms, max {max(total):.2f} ms  (target p95 < 25 ms)")
    print(f"  of which the money path: p50 {statistics.median(inside):.2f} ms, p95 {percentile(inside, 95):.2f} ms; "
          f"websocket + discord.py + bot: p50 {statistics.median(gateway):.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--admin-url", default=os.environ.get("TEST_POSTGRES_URL", ADMIN_URL))
    args = parser.parse_args()
    with temporary_database(args.admin_url, prefix="dte_bench_bot") as engine:
        asyncio.run(run(engine, args.messages, args.warmup))


if __name__ == "__main__":
    main()
