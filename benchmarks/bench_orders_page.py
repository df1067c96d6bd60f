"""Orders page with 100,000 orders: how long each page, filter, count and CSV export takes.

    .venv/bin/python benchmarks/bench_orders_page.py [--orders 100000] [--others 100000]
        [--db both|postgres|sqlite] [--admin-url URL] [--repeat 15] [--without-composite-indexes]

Seeds one trader with ``--orders`` orders over two years (20 symbols, the
usual mix of statuses, 70 % from three providers' signals, the rest by
hand) and other traders with ``--others`` more, on a throw-away Postgres
database (like bench_fanout.py) and a temporary SQLite file, with the
schema the models define (the same indexes the migrations create).  Then
times ``backend.services.orders`` as the Orders page calls it, each
operation ``--repeat`` times after one warm-up, and prints the median and
the slowest run in milliseconds:

- first page, a deep page (50,000 orders down, reached with a keyset
  cursor), the last page; the same deep page read with OFFSET, which is
  what keyset paging avoids, for comparison;
- the capped count the page shows, and the provider choices;
- the first page and count of each filter (symbol, common and rare status,
  provider, one month);
- the CSV export of 10,000 rows (the cap).

``--without-composite-indexes`` drops the ``ix_orders_user_*`` indexes first,
to see what they buy.  Nothing is written outside the temporary databases.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("APP_ENV", "test")
os.environ.setdefault("DATA_DIR", tempfile.mkdtemp(prefix="dte-bench-"))

import sqlalchemy as sa  # noqa: E402
from sqlmodel import Session, select  # noqa: E402

import backend.db.models as models  # noqa: E402
from backend.db.models import (  # noqa: E402
    BrokerAccount, Community, Membership, Order, Signal, SignalSource, SignalStatus, User,
)
from backend.execution.seeding import temporary_database  # noqa: E402
from backend.services import orders as svc  # noqa: E402

ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
NOW = datetime(2026, 6, 30, 12, 0, tzinfo=timezone.utc)
SPAN = timedelta(days=730)
SYMBOLS = ["AAPL", "MSFT", "TSLA", "NVDA", "AMZN", "META", "GOOG", "AMD", "NFLX", "SPY",
           "QQQ", "BTC/USDT", "ETH/USDT", "SOL/USDT", "COIN", "PLTR", "INTC", "BA", "DIS", "XOM"]
STATUSES = [("filled", 80), ("rejected", 8), ("cancelled", 7), ("expired", 3), ("partially_filled", 1.5),
            ("failed", 0.5)]
SIGNALS_PER_SOURCE = 3000
CHUNK = 5000
COMPOSITES = ("ix_orders_user_created", "ix_orders_user_status_created", "ix_orders_user_symbol_created")


def seed(engine: sa.Engine, orders: int, others: int) -> tuple[int, list[int]]:
    """(the trader's user id, the providers' source ids); bulk inserts in chunks."""
    rng = random.Random(42)
    with Session(engine, expire_on_commit=False) as s:
        provider = User(username="bench-provider")
        trader = User(username="bench-trader")
        rest = [User(username=f"bench-other-{i}") for i in range(4)]
        s.add_all([provider, trader, *rest])
        s.flush()
        community = Community(name="Bench club", slug="bench-club", owner_id=provider.id)
        s.add(community)
        s.flush()
        s.add_all([Membership(community_id=community.id, user_id=u.id) for u in [trader, *rest]])
        sources = [SignalSource(community_id=community.id, provider_id=provider.id, name=f"Provider {i}",
                                kind="discord", discord_channel_id=f"bench-{i}") for i in range(3)]
        accounts = [BrokerAccount(user_id=u.id, broker="paper", label="Paper") for u in [trader, *rest]]
        s.add_all([*sources, *accounts])
        s.commit()
        trader_id, account_of = trader.id, {a.user_id: a.id for a in accounts}
        source_ids = [src.id for src in sources]
    signal_ids: list[int] = []
    with engine.begin() as conn:
        for source_id in source_ids:
            rows = [{"source_id": source_id, "source_message_id": str(i), "raw_text": "BTO AAPL 190",
                     "status": SignalStatus.DISPATCHED.value, "received_at": NOW - SPAN * (i / SIGNALS_PER_SOURCE)}
                    for i in range(SIGNALS_PER_SOURCE)]
            conn.execute(sa.insert(Signal), rows)
        signal_ids = list(conn.execute(sa.select(Signal.id)).scalars())
    status_names, weights = zip(*STATUSES)

    def order_rows(user_id: int, n: int, tag: str):
        for i in range(n):
            created = NOW - SPAN * rng.random()
            yield {"client_order_id": f"{tag}-{i}", "user_id": user_id, "broker_account_id": account_of[user_id],
                   "signal_id": rng.choice(signal_ids) if rng.random() < 0.7 else None,
                   "symbol": rng.choice(SYMBOLS), "side": rng.choice(("buy", "sell")), "order_type": "market",
                   "quantity": Decimal(rng.randint(1, 100)), "status": rng.choices(status_names, weights)[0],
                   "filled_quantity": Decimal(0), "fees": Decimal("0.35"), "created_at": created,
                   "updated_at": created}

    plan = [(trader_id, orders, "t")] + [(uid, others // 4, f"o{uid}") for uid in account_of if uid != trader_id]
    t0 = time.perf_counter()
    for user_id, n, tag in plan:
        batch = []
        for row in order_rows(user_id, n, tag):
            batch.append(row)
            if len(batch) == CHUNK:
                with engine.begin() as conn:
                    conn.execute(sa.insert(Order), batch)
                batch = []
        if batch:
            with engine.begin() as conn:
                conn.execute(sa.insert(Order), batch)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("ANALYZE"))
    print(f"  seeded {orders:,} orders for the trader and {others:,} for 4 others "
          f"in {time.perf_counter() - t0:.1f} s")
    return trader_id, source_ids


def timed(repeat: int, fn: Callable[[], object]) -> tuple[float, float, object]:
    fn()  # warm-up: plans, caches
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        runs.append((time.perf_counter() - t0) * 1000)
    return statistics.median(runs), max(runs), result


def report(label: str, median: float, worst: float, note: str = "") -> None:
    print(f"  {label:<44} median {median:8.2f} ms   max {worst:8.2f} ms   {note}")


def measure(engine: sa.Engine, trader_id: int, source_ids: list[int], repeat: int) -> None:
    with Session(engine) as s:
        def page(f=svc.OrderFilter(), request=svc.PageRequest()):
            return lambda: svc.list_orders(s, trader_id, f, request)

        m, w, first = timed(repeat, page())
        report("first page (newest 50)", m, w, f"{len(first.rows)} rows, older: {first.has_older}")
        depth = 50_000
        anchor = s.exec(select(Order.created_at, Order.id).where(Order.user_id == trader_id)
                        .order_by(Order.created_at.desc(), Order.id.desc()).offset(depth - 1).limit(1)).one()
        deep = svc.PageRequest("older", svc.Cursor(*anchor))
        m, w, result = timed(repeat, page(request=deep))
        report(f"deep page ({depth:,} down, keyset)", m, w, f"{len(result.rows)} rows")
        base = svc._query(trader_id, svc.OrderFilter()).order_by(*svc.NEWEST_FIRST)
        m, w, rows = timed(repeat, lambda: s.exec(base.offset(depth).limit(51)).all())
        report(f"same deep page with OFFSET {depth:,} (avoided)", m, w, f"{len(rows)} rows")
        m, w, result = timed(repeat, page(request=svc.PageRequest("oldest")))
        report("last page (oldest)", m, w, f"{len(result.rows)} rows, newer: {result.has_newer}")
        m, w, result = timed(repeat, page(request=first.request_older()))
        report("next page (older than the first)", m, w, f"{len(result.rows)} rows")
        m, w, (n, more) = timed(repeat, lambda: svc.count_orders(s, trader_id, svc.OrderFilter()))
        report("count shown (capped)", m, w, f"{n:,}{'+' if more else ''}")
        m, w, choices = timed(repeat, lambda: svc.provider_choices(s, trader_id))
        report("provider choices", m, w, f"{len(choices)} providers")
        filters = {
            "symbol NVDA": svc.OrderFilter(symbol="NVDA"),
            "status rejected (8 %)": svc.OrderFilter(status="rejected"),
            "status failed (0.5 %)": svc.OrderFilter(status="failed"),
            "provider": svc.OrderFilter(source_id=source_ids[1]),
            "one month": svc.OrderFilter(date_from=date(2025, 3, 1), date_to=date(2025, 3, 31)),
            "symbol + status + month": svc.OrderFilter(symbol="AAPL", status="filled", date_from=date(2025, 1, 1),
                                                       date_to=date(2025, 3, 31)),
        }
        for name, f in filters.items():
            m, w, result = timed(repeat, page(f))
            report(f"filter {name}: first page", m, w, f"{len(result.rows)} rows")
            m, w, (n, more) = timed(repeat, lambda f=f: svc.count_orders(s, trader_id, f))
            report(f"filter {name}: count", m, w, f"{n:,}{'+' if more else ''}")
        m, w, text = timed(max(3, repeat // 3), lambda: svc.export_csv(s, trader_id, svc.OrderFilter()))
        report("CSV export, 10,000 rows", m, w, f"{text.count(chr(10)) - 1:,} rows, {len(text) / 1e6:.1f} MB")


def drop_composites(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        for name in COMPOSITES:
            conn.execute(sa.text(f"DROP INDEX IF EXISTS {name}"))


@contextmanager
def sqlite_database():
    folder = tempfile.mkdtemp(prefix="dte-bench-orders-")
    engine = sa.create_engine(f"sqlite:///{folder}/bench.db")
    try:
        models.metadata.create_all(engine)
        yield engine
    finally:
        engine.dispose()
        for name in os.listdir(folder):
            os.remove(os.path.join(folder, name))
        os.rmdir(folder)


def run(name: str, database, args) -> None:
    print(f"{name}:")
    with database as engine:
        if args.without_composite_indexes:
            drop_composites(engine)
            print("  (composite indexes dropped)")
        trader_id, source_ids = seed(engine, args.orders, args.others)
        measure(engine, trader_id, source_ids, args.repeat)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--others", type=int, default=100_000)
    parser.add_argument("--db", choices=("both", "postgres", "sqlite"), default="both")
    parser.add_argument("--admin-url", default=os.environ.get("TEST_POSTGRES_URL", ADMIN_URL))
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--without-composite-indexes", action="store_true")
    args = parser.parse_args()
    if args.db in ("both", "postgres"):
        run("Postgres", temporary_database(args.admin_url, prefix="dte_bench_orders"), args)
    if args.db in ("both", "sqlite"):
        run("SQLite", sqlite_database(), args)


if __name__ == "__main__":
    main()
