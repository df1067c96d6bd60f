"""Positions page state called directly: close through the bot's service, never someone else's."""

from __future__ import annotations

from sqlmodel import Session, select

from backend.db.models import Order
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
