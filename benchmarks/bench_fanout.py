"""Fan-out: one signal, 1,000 auto-trading followers, until every order is acknowledged.

    .venv/bin/python benchmarks/bench_fanout.py [--followers 1000] [--admin-url URL]

Creates a throw-away Postgres database, seeds ``--followers`` followers (one
paper account each), then measures ``services.trading.ingest_discord_message``
for three signals: "Buy AAPL" with cold adapters (a fresh process: the paper
venue opens each account's books on first use), "Sell AAPL" and "Buy AAPL"
again with warm adapters.  Each call returns once every follower's order is
acknowledged (and filled) by the paper venue and recorded.  Prints seconds,
and the database statements and round trips per follower (see
``seeding.StatementCounter``).  Target: < 2 s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("APP_ENV", "test")
os.environ.setdefault("DATA_DIR", tempfile.mkdtemp(prefix="dte-bench-"))

import sqlalchemy as sa  # noqa: E402
from sqlmodel import Session, select  # noqa: E402

from backend.brokers.paper import PaperBroker  # noqa: E402
from backend.db.models import Order  # noqa: E402
from backend.execution.adapters import Adapters  # noqa: E402
from backend.execution.seeding import DbTimer, StatementCounter, seed_world, temporary_database  # noqa: E402
from backend.services import trading  # noqa: E402

ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


async def one_signal(engine, world, adapters, counter, db, text: str, message_id: str, followers: int) -> None:
    before, trips_before, db_before = counter.count, counter.round_trips, db.ms
    now = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    result = await trading.ingest_discord_message(channel_id=world.source.discord_channel_id, message_id=message_id,
                                                  content=text, sent_at=now, now=now, engine=engine, adapters=adapters)
    elapsed = time.perf_counter() - t0
    statements, trips = counter.count - before, counter.round_trips - trips_before
    inside = db.ms - db_before
    with Session(engine) as s:
        acked = s.execute(select(sa.func.count()).select_from(Order).where(
            Order.signal_id == result["signal_id"], Order.status == "filled")).scalar_one()
    print(f"{text!r:>12}: {elapsed:6.3f} s until {acked}/{followers} orders acknowledged and filled; "
          f"{statements} statements in {trips} round trips = {trips / followers:.3f} round trips per follower; "
          f"{inside / 1000:.3f} s inside the statements SQLAlchemy times  (target < 2 s)")


async def run(engine, followers: int) -> None:
    with Session(engine, expire_on_commit=False) as s:
        world = seed_world(s, followers=followers, tag="fan")
    await PaperBroker(engine, world.accounts[0].id).set_quote("AAPL", Decimal("100"))
    counter, db = StatementCounter(engine), DbTimer(engine)
    adapters = Adapters(engine)
    adapters.get(world.accounts[0])  # import the adapter registry outside the measurement
    print(f"{followers} followers, one paper account each")
    await one_signal(engine, world, adapters, counter, db, "Buy AAPL", "1", followers)
    await one_signal(engine, world, adapters, counter, db, "Sell AAPL", "2", followers)
    await one_signal(engine, world, adapters, counter, db, "Buy AAPL", "3", followers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--followers", type=int, default=1000)
    parser.add_argument("--admin-url", default=os.environ.get("TEST_POSTGRES_URL", ADMIN_URL))
    args = parser.parse_args()
    with temporary_database(args.admin_url) as engine:
        asyncio.run(run(engine, args.followers))


if __name__ == "__main__":
    main()
