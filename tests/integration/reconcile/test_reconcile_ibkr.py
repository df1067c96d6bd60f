"""Reconciliation of an Interactive Brokers account through ib_async and the loopback IB Gateway.

The scheduler opens its own gateway session next to the execution worker's,
so it connects with a client id of its own (the stored one + 100).  That
NEW ib_async client knows nothing of the worker's orders: it learns them
from the gateway's own messages, as it would from a real one: open orders
of every client (``openOrder``, 5, answering request 16), today's completed
orders (``completedOrder``, 101, answering 99) and executions (11).

Drift is made at the fake gateway while no worker is connected (the worker
restarted): it fills a resting order, forgets another (a DAY order gone
overnight), and the member sells in TWS by hand.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from decimal import Decimal as D

import pytest
from sqlmodel import Session, select

from backend import audit
from backend.brokers.credentials import RECONCILE_OPTIONS, build_provider
from backend.db.models import AuditEvent, BrokerAccount, Follow, Order, Position, RealizedPnl
from backend.db.types import utcnow
from backend.execution.adapters import Adapters
from backend.execution.seeding import seed_world
from backend.reconcile.run import reconcile_all
from backend.services import trading
from backend.services.accounts import connect_account
from fakes.fake_ibkr import FakeIbGateway

FAST = {"timeout": 3, "ack_timeout": 2, "requests_per_minute": 100_000}
WORKER = build_provider(options={"ibkr": FAST})
RECONCILER = build_provider(options={"ibkr": {**RECONCILE_OPTIONS["ibkr"], **FAST}})


def later():
    return utcnow() + timedelta(minutes=2)


def rows(engine, model, *where):
    with Session(engine) as s:
        return s.exec(select(model).where(*where).order_by(model.id)).all()


@pytest.fixture
async def gateway():
    gw = FakeIbGateway()
    await gw.start()
    yield gw
    await gw.stop()


@pytest.fixture
def world(engine):
    with Session(engine, expire_on_commit=False) as s:
        return seed_world(s)


async def connect(engine, world, gateway: FakeIbGateway) -> int:
    account = await connect_account(engine, world.followers[0].id, "ibkr", "IBKR",
                                    {"port": gateway.port, "client_id": 17, "account": gateway.account},
                                    adapter_options=FAST)
    return account["id"]


async def test_drift_at_the_gateway_after_a_restart_is_repaired_once_and_audited(engine, world, gateway):
    account_id = await connect(engine, world, gateway)
    with Session(engine) as s:  # the follower trades through the IBKR account; the seeded paper one is put away
        s.get(Follow, world.follows[0].id).broker_account_id = account_id
        s.get(BrokerAccount, world.accounts[0].id).status = "disconnected"
        s.commit()
    worker = Adapters(engine, provider=WORKER)
    for mid, text in (("m1", "Buy MSFT 400"), ("m2", "Buy AAPL 180"), ("m3", "Buy AAPL 191")):
        await trading.ingest_discord_message(channel_id=world.source.discord_channel_id, message_id=mid,
                                             content=text, sent_at=utcnow(), engine=engine, adapters=worker)
    await worker.aclose()                                           # the worker goes away (a restart)
    msft, lost, aapl = rows(engine, Order, Order.broker_account_id == account_id)
    assert (msft.status, lost.status, aapl.status) == ("submitted", "submitted", "filled")
    at_ib = {o.order_ref: o for o in gateway.orders.values()}
    assert at_ib[msft.client_order_id].client_id == 17

    await gateway.push_fill(at_ib[msft.client_order_id].order_id)  # nobody connected hears it
    del gateway.orders[at_ib[lost.client_order_id].order_id]       # a DAY order IB no longer reports
    by_hand = await gateway.trade_by_hand("AAPL", "SELL", D(10), D("191"))  # the member sells in TWS

    first = await reconcile_all(engine, account_id=account_id, provider=RECONCILER, clock=later)
    assert not first.failed
    assert Counter((r.kind, r.subject) for r in first.repairs) == Counter({
        ("missed_fill", msft.client_order_id): 1, ("order_missing", lost.client_order_id): 1,
        ("position_closed", "AAPL"): 1})
    second = await reconcile_all(engine, account_id=account_id, provider=RECONCILER, clock=later)
    assert second.repairs == [] and not second.failed

    msft, lost, aapl = rows(engine, Order, Order.broker_account_id == account_id)
    assert (msft.status, msft.filled_quantity, msft.avg_fill_price, msft.fees) == ("filled", D(10), D(400), D(1))
    assert lost.status == "cancelled"
    held = {p.symbol: p.quantity for p in rows(engine, Position, Position.broker_account_id == account_id,
                                               Position.quantity != 0)}
    assert held == {s: q for s, (q, _) in gateway.positions.items() if q} == {"MSFT": D(10)}
    [closed] = rows(engine, RealizedPnl, RealizedPnl.symbol == "AAPL", RealizedPnl.fill_id.is_(None))
    assert closed.amount == D(0)  # sold in TWS at the price it was bought: priced from the venue's execution
    [repair] = [r for r in first.repairs if r.kind == "position_closed"]
    assert repair.data["price"] == "191"
    with Session(engine) as s:
        actions = Counter(s.exec(select(AuditEvent.action).where(AuditEvent.action.like("reconcile.%"))).all())
    assert actions == Counter({"reconcile.missed_fill": 1, "reconcile.order_missing": 1,
                               "reconcile.position_closed": 1})
    assert audit.verify(engine).ok

    # the reconciler was a NEW client (17 + 100), and learnt the worker's orders from the gateway's books
    sessions = [f[2] for f in gateway.received if f[0] == "71"]
    assert sessions == ["17", "17", "117", "117"]  # connect_account, the worker, one session per run
    assert {"16", "99", "7"} <= {f[0] for f in gateway.received}
    assert by_hand.order_ref == "" and by_hand.client_id == 0


async def test_a_position_held_at_the_gateway_is_recorded_once_through_a_session_of_its_own(engine, world, gateway):
    account_id = await connect(engine, world, gateway)
    gateway.positions["MSFT"] = (D(5), D("410.5"))           # bought in TWS by hand before the account was linked
    first = await reconcile_all(engine, account_id=account_id, provider=RECONCILER)
    second = await reconcile_all(engine, account_id=account_id, provider=RECONCILER)
    assert not first.failed and [(r.kind, r.subject, r.data["price"]) for r in first.repairs] == [
        ("unknown_position", "MSFT", "410.5")]
    assert second.repairs == [] and not second.failed
    position = rows(engine, Position)[0]
    assert (position.broker_account_id, position.quantity, position.avg_price) == (account_id, D(5), D("410.5"))
    assert sorted({f[2] for f in gateway.received if f[0] == "71"}) == ["117", "17"]
