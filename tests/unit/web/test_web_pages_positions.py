"""Positions page state called directly: close through the bot's service, never someone else's."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from backend.db.models import Order, User
from backend.services import auth
from backend.services.demo_seed import seed_demo
from state.positions import PositionsState


@pytest.fixture
def db(engine, settings_env):
    settings_env(DATABASE_URL=engine.url.render_as_string(hide_password=False))
    seed_demo(engine)
    return engine


@pytest.fixture
def users(db):
    with Session(db) as s:
        return {u.username: u for u in s.exec(select(User)).all()}


def signed_in(db, user) -> PositionsState:
    state = PositionsState()
    with Session(db) as s:
        state.session_token = auth.create_session(s, user.id)
        s.commit()
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
