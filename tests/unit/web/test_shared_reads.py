"""Live pushes of one member's page share one read, never an older one (``state.shared_reads``)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from sqlmodel import Session, select

from backend.db.models import BrokerAccount, Order
from backend.db.types import utcnow
from state import shared_reads
from state.orders import OrdersState
from state.shared_reads import SharedReads
from test_web_live import Proxy
from webstate import sign_in


def test_outside_a_push_every_read_is_the_callers_own():
    reads = SharedReads()
    assert [reads.get("k", lambda: [1], None) for _ in range(3)] == [[1]] * 3
    assert reads.loads == 0  # not even counted: nothing was shared


def test_pushes_that_arrive_before_a_read_starts_share_it_and_get_copies():
    reads, release, calls = SharedReads(), threading.Event(), []

    def load():
        calls.append(1)
        release.wait(2)
        return {"rows": [{"id": "1"}]}

    since = time.monotonic()
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(reads.get, "page", load, since)
        time.sleep(0.05)  # the first read is running: the others wait for it
        rest = [pool.submit(reads.get, "page", load, since) for _ in range(3)]
        time.sleep(0.05)
        release.set()
        got = [first.result(), *(f.result() for f in rest)]
    assert len(calls) == 1 and reads.loads == 1
    assert got == [{"rows": [{"id": "1"}]}] * 4
    assert len({id(g) for g in got}) == 4 and len({id(g["rows"]) for g in got}) == 4  # no state shares a list


def test_a_read_that_started_before_the_event_arrived_is_not_reused():
    reads, answers = SharedReads(), iter(["before", "after"])
    assert reads.get("page", lambda: next(answers), time.monotonic()) == "before"
    arrived = time.monotonic()  # an event arrives after that read: it may not have seen the change
    assert reads.get("page", lambda: next(answers), arrived) == "after"
    assert reads.loads == 2
    assert reads.get("page", lambda: "a third read", arrived) == "after"  # a later push of the same event shares


def test_a_failed_read_leaves_each_waiter_to_read_for_itself():
    reads, release = SharedReads(), threading.Event()

    def broken():
        release.wait(2)
        raise RuntimeError("database went away")

    since = time.monotonic()
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(reads.get, "page", broken, since)
        time.sleep(0.05)
        waiter = pool.submit(reads.get, "page", lambda: "own read", since)
        time.sleep(0.05)
        release.set()
        with pytest.raises(RuntimeError):
            first.result()
        assert waiter.result() == "own read"
    assert reads.get("page", lambda: "retried", since) == "retried"  # a failure is not kept


def _new_order(db, user, symbol: str) -> None:
    with Session(db) as s:
        account = s.exec(select(BrokerAccount).where(BrokerAccount.user_id == user.id)).first()
        s.add(Order(client_order_id=f"live-{symbol}", user_id=user.id, broker_account_id=account.id, symbol=symbol,
                    side="buy", quantity=Decimal(1), status="filled", created_at=utcnow()))
        s.commit()


async def test_clients_of_one_member_share_a_pushs_read_and_see_the_new_order(db, users, monkeypatch):
    monkeypatch.setattr(shared_reads, "READS", SharedReads())
    sam = users["sam"]
    clients = [sign_in(OrdersState, db, sam) for _ in range(5)]
    for c in clients:
        c.load()
        c._live_owner = "me"
    before = [r["symbol"] for r in clients[0].rows]

    _new_order(db, sam, "NVDA")  # committed, then the bus message arrives
    arrived = time.monotonic()
    for c in clients:
        assert await OrdersState._push(Proxy(c), c.router.url.path, "me", sam.id, True, False, False, arrived)
    assert shared_reads.READS.loads == 1  # five clients, one read
    assert all([r["symbol"] for r in c.rows] == ["NVDA", *before] for c in clients)
    clients[0].rows[0]["symbol"] = "changed in one state"
    assert clients[1].rows[0]["symbol"] == "NVDA"  # no two states hold the same rows

    _new_order(db, sam, "AMD")  # the next event: the earlier read is too old for it
    arrived = time.monotonic()
    for c in clients:
        await OrdersState._push(Proxy(c), c.router.url.path, "me", sam.id, True, False, False, arrived)
    assert shared_reads.READS.loads == 2
    assert all([r["symbol"] for r in c.rows][:2] == ["AMD", "NVDA"] for c in clients)

    other = sign_in(OrdersState, db, users["alex"])  # another member's page is another read
    other.load()
    other._live_owner = "me"
    await OrdersState._push(Proxy(other), other.router.url.path, "me", users["alex"].id, True, False, False, arrived)
    assert shared_reads.READS.loads == 3 and "AMD" not in [r["symbol"] for r in other.rows]


def test_fresh_copy_copies_every_container_and_keeps_values():
    from datetime import datetime, timezone

    from state.shared_reads import fresh_copy

    when = datetime(2026, 12, 4, tzinfo=timezone.utc)
    data = {"rows": [{"id": "1", "n": 2, "ok": True, "none": None}], "pair": ([1], "x"), "set": {3}, "when": when}
    got = fresh_copy(data)
    assert got == data
    assert got["rows"] is not data["rows"] and got["rows"][0] is not data["rows"][0]
    assert got["pair"][0] is not data["pair"][0] and got["set"] is not data["set"]  # the set by deepcopy


@pytest.mark.parametrize("page", ["overview", "positions"])
async def test_portfolio_pages_of_one_member_share_a_pushs_read(db, users, monkeypatch, page):
    from state.positions import PositionsState
    from state.trader import TraderOverviewState

    monkeypatch.setattr(shared_reads, "READS", SharedReads())
    kind = {"overview": TraderOverviewState, "positions": PositionsState}[page]
    alex = users["alex"]
    clients = [sign_in(kind, db, alex) for _ in range(3)]
    for c in clients:
        c.load()
        c._live_owner = "me"
        c.positions = []
    arrived = time.monotonic()
    for c in clients:
        assert await kind._push(Proxy(c), c.router.url.path, "me", alex.id, False, True, False, arrived)
    assert shared_reads.READS.loads == 1
    assert all(c.positions and c.positions == clients[0].positions for c in clients)  # the demo's open positions
