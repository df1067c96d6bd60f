"""A close at a venue whose open exits hold its shares waits for the cancels that free them (Alpaca).

Alpaca confirms a cancel later (``pending_cancel`` still holds the shares), so
``plan_close`` makes the close wait for the protection it cancels, and
``release_waiting`` lets it go once no cancel of that protection is pending,
sized to the shares then free.  Two slices: slice 2 (3 shares, kept) and
slice 3 (2 shares, being cancelled); the position is 5 and the close is 2.
"""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal as D

import pytest
from sqlmodel import Session, select

from backend.db.models import Order, Position
from backend.execution.brackets import release_waiting, waiting_verdict
from backend.execution.commands import plan_close
from backend.execution.journal import Journal
from backend.execution.planner import Plan
from backend.execution.seeding import seed_world
from backend.execution.settle import mark_pending_cancels

NOW = datetime(2026, 11, 2, 15, 0, tzinfo=timezone.utc)


def _order(**kw) -> Order:
    return Order(id=kw.pop("id", None), client_order_id=kw.pop("cid"), user_id=1, broker_account_id=1,
                 symbol="AAPL", **kw)


@pytest.mark.parametrize("status", ["cancelled", "expired", "filled"])
def test_a_close_waiting_for_a_leg_is_ready_whatever_the_leg_became(status):
    """The verdict only says the wait is over; ``release_waiting`` sizes the close (a filled leg sold shares)."""
    close = _order(id=2, cid="close", side="sell", leg="close", status="new", quantity=D(2), wait_for_order_id=1)
    leg = _order(id=1, cid="leg", side="sell", leg="tp3", status=status, quantity=D(2),
                 filled_quantity=D(2) if status == "filled" else D(0))
    assert waiting_verdict(close, leg) == "ready"
    assert waiting_verdict(close, _order(id=1, cid="leg", side="sell", leg="stop", status="submitted",
                                         quantity=D(2))) == "wait"


def _world(s: Session):
    world = seed_world(s)
    acct, uid = world.accounts[0].id, world.followers[0].id
    legs = {}
    for n, qty in ((2, D(3)), (3, D(2))):
        entry = Order(client_order_id=f"e{n}", user_id=uid, broker_account_id=acct, symbol="AAPL", side="buy",
                      leg="entry", status="filled", quantity=qty, filled_quantity=qty)
        s.add(entry)
        s.flush()
        for leg in ("stop", f"tp{n}"):
            legs[f"e{n}-{leg}"] = Order(client_order_id=f"e{n}-{leg}", user_id=uid, broker_account_id=acct,
                                        symbol="AAPL", side="sell", leg=leg, status="submitted", quantity=qty,
                                        parent_order_id=entry.id, reduce_only=True, broker_order_id=f"v{n}{leg}",
                                        order_type="stop" if leg == "stop" else "limit", attempts=1)
            s.add(legs[f"e{n}-{leg}"])
    pos = Position(user_id=uid, broker_account_id=acct, symbol="AAPL", quantity=D(5), avg_price=D(100))
    s.add(pos)
    s.flush()
    return acct, pos, legs


def _close(s: Session, pos: Position, acct: int, *, frees_first: bool = True) -> tuple[Plan, Order]:
    plan = Plan()
    orders = s.exec(select(Order).where(Order.broker_account_id == acct).order_by(Order.id)).all()
    plan_close(plan, s, Journal(), position=pos, quantity=D(2), orders=list(orders), cid="the-close", leg="close",
               now=NOW, frees_first=frees_first, replaceable=set())
    plan.write(s, Journal())
    mark_pending_cancels(s, plan.cancel_order_ids, NOW)
    s.flush()
    return plan, s.exec(select(Order).where(Order.client_order_id == "the-close")).one()


def test_the_close_waits_for_every_cancel_then_goes_out_whole(engine):
    with Session(engine) as s:
        acct, pos, legs = _world(s)
        plan, close = _close(s, pos, acct)
        slice3 = {legs["e3-stop"].id, legs["e3-tp3"].id}
        assert plan.cancel_order_ids == slice3  # the newest slice gives way whole
        assert close.wait_for_order_id == max(slice3) and close.status == "new"

        first, second = sorted(slice3, key=lambda i: -i)  # the one it waits for is confirmed first
        s.get(Order, first).status = "cancelled"
        ready = release_waiting(s, [s.get(Order, first)], Journal(), now=NOW, venue_cancels=set())
        assert ready == [] and close.wait_for_order_id == second  # the other one still holds its shares

        s.get(Order, second).status = "cancelled"
        ready = release_waiting(s, [s.get(Order, second)], Journal(), now=NOW, venue_cancels=set())
        assert ready == [close.id] and close.quantity == D(2)  # slice 2 keeps 3 of 5: 2 are free


