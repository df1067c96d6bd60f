"""Latency of the money path for one follower: Discord message in -> order acknowledged.

    .venv/bin/python benchmarks/bench_signal_to_ack.py [--signals 500] [--admin-url URL]

Creates a throw-away Postgres database, seeds one follower with a paper
account, then sends ``--signals`` messages through
``services.trading.ingest_discord_message`` (alternating "Buy AAPL" and
"Sell AAPL", so every order fills and the position stays small).  Each
sample is timed from the call's start twice: until the paper venue returns
the acknowledged order (parse, store the signal, fan out: risk decision,
order intent and audit committed, then the venue's placement committed),
which is what the target is about, and until the call returns (the ack and
the fill recorded, the position booked, the member's notification queued).
Prints p50/p95/max of both in milliseconds, the statements and the database
round trips per signal (see ``seeding.StatementCounter``).  Target: p95 of
signal -> ack < 10 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("APP_ENV", "test")
os.environ.setdefault("DATA_DIR", tempfile.mkdtemp(prefix="dte-bench-"))

from sqlmodel import Session, select  # noqa: E402

from backend.brokers.paper import PaperBroker  # noqa: E402
from backend.db.models import Order  # noqa: E402
from backend.execution.adapters import Adapters  # noqa: E402
from backend.execution.seeding import DbTimer, StatementCounter, seed_world, temporary_database  # noqa: E402
from backend.services import trading  # noqa: E402

ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(pct / 100 * (len(ordered) - 1))))]


def time_acks(acks: list[float]) -> None:
    """Note when the paper venue returns each placement (the broker's acknowledgement): the
    benchmark's own probe on ``PaperBroker._place``, which every paper placement goes through."""
    place = PaperBroker._place

    def timed(self, requests):
        answers = place(self, requests)
        acks.append(time.perf_counter())
        return answers

    PaperBroker._place = timed


def report(label: str, samples: list[float]) -> None:
    print(f"{label}: p50 {statistics.median(samples):.2f} ms, p95 {percentile(samples, 95):.2f} ms, "
          f"p99 {percentile(samples, 99):.2f} ms, max {max(samples):.2f} ms")


async def run(engine, signals: int, warmup: int) -> None:
    with Session(engine, expire_on_commit=False) as s:
        world = seed_world(s, followers=1, tag="bench")
    await PaperBroker(engine, world.accounts[0].id).set_quote("AAPL", Decimal("100"))
    adapters = Adapters(engine)
    counter = StatementCounter(engine)
    db = DbTimer(engine)
    samples: list[float] = []
    to_ack: list[float] = []
    acks: list[float] = []
    time_acks(acks)
    statements = round_trips = 0
    db_ms = 0.0
    for i in range(warmup + signals):
        text = "Buy AAPL" if i % 2 == 0 else "Sell AAPL"
        now = datetime.now(timezone.utc)
        before, trips_before, db_before = counter.count, counter.round_trips, db.ms
        acks.clear()
        t0 = time.perf_counter()
        result = await trading.ingest_discord_message(channel_id=world.source.discord_channel_id, message_id=str(i),
                                                      content=text, sent_at=now, now=now, engine=engine,
                                                      adapters=adapters)
        elapsed = (time.perf_counter() - t0) * 1000
        assert result.get("orders_submitted") == 1 and len(acks) == 1, (result, acks)
        if i >= warmup:
            samples.append(elapsed)
            to_ack.append((acks[0] - t0) * 1000)
            statements += counter.count - before
            round_trips += counter.round_trips - trips_before
            db_ms += db.ms - db_before
    with Session(engine) as s:
        orders = s.exec(select(Order)).all()
    filled = sum(1 for o in orders if o.status == "filled")
    print(f"signals: {signals} (after {warmup} warm-up), orders filled: {filled}/{len(orders)}")
    report("signal -> ack by the paper broker (target p95 < 10 ms)", to_ack)
    report("signal -> fill and position booked (the call returns)", samples)
    print(f"database statements per signal: {statements / signals:.1f} in {round_trips / signals:.1f} round trips "
          f"(BEGIN and COMMIT included); {db_ms / signals:.2f} ms per signal inside the statements SQLAlchemy "
          "sends itself (pipelined ones are not timed)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signals", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--admin-url", default=os.environ.get("TEST_POSTGRES_URL", ADMIN_URL))
    args = parser.parse_args()
    with temporary_database(args.admin_url) as engine:
        asyncio.run(run(engine, args.signals, args.warmup))


if __name__ == "__main__":
    main()
