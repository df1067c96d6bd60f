"""Paper venue: a sell's placement latency must not grow with the account's fill history.

Run:  .venv/bin/python benchmarks/bench_paper_positions.py [--fills 0,20000,100000] [--placements 200]

A sell (or a reduce-only or bracket order) needs the account's net position
in the symbol.  It used to be a SUM over every fill of the account (20 ms at
100,000 fills); the venue now reads it from ``paper_positions`` by primary key.
For each history size N the script opens a fresh paper account, seeds it with
N filled buy orders of one share at $100 straight in SQL (``generate_series``:
seconds, not the venue's own path) and the position they make, then times
``place_order`` of one-share market sells: p50/p95 in milliseconds.  It also
times the old query over the same fills, for comparison.

Uses ``DATABASE_URL`` (default: the local trust-auth server) only to create a
throw-away database (``seeding.temporary_database``), dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_paper_broker import new_broker  # noqa: E402  (this folder: the script's own directory)
from bench_signal_to_ack import percentile  # noqa: E402
from backend.brokers.base import OrderRequest  # noqa: E402
from backend.config import normalise_database_url  # noqa: E402
from backend.execution.seeding import temporary_database  # noqa: E402

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
SYMBOL = "AAPL"
PRICE = Decimal("100")

_SEED_ORDERS = sa.text(
    "INSERT INTO paper_orders (paper_account_id, client_order_id, symbol, side, order_type, quantity, status, "
    "filled_quantity, avg_fill_price, reduce_only, created_at, updated_at) "
    "SELECT :account, 'seed-' || g, :symbol, 'buy', 'market', 1, 'filled', 1, :price, false, now(), now() "
    "FROM generate_series(1, :n) AS g"
)
_SEED_FILLS = sa.text(
    "INSERT INTO paper_fills (paper_order_id, symbol, side, quantity, price, fee, filled_at) "
    "SELECT id, symbol, side, quantity, avg_fill_price, 0, now() FROM paper_orders WHERE paper_account_id = :account"
)
_SEED_POSITION = sa.text(
    "INSERT INTO paper_positions (paper_account_id, symbol, quantity, avg_price, updated_at) "
    "SELECT :account, :symbol, :n, :price, now() WHERE :n > 0"
)
# What placement ran before paper_positions: the sum over the account's whole fill history.
_OLD_NET = sa.text(
    "SELECT o.paper_account_id, f.symbol, sum(CASE WHEN f.side = 'buy' THEN f.quantity ELSE -f.quantity END) "
    "FROM paper_fills f JOIN paper_orders o ON o.id = f.paper_order_id "
    "WHERE o.paper_account_id = :account AND f.symbol = :symbol GROUP BY 1, 2"
)


def seed(engine: sa.Engine, account_id: int, fills: int) -> float:
    """N filled one-share buys and the position they make; returns the seconds it took."""
    started = time.perf_counter()
    params = {"account": account_id, "symbol": SYMBOL, "price": PRICE, "n": fills}
    with engine.begin() as conn:
        if fills:
            conn.execute(_SEED_ORDERS, params)
            conn.execute(_SEED_FILLS, params)
        conn.execute(_SEED_POSITION, params)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("ANALYZE paper_orders, paper_fills, paper_positions"))
    return time.perf_counter() - started


def old_query_ms(engine: sa.Engine, account_id: int, repeats: int = 5) -> float:
    timings = []
    with engine.connect() as conn:
        for _ in range(repeats):
            started = time.perf_counter()
            conn.execute(_OLD_NET, {"account": account_id, "symbol": SYMBOL}).all()
            timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


async def bench(engine: sa.Engine, history: list[int], placements: int) -> None:
    print(f"{'fills':>8}  {'seed s':>7}  {'sell p50 ms':>11}  {'sell p95 ms':>11}  {'old SUM ms':>10}")
    for fills in history:
        broker = new_broker(engine)
        account_id = broker._account_id()
        seconds = seed(engine, account_id, fills)
        await broker.set_quote(SYMBOL, PRICE)
        for i in range(5):  # connections, statement caches
            await broker.place_order(OrderRequest(f"warm-{i}", SYMBOL, "sell", Decimal("1")))
        timings = []
        for i in range(placements):
            request = OrderRequest(f"sell-{i}", SYMBOL, "sell", Decimal("1"))
            started = time.perf_counter()
            placed = await broker.place_order(request)
            timings.append((time.perf_counter() - started) * 1000)
            assert placed.status == "filled", placed
        held = {p.symbol: p.quantity for p in await broker.positions()}.get(SYMBOL, Decimal(0))
        assert held == fills - 5 - placements, held  # the stored position followed every sell
        print(f"{fills:>8}  {seconds:>7.2f}  {statistics.median(timings):>11.2f}  {percentile(timings, 95):>11.2f}  "
              f"{old_query_ms(engine, account_id):>10.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fills", default="0,20000,100000", help="history sizes, comma-separated")
    parser.add_argument("--placements", type=int, default=200, help="timed sells per history size")
    args = parser.parse_args()
    history = [int(n) for n in args.fills.split(",") if n.strip()]
    if not history or min(history) < 0 or args.placements < 1:
        parser.error("--fills takes counts >= 0 (e.g. 0,20000,100000) and --placements at least 1")
    admin_url = normalise_database_url(os.environ.get("DATABASE_URL") or DEFAULT_URL)
    if not admin_url.startswith("postgresql"):
        parser.error(f"this benchmark needs Postgres (DATABASE_URL is {admin_url.split(':', 1)[0]})")
    with temporary_database(admin_url, prefix="bench_positions") as engine:
        asyncio.run(bench(engine, history, args.placements))


if __name__ == "__main__":
    main()
