"""Brackets the engine manages itself, for venues without native brackets.

The venue is the paper broker with its bracket/OCO/replace capabilities
switched off (a subclass of our own adapter, not a mock): the engine must
place the stop and the take-profits after the entry fills, shrink the stop
when a take-profit fills and cancel what is left when the position is flat.
"""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal as D

import pytest
from sqlmodel import Session, select

from backend.brokers.base import Capabilities
from backend.brokers.paper import PaperBroker
from backend.db.models import Order, PaperOrder, Position
from backend.execution.adapters import Adapters
from backend.execution.runner import dispatch_signal, recover
from backend.execution.seeding import seed_world, store_signal
from backend.signals import Signal

NOW = datetime(2026, 11, 2, 15, 0, tzinfo=timezone.utc)
BRACKET = Signal(action="open", symbol="AAPL", asset_class="stock", side="buy", stop_loss=D(95),
                 take_profits=[D(105), D(110)])


class PlainVenue(PaperBroker):
    """The paper venue as a broker without native brackets, OCO or order amendment."""

    capabilities = Capabilities(asset_classes=frozenset({"stock"}), order_types=frozenset({"market", "limit", "stop"}),
                                fractional=True, short_selling=True)


class AmendingVenue(PlainVenue):
    capabilities = Capabilities(asset_classes=frozenset({"stock"}), order_types=frozenset({"market", "limit", "stop"}),
                                fractional=True, short_selling=True, replace_order=True)


@pytest.fixture
def env(engine, settings_env):
    settings_env(PAPER_SLIPPAGE_BPS="0", PAPER_FEE_BPS="0", PAPER_FEE_PER_ORDER="0")
    with Session(engine, expire_on_commit=False) as s:
        return seed_world(s)


def adapters_for(engine, venue=PlainVenue, **kw) -> Adapters:
    return Adapters(engine, provider=lambda account, eng: venue(eng, account.id, **kw))


async def quote(engine, world, price: str) -> None:
    await PaperBroker(engine, world.accounts[0].id).set_quote("AAPL", D(price))


def legs(engine) -> dict[str, list[Order]]:
    out: dict[str, list[Order]] = {}
    with Session(engine) as s:
        for o in s.exec(select(Order).order_by(Order.id)):
            out.setdefault(o.leg, []).append(o)
    return out


def held(engine, world) -> D:
    with Session(engine) as s:
        pos = s.exec(select(Position).where(Position.broker_account_id == world.accounts[0].id)).first()
        return pos.quantity if pos else D(0)


async def test_the_engine_places_the_ladder_after_the_fill_and_shrinks_the_stop(engine, env):
    adapters = adapters_for(engine)
    await quote(engine, env, "100")
    await dispatch_signal(engine, adapters, store_signal(engine, env.source, BRACKET, message_id="m", now=NOW), now=NOW)
    got = legs(engine)
    assert got["entry"][0].status == "filled"
    assert [(o.leg, o.status, o.quantity) for o in got["stop"] + got["tp1"] + got["tp2"]] == [
        ("stop", "submitted", D(10)), ("tp1", "submitted", D(5)), ("tp2", "submitted", D(5))]
    with Session(engine) as s:  # sent as plain orders: no venue OCO group, so the venue cancels nothing itself
        assert {p.oco_group for p in s.exec(select(PaperOrder))} == {None}

    await quote(engine, env, "105")
    await recover(engine, adapters, inline_retries=False)
    stops = legs(engine)["stop"]
    assert [(o.status, o.quantity) for o in stops] == [("cancelled", D(10)), ("submitted", D(5))]
    assert stops[1].wait_for_order_id == stops[0].id and held(engine, env) == D(5)

    await quote(engine, env, "110")
    await recover(engine, adapters, inline_retries=False)
    got = legs(engine)
    assert got["tp2"][0].status == "filled" and got["stop"][1].status == "cancelled"
    assert held(engine, env) == 0


async def test_a_venue_that_amends_orders_keeps_one_stop(engine, env):
    adapters = adapters_for(engine, AmendingVenue)
    await quote(engine, env, "100")
    await dispatch_signal(engine, adapters, store_signal(engine, env.source, BRACKET, message_id="m", now=NOW), now=NOW)
    await quote(engine, env, "105")
    await recover(engine, adapters, inline_retries=False)
    stops = legs(engine)["stop"]
    assert [(o.status, o.quantity) for o in stops] == [("submitted", D(5))]
    with Session(engine) as s:
        assert s.exec(select(PaperOrder).where(PaperOrder.client_order_id == stops[0].client_order_id)).one().quantity == D(5)


async def test_the_stop_filling_cancels_the_targets(engine, env):
    adapters = adapters_for(engine)
    await quote(engine, env, "100")
    await dispatch_signal(engine, adapters, store_signal(engine, env.source, BRACKET, message_id="m", now=NOW), now=NOW)
    await quote(engine, env, "95")
    await recover(engine, adapters, inline_retries=False)
    got = legs(engine)
    assert got["stop"][0].status == "filled"
    assert (got["tp1"][0].status, got["tp2"][0].status) == ("cancelled", "cancelled")
    assert held(engine, env) == 0


async def test_a_partly_filled_entry_gets_a_bracket_sized_to_its_fill(engine, env):
    adapters = adapters_for(engine, partial_fill_max=D("0.5"))
    limit = Signal(action="open", symbol="AAPL", asset_class="stock", side="buy", order_type="limit",
                   entry_prices=[D(100)], stop_loss=D(95), take_profits=[D(105), D(110)])
    await quote(engine, env, "100")
    await dispatch_signal(engine, adapters, store_signal(engine, env.source, limit, message_id="m", now=NOW), now=NOW)
    assert legs(engine)["entry"][0].status == "partially_filled"
    assert legs(engine)["stop"][0].status == "new"  # waits for the entry to end
    cancel = Signal(action="cancel", symbol="AAPL", asset_class="stock")
    await dispatch_signal(engine, adapters, store_signal(engine, env.source, cancel, message_id="c", now=NOW), now=NOW)
    got = legs(engine)
    assert got["entry"][0].status == "cancelled" and got["entry"][0].filled_quantity == D(5)
    assert [(o.leg, o.status, o.quantity) for o in got["stop"] + got["tp1"] + got["tp2"]] == [
        ("stop", "submitted", D(5)), ("tp1", "submitted", D(2)), ("tp2", "submitted", D(3))]
