"""Take-profit ladders at venues whose native bracket holds ONE take-profit (Alpaca, IBKR).

``capabilities.max_bracket_take_profits == 1``: the entry goes out as a
stop-only OTO (the venue holds the stop), the engine places the targets as
separate limit orders once the entry fills, and every target fill shrinks
the venue's stop to what is left, until the last one closes the position
and the stop is cancelled.  The real SDKs talk to their loopback fakes; the
targets are filled one after the other the way the venue would fill them.
"""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from sqlmodel import Session, select

from backend.brokers.credentials import build_provider
from backend.db.models import BrokerAccount, Follow, Order, Position
from backend.db.types import utcnow
from backend.execution.adapters import Adapters
from backend.execution.runner import recover
from backend.execution.seeding import seed_world
from backend.services import trading
from backend.services.accounts import connect_account
from fakes.fake_alpaca import FakeAlpaca
from fakes.fake_ibkr import FakeIbGateway
from fakes.loopback import serve

LADDERS = {
    # signal, units traded, expected (price, quantity) per target
    "two targets": ("Buy AAPL 191 SL 180 TP 200 TP 210", D(10), [(D(200), D(5)), (D(210), D(5))]),
    "three targets": ("Buy AAPL 191 SL 180 TP 200 TP 205 TP 210", D(9), [(D(200), D(3)), (D(205), D(3)),
                                                                        (D(210), D(3))]),
}


def rows(engine) -> dict[str, Order]:
    with Session(engine) as s:
        return {o.leg: o for o in s.exec(select(Order).order_by(Order.id))}


def held(engine) -> D:
    with Session(engine) as s:
        pos = s.exec(select(Position)).first()
        return pos.quantity if pos else D(0)


async def _follow(engine, world, account_id: int) -> None:
    with Session(engine) as s:
        s.get(Follow, world.follows[0].id).broker_account_id = account_id
        s.get(BrokerAccount, world.accounts[0].id).status = "disconnected"
        s.commit()


async def _run_ladder(engine, world, adapters, text, size, targets, venue) -> None:
    """Dispatch ``text``, then fill the targets in order at ``venue`` and check the stop after each."""
    result = await trading.ingest_discord_message(channel_id=world.source.discord_channel_id, message_id="ladder",
                                                  content=text, sent_at=utcnow(), engine=engine, adapters=adapters)
    assert (result["approved"], result["orders_submitted"]) == (1, 1 + len(targets))  # the entry, then the targets
    got = rows(engine)
    entry, stop = got["entry"], got["stop"]
    assert (entry.status, entry.filled_quantity) == ("filled", size)
    assert (stop.status, stop.quantity) == ("submitted", size)
    assert venue.entry_has_stop_only(entry.client_order_id)
    tps = [got[f"tp{n}"] for n in range(1, len(targets) + 1)]
    assert [(t.status, t.limit_price, t.quantity) for t in tps] == [("submitted", p, q) for p, q in targets]
    assert [venue.resting(t.client_order_id) for t in tps] == [q for _, q in targets]
    assert venue.resting(stop.client_order_id) == size
    left = size
    for n, (_, qty) in enumerate(targets, start=1):
        await venue.fill(got[f"tp{n}"].client_order_id)
        await recover(engine, adapters)
        left -= qty
        now = rows(engine)
        assert now[f"tp{n}"].status == "filled" and held(engine) == venue.position() == left
        if left:
            assert (now["stop"].status, now["stop"].quantity) == ("submitted", left)
            assert venue.resting(stop.client_order_id) == left  # the venue's stop covers exactly what is left
    final = rows(engine)
    assert final["stop"].status == "cancelled" and venue.resting(stop.client_order_id) is None


