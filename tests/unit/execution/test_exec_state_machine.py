"""The order state machine: allowed transitions only, every change recorded, snapshots idempotent."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal as D

import pytest
from sqlmodel import select

from backend.brokers.base import OrderSnapshot, VenueFill
from backend.db.models import AuditEvent, Fill, Notification, Order, OrderEvent
from backend.execution.journal import Journal
from backend.execution.seeding import seed_world
from backend.execution.state_machine import IllegalTransition, can_transition, record_snapshot, transition

NOW = datetime(2026, 11, 2, 15, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("current,target,ok", [
    ("new", "submitted", True), ("new", "rejected", True), ("new", "failed", True), ("new", "cancelled", True),
    ("new", "filled", False), ("submitted", "partially_filled", True), ("submitted", "filled", True),
    ("partially_filled", "partially_filled", True), ("partially_filled", "filled", True),
    ("submitted", "new", False), ("filled", "cancelled", False), ("cancelled", "submitted", False),
    ("rejected", "submitted", False), ("partially_filled", "rejected", False), ("expired", "filled", False),
])
def test_transition_table(current, target, ok):
    assert can_transition(current, target) is ok


def _order(session, world, qty=D(10)) -> Order:
    order = Order(client_order_id="dte-test", user_id=world.followers[0].id, broker_account_id=world.accounts[0].id,
                  symbol="AAPL", side="buy", quantity=qty)
    session.add(order)
    session.flush()
    return order


def test_every_transition_writes_an_event_an_audit_row_and_a_bus_event(session):
    world = seed_world(session)
    order = _order(session, world)
    journal = Journal()
    assert transition(session, order, "submitted", journal, now=NOW, message="sent")
    assert not transition(session, order, "submitted", journal, now=NOW)  # a repeat is a no-op
    with pytest.raises(IllegalTransition):
        transition(session, order, "new", journal, now=NOW)
    journal.flush_audit(session)
    session.commit()
    events = session.exec(select(OrderEvent)).all()
    assert [(e.from_status, e.to_status) for e in events] == [("new", "submitted")]
    assert session.exec(select(AuditEvent.action)).all() == ["order.placed"]
    assert order.submitted_at == NOW
    assert list(journal._bus.values())[0]["order"]["status"] == "submitted"


def _snap(status, filled, fills=(), avg=None):
    return OrderSnapshot(client_order_id="dte-test", broker_order_id="B1", symbol="AAPL", side="buy", quantity=D(10),
                         status=status, filled_quantity=filled, avg_fill_price=avg, fills=tuple(fills))


def test_snapshots_applied_twice_insert_each_fill_once(session):
    world = seed_world(session)
    order = _order(session, world)
    journal = Journal()
    f1 = VenueFill("v1", D(4), D(100), D("0.1"), NOW)
    f2 = VenueFill("v2", D(6), D(110), D(0), NOW)
    known: set[str] = set()
    new = record_snapshot(session, order, _snap("partially_filled", D(4), [f1]), journal, now=NOW, known_fill_ids=known)
    assert len(new) == 1 and order.status == "partially_filled"
    new = record_snapshot(session, order, _snap("filled", D(10), [f1, f2]), journal, now=NOW, known_fill_ids=known)
    assert [f.broker_fill_id for f in new] == ["v2"]
    again = record_snapshot(session, order, _snap("filled", D(10), [f1, f2]), journal, now=NOW, known_fill_ids=known)
    assert again == []
    journal.flush_audit(session)
    session.commit()
    assert order.status == "filled" and order.filled_quantity == D(10) and order.avg_fill_price == D(106)
    assert order.fees == D("0.1") and order.broker_order_id == "B1"
    assert len(session.exec(select(Fill)).all()) == 2
    statuses = [e.to_status for e in session.exec(select(OrderEvent).order_by(OrderEvent.id))]
    assert statuses == ["submitted", "partially_filled", "filled"]
    kinds = sorted(n.kind for n in session.exec(select(Notification)))
    assert kinds == ["order.filled", "order.partially_filled"]


def test_a_venue_reporting_only_totals_gets_synthetic_fills(session):
    world = seed_world(session)
    order = _order(session, world)
    journal, known = Journal(), set()
    record_snapshot(session, order, _snap("partially_filled", D(4), avg=D(100)), journal, now=NOW, known_fill_ids=known)
    new = record_snapshot(session, order, _snap("filled", D(10), avg=D(106)), journal, now=NOW, known_fill_ids=known)
    assert [(f.quantity, f.price) for f in new] == [(D(6), D(110))]
    assert order.status == "filled"


def test_a_rejection_keeps_the_venue_reason(session):
    world = seed_world(session)
    order = _order(session, world)
    snap = OrderSnapshot(client_order_id="dte-test", broker_order_id="B1", symbol="AAPL", side="buy",
                         quantity=D(10), status="rejected", reject_reason="Not enough buying power.")
    record_snapshot(session, order, snap, Journal(), now=NOW, known_fill_ids=set())
    assert order.status == "rejected" and order.error_message == "Not enough buying power."
