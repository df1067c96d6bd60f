"""Brokers page state called directly: connect a paper account, refusals shown, own accounts only."""

from __future__ import annotations

import functools

from sqlmodel import Session, select

from backend.db.models import BrokerAccount
from backend.services import accounts as account_service
from fakes.fake_alpaca import FakeAlpaca
from fakes.loopback import serve
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
    assert state.error_field == "starting_cash" and "starting cash" in state.field_error
    state.set_broker("alpaca")
    assert [f["name"] for f in state.fields] == ["api_key", "api_secret"] and state.fields[0]["type"] == "password"
    assert state.field_error == state.error_field == ""  # a new broker starts clean
    state.set_secret("api_key", "PKSOMETHING")
    await state.connect()  # no secret: the message goes under the secret's own input
    assert state.error_field == "api_secret" and state.field_error == "The API secret is missing."
    assert state.accounts == []
    assert broker_fields("nope") == []


async def test_keys_the_venue_refuses_are_shown_on_the_credentials(db, users, monkeypatch):
    """Alpaca (the loopback fake, reached by the real SDK) refuses the secret: said under the keys."""
    fake = FakeAlpaca(api_key="PKWEBSTATE0001", api_secret="the-right-secret")
    state = signed_in(db, users["pat"])
    state.load()
    async with serve(fake.app()) as url:
        monkeypatch.setattr(account_service, "connect_account",
                            functools.partial(account_service.connect_account, base_url=url))
        state.set_broker("alpaca")
        state.set_label("Alpaca paper")
        state.set_secret("api_key", fake.api_key)
        state.set_secret("api_secret", "wrong")
        await state.connect()
        assert state.error_field == "credentials"
        assert state.field_error.startswith("Alpaca refused these API keys") and "Nothing was saved" in state.field_error
        assert state.accounts == [] and state._secrets == {}  # the typed keys are gone, success or not
        state.set_secret("api_key", fake.api_key)
        state.set_secret("api_secret", fake.api_secret)
        await state.connect()
    assert state.field_error == state.error_field == "" and state.message == "Connected Alpaca paper."
    assert [a["label"] for a in state.accounts] == ["Alpaca paper"]


async def test_an_unreachable_gateway_is_a_general_message_not_a_field(db, users):
    state = signed_in(db, users["pat"])
    state.load()
    state.set_broker("ibkr")
    state.set_label("IB")
    state.set_secret("host", "127.0.0.1")
    state.set_secret("port", "1")  # nothing listens there
    await state.connect()
    assert state.error_field == "" and "Cannot reach the IB Gateway" in state.field_error


def test_cannot_disconnect_someone_elses_account(db, users):
    with Session(db) as s:
        danas = s.exec(select(BrokerAccount.id).where(BrokerAccount.user_id == users["dana"].id)).first()
    sam = signed_in(db, users["sam"])
    sam.load()
    sam.disconnect(str(danas))
    assert "belongs to someone else" in sam.field_error and sam.error_field == ""  # shown above, not on a field
    with Session(db) as s:
        assert s.get(BrokerAccount, danas).status == "connected"
