"""FIFO lots and P&L: long and short, partial reductions, flips through zero, fees, on both databases."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal as D

from sqlmodel import select

from backend.db.models import Fill, Order, Position, PositionLot, RealizedPnl
from backend.execution.journal import Journal
from backend.execution.positions import Lot, apply_fills, fifo_apply, summarise, unrealized_pnl
from backend.execution.seeding import seed_world

T0 = datetime(2026, 11, 2, 15, 0, tzinfo=timezone.utc)


def test_fifo_closes_the_oldest_lot_first():
    lots = [Lot(D(10), D(100)), Lot(D(10), D(110))]
    closed, pnl, new = fifo_apply(lots, D(-15), D(120))
    assert (closed, pnl, new) == (D(15), D(10) * 20 + D(5) * 10, None)
    assert [lot.quantity for lot in lots] == [D(0), D(5)]
    assert summarise(lots) == (D(5), D(110))


def test_short_lots_profit_when_price_falls():
    lots = [Lot(D(-4), D(50))]
    closed, pnl, new = fifo_apply(lots, D(3), D(45))
    assert (closed, pnl) == (D(3), D(15))
    assert summarise(lots) == (D(-1), D(50))


def test_a_fill_larger_than_the_position_flips_it():
    lots = [Lot(D(5), D(10))]
    closed, pnl, new = fifo_apply(lots, D(-8), D(12))
    assert (closed, pnl) == (D(5), D(10))
    assert new is not None and (new.quantity, new.price) == (D(-3), D(12))
    assert summarise(lots) == (D(-3), D(12))


def test_adding_averages_the_entry():
    lots = [Lot(D(10), D(100))]
    fifo_apply(lots, D(30), D(104))
    assert summarise(lots) == (D(40), D(103))


def _order(world, side: str, qty: D, cid: str, symbol: str = "AAPL") -> Order:
    return Order(client_order_id=cid, user_id=world.followers[0].id, broker_account_id=world.accounts[0].id,
                 symbol=symbol, side=side, quantity=qty, status="filled")


def test_fills_book_lots_ledger_and_position_on_both_databases(session):
    world = seed_world(session)
    journal = Journal()
    steps = [("buy", D(10), D(100), D(1)), ("buy", D(10), D(110), D(0)), ("sell", D(15), D(120), D(1)),
             ("sell", D(8), D(90), D(0))]
    for n, (side, qty, price, fee) in enumerate(steps):
        order = _order(world, side, qty, f"o{n}")
        session.add(order)
        session.flush()
        fill = Fill(order_id=order.id, broker_fill_id=f"f{n}", quantity=qty, price=price, fee=fee,
                    filled_at=T0 + timedelta(minutes=n))
        session.add(fill)
        session.flush()
        apply_fills(session, [(order, fill)], journal, T0)
        session.flush()
    pos = session.exec(select(Position)).one()
    # 10@100 + 10@110; sell 15@120 closes 10@100 (+200) and 5@110 (+50), fee 1; sell 8@90 closes 5@110 (-100)
    # and opens a 3 short at 90.
    assert pos.quantity == D(-3) and pos.avg_price == D(90)
    amounts = [r.amount for r in session.exec(select(RealizedPnl).order_by(RealizedPnl.id))]
    assert amounts == [D(-1), D(249), D(-100)]  # the opening fee is realised when paid
    assert pos.realized_pnl == D(148) and pos.fees == D(2)
    lots = session.exec(select(PositionLot)).all()
    assert [(lot.quantity, lot.price) for lot in lots] == [(D(-3), D(90))]
    assert unrealized_pnl(pos, D(80)) == D(30)


def test_option_pnl_uses_the_contract_multiplier(session):
    world = seed_world(session)
    journal = Journal()
    for n, (side, price) in enumerate([("buy", D("2.50")), ("sell", D("3.00"))]):
        order = _order(world, side, D(2), f"opt{n}", symbol="SPY")
        order.asset_class, order.option_right, order.strike = "option", "call", D(450)
        order.expiry = datetime(2026, 11, 17).date()
        session.add(order)
        session.flush()
        fill = Fill(order_id=order.id, broker_fill_id=f"x{n}", quantity=D(2), price=price, filled_at=T0)
        session.add(fill)
        session.flush()
        apply_fills(session, [(order, fill)], journal, T0)
        session.flush()
    pos = session.exec(select(Position)).one()
    assert pos.symbol == "SPY261117C00450000" and pos.quantity == 0
    assert pos.realized_pnl == D(100)  # 0.50 x 2 contracts x 100
