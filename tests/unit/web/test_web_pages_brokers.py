"""Brokers page state called directly: connect a paper account, refusals shown, own accounts only."""

from __future__ import annotations

from sqlmodel import Session, select

from backend.db.models import BrokerAccount
from state.brokers import BrokersState, broker_fields
from webstate import sign_in


def signed_in(db, user) -> BrokersState:
    state = sign_in(BrokersState, db, user)
    return state


async def test_connect_a_paper_account_and_disconnect_it(db, users):
    state = signed_in(db, users["pat"])
    state.load()
    assert state.accounts == []
    state.set_label("My paper")
    state.set_starting_cash("5000")
    await state.connect()
    assert state.field_error == "" and [a["label"] for a in state.accounts] == ["My paper"]
    state.disconnect(state.accounts[0]["id"])
    assert state.accounts[0]["status"] == "disconnected"


async def test_refusals_name_the_field(db, users):
    state = signed_in(db, users["pat"])
    state.load()
    await state.connect()  # no name
    assert state.error_field == "label" and "name" in state.field_error
    state.set_label("x")
    state.set_starting_cash("-3")
    await state.connect()
    assert state.error_field == "starting_cash"
    state.set_broker("alpaca")
    assert [f["name"] for f in state.fields] == ["api_key", "api_secret"] and state.fields[0]["type"] == "password"
    await state.connect()  # no keys
    assert state.field_error and state.accounts == []
    assert broker_fields("nope") == []


def test_cannot_disconnect_someone_elses_account(db, users):
    with Session(db) as s:
        danas = s.exec(select(BrokerAccount.id).where(BrokerAccount.user_id == users["dana"].id)).first()
    sam = signed_in(db, users["sam"])
    sam.load()
    sam.disconnect(str(danas))
    assert "belongs to someone else" in sam.field_error
    with Session(db) as s:
        assert s.get(BrokerAccount, danas).status == "connected"
