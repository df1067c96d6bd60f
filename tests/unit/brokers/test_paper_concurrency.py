"""Paper broker under concurrency on Postgres: each thread stands for a separate process with its own adapter."""

from __future__ import annotations

import asyncio
import threading
from decimal import Decimal

import sqlalchemy as sa
from sqlmodel import Session

from backend.brokers.base import BracketSpec, OrderRequest
from backend.brokers.paper import PaperBroker
from backend.db.models import BrokerAccount, PaperOrder, User
from backend.errors import InsufficientFunds

D = Decimal
TERMS = {"slippage_bps": D("0"), "fee_per_order": D("0"), "fee_bps": D("0")}


def new_account(engine) -> int:
    with Session(engine) as s:
        user = User(username="trader")
        s.add(user)
        s.flush()
        account = BrokerAccount(user_id=user.id, broker="paper", label="Paper")
        s.add(account)
        s.commit()
        return account.id


def run_in_threads(count: int, work) -> list:
    """Start ``count`` threads at once (a barrier), each running ``work(i)`` in its own event loop."""
    barrier, results = threading.Barrier(count), [None] * count

    def target(i: int) -> None:
        barrier.wait()
        try:
            results[i] = asyncio.run(work(i))
        except Exception as exc:  # noqa: BLE001 - collected and asserted on by the test
            results[i] = exc

    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


async def test_the_same_client_order_id_from_many_processes_makes_one_order(pg_engine):
    account_id = new_account(pg_engine)
    await PaperBroker(pg_engine, account_id, starting_cash=D("100000"), **TERMS).set_quote("AAPL", D("100"))
    request = OrderRequest("same", "AAPL", "buy", D("10"))

    async def place(_i):
        return await PaperBroker(pg_engine, account_id, starting_cash=D("100000"), **TERMS).place_order(request)

    results = run_in_threads(12, place)
    assert all(not isinstance(r, Exception) for r in results), results
    assert len({r.broker_order_id for r in results}) == 1
    with pg_engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(PaperOrder.__table__)).scalar_one() == 1
    broker = PaperBroker(pg_engine, account_id, **TERMS)
    assert (await broker.account()).cash == D("99000")


async def test_concurrent_buys_never_overdraw_the_account(pg_engine):
    account_id = new_account(pg_engine)
    await PaperBroker(pg_engine, account_id, starting_cash=D("10000"), **TERMS).set_quote("AAPL", D("100"))

    async def buy(i):
        broker = PaperBroker(pg_engine, account_id, starting_cash=D("10000"), **TERMS)
        if i % 2:
            return await broker.place_orders([OrderRequest(f"b{i}", "AAPL", "buy", D("10"))])
        return await broker.place_order(OrderRequest(f"b{i}", "AAPL", "buy", D("10")))

    results = run_in_threads(20, buy)
    flat = [r[0] if isinstance(r, list) else r for r in results]
    assert sum(isinstance(r, InsufficientFunds) for r in flat) == 10
    assert sum(getattr(r, "status", None) == "filled" for r in flat) == 10
    assert (await PaperBroker(pg_engine, account_id, **TERMS).account()).cash == D("0")


async def test_quotes_and_orders_from_many_processes_do_not_deadlock(pg_engine):
    accounts = [new_account(pg_engine) for _ in range(4)]
    await PaperBroker(pg_engine, accounts[0], **TERMS).set_quote("AAPL", D("100"))
    ladder = BracketSpec(stop_loss=D("90"), take_profits=((D("101"), D("1")), (D("102"), D("1"))))

    async def work(i):
        broker = PaperBroker(pg_engine, accounts[i % 4], starting_cash=D("100000"), **TERMS)
        for n in range(10):
            request = OrderRequest(f"e{i}-{n}", "AAPL", "buy", D("2"), bracket=ladder, oco_group=f"g{i}")
            await broker.place_order(request)
            await broker.set_quote("AAPL", D("100") + D(n % 3))
        return await broker.open_orders()

    results = run_in_threads(8, work)
    assert all(isinstance(r, list) for r in results), [r for r in results if not isinstance(r, list)]
    await PaperBroker(pg_engine, accounts[0], **TERMS).set_quote("AAPL", D("85"))
    for account_id in accounts:
        broker = PaperBroker(pg_engine, account_id, **TERMS)
        assert await broker.open_orders() == [] and await broker.positions() == []
