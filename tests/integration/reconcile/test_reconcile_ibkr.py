"""Reconciliation of an Interactive Brokers account through ib_async and the loopback IB Gateway.

The scheduler opens its own gateway session next to the execution worker's,
so it connects with a client id of its own; what the gateway reports as held
is compared with the product's book.  (Orders placed by another session are
learnt through ``openOrder`` messages the fake does not speak: see
``tests/fakes/fake_ibkr.py``.)
"""

from __future__ import annotations

from decimal import Decimal as D

from sqlmodel import Session, select

from backend.brokers.credentials import RECONCILE_OPTIONS, build_provider
from backend.db.models import Position
from backend.execution.seeding import seed_world
from backend.reconcile.run import reconcile_all
from backend.services.accounts import connect_account
from fakes.fake_ibkr import FakeIbGateway

FAST = {"timeout": 3, "ack_timeout": 2, "requests_per_minute": 100_000}


async def test_a_position_held_at_the_gateway_is_recorded_once_through_a_session_of_its_own(engine):
    with Session(engine, expire_on_commit=False) as s:
        world = seed_world(s)
    gateway = FakeIbGateway()
    port = await gateway.start()
    try:
        account = await connect_account(engine, world.followers[0].id, "ibkr", "IBKR",
                                        {"port": port, "client_id": 17, "account": gateway.account},
                                        adapter_options=FAST)
        gateway.positions["MSFT"] = (D(5), D("410.5"))           # bought in TWS by hand
        provider = build_provider(options={"ibkr": {**RECONCILE_OPTIONS["ibkr"], **FAST}})
        first = await reconcile_all(engine, account_id=account["id"], provider=provider)
        second = await reconcile_all(engine, account_id=account["id"], provider=provider)
    finally:
        await gateway.stop()
    assert not first.failed and [(r.kind, r.subject, r.data["price"]) for r in first.repairs] == [
        ("unknown_position", "MSFT", "410.5")]
    assert second.repairs == [] and not second.failed
    with Session(engine) as s:
        position = s.exec(select(Position)).one()
    assert (position.broker_account_id, position.quantity, position.avg_price) == (account["id"], D(5), D("410.5"))
    assert sorted({f[2] for f in gateway.received if f[0] == "71"}) == ["117", "17"]
