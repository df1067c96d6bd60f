"""How many market orders per second the paper broker acknowledges on Postgres.

Run:  .venv/bin/python benchmarks/bench_paper_broker.py [--orders 1000] [--batch 250]

Uses ``DATABASE_URL`` (default: the local trust-auth server) only to create a
throw-away database, creates the tables there, and drops it at the end.  It
prints orders/second for ``place_order`` one at a time and for the paper-only
``place_orders`` batch path (the engine's fan-out).  The target is 1,000
orders acknowledged in under 2 seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa
from sqlmodel import Session

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import backend.db.models as models  # noqa: E402
from backend.brokers.base import OrderRequest  # noqa: E402
from backend.brokers.paper import PaperBroker  # noqa: E402
from backend.config import normalise_database_url  # noqa: E402

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def new_broker(engine: sa.Engine) -> PaperBroker:
    with Session(engine) as s:
        user = models.User(username="bench")
        s.add(user)
        s.flush()
        account = models.BrokerAccount(user_id=user.id, broker="paper", label="bench")
        s.add(account)
        s.commit()
        account_id = account.id
    return PaperBroker(engine, account_id, starting_cash=Decimal("1000000000"), slippage_bps=Decimal("5"),
                       fee_per_order=Decimal("0"), fee_bps=Decimal("1"))


def requests(prefix: str, count: int) -> list[OrderRequest]:
    symbols = ["AAPL", "MSFT", "NVDA", "TSLA"]
    return [OrderRequest(f"{prefix}-{i}", symbols[i % 4], "buy", Decimal("3"), reference_price=Decimal("100"))
            for i in range(count)]


async def bench(engine: sa.Engine, orders: int, batch: int) -> None:
    single = new_broker(engine)
    await single.place_orders(requests("warm-s", 20))  # connections, statement caches, account row
    timed = requests("s", orders)
    started = time.perf_counter()
    for request in timed:
        await single.place_order(request)
    elapsed = time.perf_counter() - started
    print(f"place_order, one at a time: {orders} orders in {elapsed:.3f} s = {orders / elapsed:,.0f} orders/s")

    batched = new_broker(engine)
    await batched.place_orders(requests("warm-b", 20))
    timed = requests("b", orders)
    started = time.perf_counter()
    for i in range(0, orders, batch):
        results = await batched.place_orders(timed[i:i + batch])
        assert all(r.status == "filled" for r in results)
    elapsed = time.perf_counter() - started
    print(f"place_orders, batches of {batch}: {orders} orders in {elapsed:.3f} s = {orders / elapsed:,.0f} orders/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=250)
    args = parser.parse_args()
    admin_url = normalise_database_url(os.environ.get("DATABASE_URL") or DEFAULT_URL)
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"bench_paper_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine = sa.create_engine(sa.engine.make_url(admin_url).set(database=name), pool_size=5)
    try:
        models.metadata.create_all(engine)
        asyncio.run(bench(engine, args.orders, args.batch))
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
