"""Reconciliation against the paper venue, on SQLite and Postgres.

Drift is made the way it happens: the venue fills a resting order nobody
polled, forgets an order, the member sells or buys at the venue by hand,
and a worker dies after the venue acknowledged an order.  One run repairs
each kind exactly once, a second run repairs nothing, the product then
holds what the venue holds, and the audit chain verifies.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from decimal import Decimal as D

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from backend import audit
from backend.brokers.base import OrderRequest
from backend.brokers.paper import PaperBroker
from backend.db.models import (
    AuditEvent, BrokerAccount, Notification, Order, OrderEvent, PaperOrder, Position, RealizedPnl,
)
from backend.db.types import utcnow
from backend.execution.adapters import Adapters
from backend.execution.fanout import fan_out
from backend.execution.seeding import seed_world
from backend.execution.submit import request_for
from backend.reconcile.run import reconcile_all
from backend.services import trading


@pytest.fixture
def paper_env(settings_env):
    settings_env(PAPER_SLIPPAGE_BPS="0", PAPER_FEE_BPS="0", PAPER_FEE_PER_ORDER="0")


def later():
    return utcnow() + timedelta(minutes=2)


async def say(engine, world, mid: str, text: str, adapters: Adapters, dispatch: bool = True) -> dict:
    return await trading.ingest_discord_message(channel_id=world.source.discord_channel_id, message_id=mid,
                                                content=text, sent_at=utcnow(), engine=engine, adapters=adapters,
                                                dispatch=dispatch)


def order_by_symbol(engine, symbol: str) -> Order:
    with Session(engine) as s:
        return s.exec(select(Order).where(Order.symbol == symbol).order_by(Order.id.desc())).first()


async def product_matches_venue(engine, account_id: int, broker: PaperBroker) -> None:
    with Session(engine) as s:
        held = {p.symbol: p.quantity for p in s.exec(select(Position).where(
            Position.broker_account_id == account_id, Position.quantity != 0))}
        working = {o.client_order_id for o in s.exec(select(Order).where(
            Order.broker_account_id == account_id, Order.status.in_(("submitted", "partially_filled"))))}
    assert held == {p.symbol: p.quantity for p in await broker.positions()}
    assert working == {o.client_order_id for o in await broker.open_orders()}


async def test_every_drift_kind_is_repaired_once_and_the_product_ends_equal_to_the_venue(engine, paper_env):
    with Session(engine, expire_on_commit=False) as s:
        world = seed_world(s)
    account_id = world.accounts[0].id
    adapters = Adapters(engine)
    broker = adapters.get(world.accounts[0])
    for symbol, price in (("AAPL", "100"), ("MSFT", "400"), ("TSLA", "200"), ("NVDA", "120"), ("AMD", "150")):
        await broker.set_quote(symbol, D(price))

    await say(engine, world, "m1", "Buy AAPL 90", adapters)           # rests at the venue
    await say(engine, world, "m2", "Buy MSFT 370", adapters)          # rests, then the venue forgets it
    await say(engine, world, "m3", "Buy NVDA", adapters)              # filled: the member then sells by hand
    stored = await say(engine, world, "m4", "Buy AMD", adapters, dispatch=False)
    dispatch = await fan_out(engine, stored["signal_id"], adapters=adapters)   # intents written ...
    with Session(engine) as s:
        amd = s.get(Order, dispatch.submit_ids[0])
    await broker.place_order(request_for(amd))                       # ... the venue filled it, the ack was lost
    assert {order_by_symbol(engine, s).status for s in ("AAPL", "MSFT")} == {"submitted"}
    assert amd.status == "new"

    await broker.set_quote("AAPL", D("89"))                          # fills the resting AAPL order unseen
    with Session(engine) as s:
        msft = order_by_symbol(engine, "MSFT").client_order_id
        s.execute(sa.delete(PaperOrder).where(PaperOrder.client_order_id == msft))
        s.commit()
    await broker.set_quote("NVDA", D("130"))
    await broker.place_order(OrderRequest("by-hand-1", "NVDA", "sell", D("10")))      # +100 realised at the venue
    await broker.place_order(OrderRequest("by-hand-2", "TSLA", "buy", D("5")))        # a position no signal opened

    first = await reconcile_all(engine, adapters, clock=later)
    kinds = Counter(r.kind for r in first.repairs)
    assert kinds == Counter({"missed_fill": 2, "order_missing": 1, "position_closed": 1, "unknown_position": 1})
    assert not first.failed and "AAPL" in str(first)
    assert {r.subject for r in first.repairs if r.kind == "missed_fill"} == {
        order_by_symbol(engine, "AAPL").client_order_id, amd.client_order_id}

    second = await reconcile_all(engine, adapters, clock=later)
    assert second.repairs == [] and not second.failed
    await product_matches_venue(engine, account_id, broker)

    aapl = order_by_symbol(engine, "AAPL")
    assert (aapl.status, aapl.filled_quantity) == ("filled", D(10))
    assert order_by_symbol(engine, "MSFT").status == "cancelled"
    assert order_by_symbol(engine, "AMD").status == "filled"
    with Session(engine) as s:
        nvda = s.exec(select(Position).where(Position.symbol == "NVDA")).one()
        tsla = s.exec(select(Position).where(Position.symbol == "TSLA")).one()
        pnl = s.exec(select(RealizedPnl).where(RealizedPnl.symbol == "NVDA", RealizedPnl.fill_id.is_(None))).one()
        actions = Counter(a for a in s.exec(select(AuditEvent.action).where(AuditEvent.action.like("reconcile.%"))))
        notes = s.exec(select(Notification.kind).where(Notification.kind.like("reconcile.%"))).all()
        explained = s.exec(select(OrderEvent).where(OrderEvent.order_id == order_by_symbol(engine, "MSFT").id,
                                                    OrderEvent.to_status == "cancelled")).one()
        account = s.get(BrokerAccount, account_id)
    assert (nvda.quantity, pnl.amount, nvda.realized_pnl) == (D(0), D(100), D(100))   # priced from the venue's fill
    assert (tsla.quantity, tsla.avg_price) == (D(5), D(200))
    assert actions == Counter({"reconcile.missed_fill": 2, "reconcile.order_missing": 1,
                               "reconcile.position_closed": 1, "reconcile.unknown_position": 1})
    assert sorted(notes) == ["reconcile.order_missing", "reconcile.position_closed", "reconcile.unknown_position"]
    assert explained.message.startswith("Reconciliation:")
    assert account.status == "connected" and account.last_checked_at is not None
    assert audit.verify(engine).ok


async def test_a_fill_after_a_recorded_cancel_is_booked_late(engine, paper_env):
    """The venue filled an order the product had already recorded as cancelled (a cancel that lost a race)."""
    with Session(engine, expire_on_commit=False) as s:
        world = seed_world(s)
    adapters = Adapters(engine)
    broker = adapters.get(world.accounts[0])
    await broker.set_quote("AAPL", D("100"))
    await say(engine, world, "m1", "Buy AAPL 90", adapters)
    await broker.set_quote("AAPL", D("89"))
    with Session(engine) as s:                                       # the product believed a cancel
        order = s.exec(select(Order)).one()
        order.status = "cancelled"
        s.commit()
    report = await reconcile_all(engine, adapters, clock=later)
    assert [r.kind for r in report.repairs] == ["missed_fill"] and report.repairs[0].data["late"] is True
    assert (await reconcile_all(engine, adapters, clock=later)).repairs == []
    with Session(engine) as s:
        order = s.exec(select(Order)).one()
        position = s.exec(select(Position)).one()
    assert (order.status, order.filled_quantity, position.quantity) == ("cancelled", D(10), D(10))
