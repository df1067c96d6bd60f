"""Positions page state called directly: close through the bot's service, never someone else's."""

from __future__ import annotations

from decimal import Decimal

from sqlmodel import Session, select

from backend.db.models import Order, Position, RealizedPnl
from state.positions import PositionsState
from webstate import sign_in


def signed_in(db, user) -> PositionsState:
    state = sign_in(PositionsState, db, user)
    return state


async def test_close_all_sends_a_reduce_only_order(db, users):
    state = signed_in(db, users["alex"])
    state.load()
    [aapl] = state.positions
    assert aapl["symbol"] == "AAPL" and aapl["side"] == "Long"
    await state.close_all(aapl["account_id"], "AAPL")
    assert state.error == "" and "Close order for AAPL sent" in state.message
    with Session(db) as s:
        closes = s.exec(select(Order).where(Order.user_id == users["alex"].id, Order.leg == "close")).all()
        assert len(closes) == 1 and closes[0].reduce_only


async def test_bad_percent_is_refused(db, users):
    state = signed_in(db, users["alex"])
    state.load()
    state.set_percent("abc")
    await state.close_percent(state.positions[0]["account_id"], "AAPL")
    assert "percentage" in state.error
    state.set_percent("150")
    await state.close_percent(state.positions[0]["account_id"], "AAPL")
    assert "at most 100" in state.error


async def test_cannot_close_someone_elses_position(db, users):
    dana = signed_in(db, users["dana"])
    dana.load()
    sam = signed_in(db, users["sam"])
    sam.load()
    assert sam.positions == []
    await sam.close_all(dana.positions[0]["account_id"], "AAPL")
    assert "belongs to someone else" in sam.error
    with Session(db) as s:
        assert s.exec(select(Order).where(Order.leg == "close")).first() is None


async def test_close_a_percentage_reduces_the_position_by_that_share(db, users):
    alex = users["alex"]
    state = signed_in(db, alex)
    state.load()
    [aapl] = state.positions
    assert aapl["quantity"] == "10"
    state.set_percent("30%")
    await state.close_percent(aapl["account_id"], "AAPL")
    assert state.error == "" and state.message == "Close order for AAPL sent: 3 filled."
    [after] = state.positions  # the page reloaded: 7 left, same account and side
    assert (after["quantity"], after["side"], after["account_id"]) == ("7", "Long", aapl["account_id"])
    with Session(db) as s:
        position = s.exec(select(Position).where(Position.user_id == alex.id, Position.symbol == "AAPL")).one()
        assert position.quantity == Decimal(7)
        [close] = s.exec(select(Order).where(Order.user_id == alex.id, Order.leg == "close")).all()
        assert (close.side, close.quantity, close.status, close.reduce_only) == ("sell", Decimal(3), "filled", True)
        # The sold share of the position is realised: 3 x (fill price - 190 average).
        [realized] = s.exec(select(RealizedPnl).where(RealizedPnl.user_id == alex.id)).all()
        assert realized.amount == (close.avg_fill_price - Decimal(190)) * 3 - close.fees
