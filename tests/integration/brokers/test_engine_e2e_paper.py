"""End to end on the paper venue: Discord message -> ingest -> engine -> a filled paper order.

The account is opened with ``connect_account`` (which opens the paper books
with the chosen starting cash) and its adapter comes from the credentials
provider, which builds the paper broker without any credentials.
"""

from __future__ import annotations

from decimal import Decimal as D

from sqlmodel import Session, select

from backend.brokers.credentials import build_provider
from backend.brokers.paper import PaperBroker
from backend.db.models import BrokerAccount, Follow, Order, PaperAccount, PaperOrder, Position
from backend.db.types import utcnow
from backend.execution.adapters import Adapters
from backend.execution.seeding import seed_world
from backend.services import trading
from backend.services.accounts import connect_account


async def test_a_discord_signal_is_filled_at_the_paper_venue(engine, settings_env):
    settings_env(PAPER_SLIPPAGE_BPS="0", PAPER_FEE_BPS="0", PAPER_FEE_PER_ORDER="0")
    with Session(engine, expire_on_commit=False) as s:
        world = seed_world(s)
    account = await connect_account(engine, world.followers[0].id, "paper", "Practice", {}, starting_cash="50000")
    assert (account["cash"], account["permissions"], account["has_credentials"]) == (D(50000), "trade", False)
    with Session(engine) as s:
        opened = s.exec(select(PaperAccount.cash).where(PaperAccount.broker_account_id == account["id"])).one()
        assert opened == D(50000)
        s.get(Follow, world.follows[0].id).broker_account_id = account["id"]
        s.get(BrokerAccount, world.accounts[0].id).status = "disconnected"
        s.commit()
    adapters = Adapters(engine, provider=build_provider())
    broker = adapters.get(BrokerAccount(id=account["id"], user_id=world.followers[0].id, broker="paper", label="x"))
    assert isinstance(broker, PaperBroker)
    await broker.set_quote("AAPL", D("100"))

    result = await trading.ingest_discord_message(channel_id=world.source.discord_channel_id, message_id="e2e-1",
                                                  content="Buy AAPL", sent_at=utcnow(), engine=engine,
                                                  adapters=adapters)
    assert (result["approved"], result["orders_submitted"]) == (1, 1)
    with Session(engine) as s:
        order = s.exec(select(Order)).one()
        venue = s.exec(select(PaperOrder)).one()
        position = s.exec(select(Position)).one()
        cash = s.exec(select(PaperAccount.cash).where(PaperAccount.broker_account_id == account["id"])).one()
    assert (order.status, order.filled_quantity, order.avg_fill_price) == ("filled", D(10), D(100))
    assert (venue.client_order_id, venue.status) == (order.client_order_id, "filled")
    assert (position.broker_account_id, position.quantity, cash) == (account["id"], D(10), D(49000))
