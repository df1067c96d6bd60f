"""Waiting orders, bracket resizing and the three ways to change an order."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal as D

import pytest

from sqlmodel import Session, select

from backend.db.models import Order, Position
from backend.execution.brackets import add_slices, change_order, rebalance, rescale_children, waiting_verdict
from backend.execution.intents import slice_order_id
from backend.execution.journal import Journal
from backend.execution.planner import Plan, order_fields
from backend.execution.seeding import seed_world

NOW = datetime(2026, 11, 2, 15, 0, tzinfo=timezone.utc)


def o(id: int, leg: str, status: str = "new", qty: str = "10", filled: str = "0", wait: int | None = None,
      **kw) -> Order:
    return Order(id=id, client_order_id=f"c{id}", user_id=1, broker_account_id=1, symbol="AAPL", side="sell",
                 leg=leg, status=status, quantity=D(qty), filled_quantity=D(filled), wait_for_order_id=wait, **kw)


@pytest.mark.parametrize("waiter_leg,waited,verdict", [
    ("stop", o(1, "entry", "submitted"), "wait"),
    ("stop", o(1, "entry", "filled", filled="10"), "ready"),
    ("tp1", o(1, "entry", "cancelled", filled="4"), "ready"),        # a partial entry still gets its bracket
    ("tp1", o(1, "entry", "cancelled"), "cancel"),                   # nothing filled: nothing to protect
    ("entry", o(1, "reverse", "filled", filled="10"), "ready"),      # close-then-reverse
    ("entry", o(1, "reverse", "rejected"), "cancel"),
    ("entry", o(1, "reverse", "partially_filled", filled="3"), "wait"),
    ("stop", o(1, "stop", "cancelled"), "ready"),                    # a replacement, once the old one is gone
    ("stop", o(1, "stop", "filled", filled="10"), "cancel"),         # ... dropped if the old one filled first
])
def test_waiting_verdicts(waiter_leg, waited, verdict):
    assert waiting_verdict(o(2, waiter_leg, wait=1), waited) == verdict


def test_a_bracket_is_rescaled_to_a_partial_entry_fill():
    entry = o(1, "entry", "cancelled", qty="30", filled="20")
    stop, tp1, tp2, tp3 = o(2, "stop", qty="30"), o(3, "tp1"), o(4, "tp2"), o(5, "tp3")
    rescale_children(entry, [stop, tp1, tp2, tp3])
    assert stop.quantity == D(20)
    assert [tp1.quantity, tp2.quantity, tp3.quantity] == [D(6), D(6), D(8)]


def test_a_fractional_bracket_keeps_its_proportions():
    entry = o(1, "entry", "cancelled", qty="1", filled="0.5")
    tp1, tp2 = o(2, "tp1", qty="0.75"), o(3, "tp2", qty="0.25")
    rescale_children(entry, [tp1, tp2])
    assert (tp1.quantity, tp2.quantity) == (D("0.375"), D("0.125"))


def test_an_order_never_sent_is_edited_in_place():
    plan, order = Plan(), o(1, "stop", order_type="stop", stop_price=D(95))
    assert change_order(plan, Journal(), order, now=NOW, replaceable=set(), tag="t", stop_price=D(97))
    assert order.stop_price == D(97) and not plan.intents and not plan.cancel_order_ids and not plan.replace


def test_a_working_order_is_amended_where_the_venue_can():
    plan, order = Plan(), o(1, "stop", "submitted", order_type="stop", stop_price=D(95), attempts=1)
    change_order(plan, Journal(), order, now=NOW, replaceable={1}, tag="t", quantity=D(5))
    assert plan.replace == {1: {"quantity": D(5)}} and not plan.intents
    assert order.quantity == D(10)  # changed only once the venue confirms


def test_elsewhere_a_working_order_is_cancelled_and_replaced():
    plan, order = Plan(), o(1, "stop", "submitted", order_type="stop", stop_price=D(95), attempts=1)
    change_order(plan, Journal(), order, now=NOW, replaceable=set(), tag="t", stop_price=D(99))
    assert plan.cancel_order_ids == {1}
    (replacement,) = plan.intents
    assert replacement.fields["stop_price"] == D(99) and replacement.fields["quantity"] == D(10)
    assert replacement.fields["wait_for_order_id"] == 1 and replacement.fields["leg"] == "stop"
    assert not replacement.ready_now
    assert not change_order(Plan(), Journal(), order, now=NOW, replaceable=set(), tag="t", stop_price=D(95))


def test_one_bracket_per_target_gives_each_slice_its_stop_and_target():
    plan = Plan()
    entry = plan.add(order_fields(client_order_id="dte-entry", user_id=1, broker_account_id=1, symbol="AAPL",
                                  side="buy", quantity=D(10), leg="entry", now=NOW, signal_id=7))
    add_slices(plan, entry, stop=D(180), targets=[(D(200), D(5)), (D(205), D(3)), (D(210), D(2))], signal_id=7,
               now=NOW)
    got = [(i.fields["leg"], i.client_order_id, i.fields["quantity"], i.fields["oco_group"],
            i.parent.client_order_id if i.parent else None) for i in plan.intents]
    second, third = slice_order_id("dte-entry", 2), slice_order_id("dte-entry", 3)
    assert got == [
        ("entry", "dte-entry", D(5), None, None),
        ("stop", "dte-entry-sl", D(5), "dte-entry", "dte-entry"),
        ("tp1", "dte-entry-tp1", D(5), "dte-entry", "dte-entry"),
        ("entry", second, D(3), None, None),
        ("stop", f"{second}-sl", D(3), second, second),
        ("tp2", f"{second}-tp1", D(3), second, second),   # its place in the ladder; the venue's name for it
        ("entry", third, D(2), None, None),
        ("stop", f"{third}-sl", D(2), third, third),
        ("tp3", f"{third}-tp1", D(2), third, third),
    ]
    assert {i.fields["stop_price"] for i in plan.intents if i.fields["leg"] == "stop"} == {D(180)}


def test_a_target_fill_ends_its_own_slice_not_the_newest_one(engine):
    """Three slices of 3: TP1 fills; the position (6) would trim the newest stop, its bracket says stop 1."""
    with Session(engine) as s:
        world = seed_world(s)
        acct = world.accounts[0].id
        uid = world.followers[0].id
        rows = []
        for n in (1, 2, 3):
            e = Order(client_order_id=f"e{n}", user_id=uid, broker_account_id=acct, symbol="AAPL", side="buy",
                      leg="entry", status="filled", quantity=D(3), filled_quantity=D(3))
            s.add(e)
            s.flush()
            rows.append(e)
            for leg, qty_filled, status in (("stop", D(0), "submitted"),
                                            (f"tp{n}", D(3) if n == 1 else D(0), "filled" if n == 1 else "submitted")):
                s.add(Order(client_order_id=f"e{n}-{leg}", user_id=uid, broker_account_id=acct, symbol="AAPL",
                            side="sell", leg=leg, status=status, quantity=D(3), filled_quantity=qty_filled,
                            parent_order_id=e.id, reduce_only=True, order_type="stop" if leg == "stop" else "limit"))
        pos = Position(user_id=uid, broker_account_id=acct, symbol="AAPL", quantity=D(6), avg_price=D(100))
        s.add(pos)
        s.flush()
        tp1 = s.exec(select(Order).where(Order.client_order_id == "e1-tp1")).one()
        cancels: set[int] = set()
        plan = rebalance(s, [pos], Journal(), now=NOW, venue_cancels=cancels, replaceable={acct}, known={tp1.id: tp1})
        by_id = {o.id: o.client_order_id for o in s.exec(select(Order))}
        assert {by_id[i] for i in cancels} == {"e1-stop"} and not plan.replace and not plan.intents
