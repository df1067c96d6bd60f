"""End to end on Alpaca: a provider's Discord message -> ingest -> engine -> a filled order at the loopback Alpaca.

The member's keys are stored only as a vault ciphertext (``connect_account``)
and the adapter is built from them by the credentials provider installed the
way the worker installs it, so this is the production path with only the
venue's host replaced.
"""

from __future__ import annotations

import uuid
from decimal import Decimal as D

import pytest
from sqlmodel import Session, select

from backend.brokers.credentials import install_credentials_provider
from backend.db.models import BrokerAccount, Follow, Order, Position
from backend.db.types import utcnow
from backend.execution.adapters import set_default_provider, shared_adapters
from backend.execution.seeding import seed_world
from backend.services import trading
from backend.services.accounts import connect_account
from fakes.fake_alpaca import FakeAlpaca
from fakes.loopback import serve


@pytest.fixture
def installed_provider():
    install_credentials_provider()
    yield
    set_default_provider(None)


async def test_a_discord_signal_is_filled_at_alpaca_with_vaulted_keys(engine, installed_provider):
    with Session(engine, expire_on_commit=False) as s:
        world = seed_world(s)
    fake = FakeAlpaca(api_key=f"PK{uuid.uuid4().hex[:14].upper()}", api_secret=f"sec-{uuid.uuid4().hex}")
    async with serve(fake.app()) as url:
        account = await connect_account(engine, world.followers[0].id, "alpaca", "Alpaca paper",
                                        {"api_key": fake.api_key, "api_secret": fake.api_secret}, base_url=url)
        with Session(engine) as s:
            row = s.get(BrokerAccount, account["id"])
            assert row.credentials_enc.startswith("v1:") and fake.api_secret not in row.credentials_enc
            assert fake.api_key not in row.credentials_enc and url not in row.credentials_enc
            s.get(Follow, world.follows[0].id).broker_account_id = row.id
            s.get(BrokerAccount, world.accounts[0].id).status = "disconnected"
            s.commit()

        result = await trading.ingest_discord_message(channel_id=world.source.discord_channel_id, message_id="e2e-1",
                                                      content="Buy AAPL 191 SL 180 TP 200", sent_at=utcnow(),
                                                      engine=engine)
        assert (result["status"], result["approved"], result["orders_submitted"]) == ("dispatched", 1, 1)
        with Session(engine) as s:
            entry, stop, tp = s.exec(select(Order).order_by(Order.id)).all()
            position = s.exec(select(Position)).one()
        assert (entry.status, entry.filled_quantity, entry.avg_fill_price) == ("filled", D(10), D("190.12"))
        assert (stop.status, tp.status) == ("submitted", "submitted")          # held by Alpaca in the bracket
        venue = fake.book.by_client_id(entry.client_order_id)
        assert venue.status == "filled" and venue.order_class == "bracket" and len(venue.legs) == 2
        assert {leg.order_type for leg in venue.legs} == {"stop", "limit"}
        assert (position.broker_account_id, position.quantity) == (account["id"], fake.book.positions["AAPL"][0])
        await shared_adapters(engine).aclose()