class AlpacaVenue:
    def __init__(self, fake: FakeAlpaca) -> None:
        self.fake = fake

    def _live(self, client_order_id: str):
        """The venue order behind our name: a client id, or ``<entry>-sl`` for the bracket's stop leg."""
        book = self.fake.book
        if client_order_id.endswith("-sl"):
            entry = book.by_client_id(client_order_id.removesuffix("-sl"))
            [leg] = [leg for leg in entry.legs if leg.order_type == "stop"]
        else:
            leg = book.by_client_id(client_order_id)
        while leg.replaced_by:
            leg = book.get(leg.replaced_by)
        return leg

    def entry_has_stop_only(self, client_order_id: str) -> bool:
        entry = self.fake.book.by_client_id(client_order_id)
        return entry.order_class == "oto" and [leg.order_type for leg in entry.legs] == ["stop"]

    def resting(self, client_order_id: str) -> D | None:
        order = self._live(client_order_id)
        return order.remaining if order.is_open else None

    async def fill(self, client_order_id: str) -> None:
        self.fake.book.fill(self._live(client_order_id).order_id)

    def position(self) -> D:
        return self.fake.book.positions.get("AAPL", (D(0), D(0)))[0]


class IbVenue:
    def __init__(self, gateway: FakeIbGateway) -> None:
        self.gateway = gateway

    def _order(self, ref: str):
        return next(o for o in self.gateway.orders.values() if o.order_ref == ref)

    def entry_has_stop_only(self, client_order_id: str) -> bool:
        entry = self._order(client_order_id)
        children = [o for o in self.gateway.orders.values() if o.parent_id == entry.order_id]
        return [(c.order_type, c.order_ref) for c in children] == [("STP", f"{client_order_id}-sl")]

    def resting(self, ref: str) -> D | None:
        o = self._order(ref)
        return o.quantity - o.filled if o.status in ("Submitted", "PreSubmitted") else None

    async def fill(self, ref: str) -> None:
        await self.gateway.push_fill(self._order(ref).order_id)

    def position(self) -> D:
        return self.gateway.positions.get("AAPL", (D(0), D(0)))[0]


@pytest.mark.parametrize("ladder", sorted(LADDERS))
async def test_an_alpaca_ladder_fills_target_by_target_under_a_shrinking_stop(engine, ladder):
    text, size, targets = LADDERS[ladder]
    with Session(engine, expire_on_commit=False) as s:
        world = seed_world(s, profile={"sizing_value": size})
    fake = FakeAlpaca(api_key="PKLADDER0001", api_secret="ladder-secret")
    async with serve(fake.app()) as url:
        account = await connect_account(engine, world.followers[0].id, "alpaca", "Alpaca paper",
                                        {"api_key": fake.api_key, "api_secret": fake.api_secret}, base_url=url)
        await _follow(engine, world, account["id"])
        adapters = Adapters(engine, provider=build_provider(options={"alpaca": {"requests_per_minute": 100_000}}))
        try:
            await _run_ladder(engine, world, adapters, text, size, targets, AlpacaVenue(fake))
        finally:
            await adapters.aclose()
    assert not [r for r in fake.requests if r[0] == "POST" and r[2].get("order_class") == "bracket"]


@pytest.mark.parametrize("ladder", sorted(LADDERS))
async def test_an_ibkr_ladder_fills_target_by_target_under_a_shrinking_stop(engine, ladder):
    text, size, targets = LADDERS[ladder]
    options = {"timeout": 3, "ack_timeout": 2, "requests_per_minute": 100_000}
    gateway = FakeIbGateway()
    await gateway.start()
    try:
        with Session(engine, expire_on_commit=False) as s:
            world = seed_world(s, profile={"sizing_value": size})
        account = await connect_account(engine, world.followers[0].id, "ibkr", "IBKR paper",
                                        {"host": "127.0.0.1", "port": str(gateway.port), "client_id": "21",
                                         "account": gateway.account}, adapter_options=options)
        await _follow(engine, world, account["id"])
        adapters = Adapters(engine, provider=build_provider(options={"ibkr": options}))
        try:
            await _run_ladder(engine, world, adapters, text, size, targets, IbVenue(gateway))
        finally:
            await adapters.aclose()
    finally:
        await gateway.stop()
