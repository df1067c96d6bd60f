"""The order-level cumulative fee of a totals-only venue (Kraken, Coinbase) is booked as deltas, once."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal as D

from sqlmodel import select

from backend.brokers.base import OrderSnapshot, VenueFill
from backend.db.models import Fill, Order
from backend.execution.journal import Journal
from backend.execution.seeding import seed_world
from backend.execution.state_machine import record_snapshot

NOW = datetime(2026, 11, 2, 15, 0, tzinfo=timezone.utc)


def _order(session) -> Order:
    world = seed_world(session)
    order = Order(client_order_id="dte-fee", user_id=world.followers[0].id, broker_account_id=world.accounts[0].id,
                  symbol="BTC/USD", side="buy", quantity=D("0.01"), asset_class="crypto")
    session.add(order)
    session.flush()
    return order


def _snap(status, filled, avg, fee, fills=()):
    return OrderSnapshot(client_order_id="dte-fee", broker_order_id="OK1", symbol="BTC/USD", side="buy",
                         quantity=D("0.01"), status=status, filled_quantity=filled, avg_fill_price=avg,
                         fills=tuple(fills), fee=fee)


def test_a_partial_then_the_rest_books_each_parts_fee_once_and_a_re_read_books_nothing(session):
    order, journal, known = _order(session), Journal(), set()
    part = _snap("partially_filled", D("0.004"), D(30000), D("0.312"))
    first = record_snapshot(session, order, part, journal, now=NOW, known_fill_ids=known)
    assert record_snapshot(session, order, part, journal, now=NOW, known_fill_ids=known) == []
    done = _snap("filled", D("0.01"), D(30000), D("0.78"))
    rest = record_snapshot(session, order, done, journal, now=NOW, known_fill_ids=known)
    assert record_snapshot(session, order, done, journal, now=NOW, known_fill_ids=known) == []
    assert [(f.quantity, f.fee) for f in first + rest] == [(D("0.004"), D("0.312")), (D("0.006"), D("0.468"))]
    session.commit()
    assert order.fees == D("0.78") and sum((f.fee for f in session.exec(select(Fill))), D(0)) == D("0.78")


def test_a_venue_fee_below_what_is_booked_books_nothing_and_no_fee_means_zero(session):
    order, journal, known = _order(session), Journal(), set()
    record_snapshot(session, order, _snap("partially_filled", D("0.004"), D(30000), D("0.5")), journal,
                    now=NOW, known_fill_ids=known)
    [later] = record_snapshot(session, order, _snap("partially_filled", D("0.006"), D(30000), D("0.4")), journal,
                              now=NOW, known_fill_ids=known)
    [silent] = record_snapshot(session, order, _snap("filled", D("0.01"), D(30000), None), journal,
                               now=NOW, known_fill_ids=known)
    assert (later.fee, silent.fee, order.fees) == (D(0), D(0), D("0.5"))


def test_per_trade_fills_carry_their_own_fees_and_the_order_fee_is_not_added_again(session):
    order, journal, known = _order(session), Journal(), set()
    fill = VenueFill("T1", D("0.01"), D(30000), D("0.3"), NOW)
    new = record_snapshot(session, order, _snap("filled", D("0.01"), D(30000), D("0.3"), [fill]), journal,
                          now=NOW, known_fill_ids=known)
    assert [f.fee for f in new] == [D("0.3")] and order.fees == D("0.3")


def test_a_fill_booked_late_by_reconciliation_carries_the_fee_increase_too(session):
    """``reconcile.orders.late`` (a fill after the order was recorded cancelled) books the same synthetic fill
    as live tracking: quantity and price from the totals, the fee from the order's cumulative fee."""
    from backend.execution.state_machine import synthetic_fill

    order = _order(session)
    order.filled_quantity, order.avg_fill_price, order.fees = D("0.004"), D(30000), D("0.312")
    fill = synthetic_fill(order, _snap("filled", D("0.01"), D(30500), D("0.78")), NOW)
    assert fill.quantity == D("0.006") and fill.fee == D("0.468")
    assert fill.price == ((D(30500) * D("0.01") - D(30000) * D("0.004")) / D("0.006")).quantize(D("1e-10"))
    assert fill.broker_fill_id == "OK1:0.01" and fill.filled_at == NOW