def test_a_leg_that_filled_instead_leaves_the_close_nothing_to_sell(engine):
    with Session(engine) as s:
        acct, pos, legs = _world(s)
        _plan, close = _close(s, pos, acct)
        tp3, stop3 = legs["e3-tp3"], legs["e3-stop"]
        tp3.status, tp3.filled_quantity = "filled", D(2)  # the target sold the 2 shares; the venue cancelled the stop
        stop3.status = "cancelled"
        pos.quantity = D(3)
        ready = release_waiting(s, [tp3, stop3], Journal(), now=NOW, venue_cancels=set())
        assert ready == [] and close.status == "cancelled"


def test_a_cancelled_leg_that_partly_filled_first_shrinks_the_close(engine):
    """TP3 sold 1 of its 2 before its cancel was confirmed: 1 share is left to close, not 2."""
    with Session(engine) as s:
        acct, pos, legs = _world(s)
        _plan, close = _close(s, pos, acct)
        legs["e3-tp3"].filled_quantity = D(1)
        pos.quantity = D(4)
        for key in ("e3-stop", "e3-tp3"):
            legs[key].status = "cancelled"
        ready = release_waiting(s, [legs["e3-stop"], legs["e3-tp3"]], Journal(), now=NOW, venue_cancels=set())
        assert ready == [close.id] and close.quantity == D(1)


def test_the_kept_protection_counts_what_its_bracket_still_covers(engine):
    """Slice 2's stop sold 2 of 3 meanwhile: its target still says 3, but the bracket covers 1; 2 are free."""
    with Session(engine) as s:
        acct, pos, legs = _world(s)
        _plan, close = _close(s, pos, acct)
        legs["e2-stop"].status, legs["e2-stop"].filled_quantity = "partially_filled", D(2)
        pos.quantity = D(3)
        for key in ("e3-stop", "e3-tp3"):
            legs[key].status = "cancelled"
        s.flush()
        ready = release_waiting(s, [legs["e3-stop"], legs["e3-tp3"]], Journal(), now=NOW, venue_cancels=set())
        assert ready == [close.id] and close.quantity == D(2)


def test_two_closes_waiting_for_the_same_cancels_never_sell_the_position_twice(engine):
    """A second close-all (another click) waits for the same cancels: released together, only one sells."""
    with Session(engine) as s:
        acct, pos, legs = _world(s)
        closes = []
        for cid in ("close-a", "close-b"):
            plan = Plan()
            orders = s.exec(select(Order).where(Order.broker_account_id == acct).order_by(Order.id)).all()
            plan_close(plan, s, Journal(), position=pos, quantity=D(5), orders=list(orders), cid=cid, leg="close",
                       now=NOW, frees_first=True, replaceable=set())
            plan.write(s, Journal())
            mark_pending_cancels(s, plan.cancel_order_ids, NOW)
            s.flush()
            closes.append(s.exec(select(Order).where(Order.client_order_id == cid)).one())
        for leg in legs.values():
            leg.status = "cancelled"
        ready = release_waiting(s, list(legs.values()), Journal(), now=NOW, venue_cancels=set())
        assert ready == [closes[0].id] and closes[0].quantity == D(5) and closes[1].status == "cancelled"


def test_without_held_quantity_the_close_goes_out_at_once(engine):
    with Session(engine) as s:
        acct, pos, _legs = _world(s)
        plan, close = _close(s, pos, acct, frees_first=False)
        assert close.wait_for_order_id is None and not plan.cancel_order_ids


@pytest.mark.parametrize("frees", [True, False])
def test_a_flatten_waits_for_the_cancels_only_where_exits_hold_shares(engine, frees):
    """The daily-loss flatten and a flatten signal use ``plan_flatten``: at such a venue (the account in
    ``frees_first``) its close waits for the newest cancel of the legs; elsewhere it goes out at once."""
    from backend.execution.commands import plan_flatten

    with Session(engine) as s:
        acct, pos, legs = _world(s)
        plan = Plan()
        orders = s.exec(select(Order).where(Order.broker_account_id == acct).order_by(Order.id)).all()
        [intent] = plan_flatten(plan, s, Journal(), positions=[pos], orders=list(orders), key="loss:test", now=NOW,
                                frees_first={acct} if frees else set())
        plan.write(s, Journal())
        flatten = s.exec(select(Order).where(Order.leg == "flatten")).one()
        assert plan.cancel_order_ids == {o.id for o in legs.values()} and flatten.quantity == D(5)
        assert flatten.wait_for_order_id == (max(o.id for o in legs.values()) if frees else None)
