"""The BrokerAdapter contract, run unchanged against every adapter.

What the engine relies on, whatever the venue: validate() proves the
account; a placed order comes back under the engine's client order id;
placing it again returns the same venue order; status, open orders, cancel
and fills agree with each other; an unknown id is OrderNotFound.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from backend.brokers.base import AccountInfo, Capabilities
from backend.db.types import utcnow
from backend.errors import OrderNotFound
from fakes.broker_harness import KINDS, open_venue


@pytest.fixture(params=KINDS)
async def venue(request, tmp_path):
    async with open_venue(request.param, request, tmp_path) as v:
        yield v


async def test_validate_returns_the_account(venue):
    info = await venue.adapter.validate()
    assert isinstance(info, AccountInfo) and info.account_id
    assert isinstance(info.cash, Decimal) and info.cash > 0 and info.equity >= info.cash
    assert isinstance(venue.adapter.capabilities, Capabilities)


async def test_market_order_comes_back_under_the_client_order_id_and_fills(venue):
    snap = await venue.adapter.place_order(venue.order("contract-mkt"))
    assert snap.client_order_id == "contract-mkt" and snap.broker_order_id
    assert snap.side == "buy" and snap.status == "filled" and snap.filled_quantity > 0
    assert isinstance(snap.avg_fill_price, Decimal)


async def test_placing_the_same_client_order_id_again_returns_the_same_order(venue):
    first = await venue.adapter.place_order(venue.order("contract-idem"))
    again = await venue.adapter.place_order(venue.order("contract-idem"))
    assert again.broker_order_id == first.broker_order_id
    assert [p.quantity for p in await venue.adapter.positions() if p.symbol == venue.symbol] == [first.filled_quantity]


async def test_order_status_agrees_with_the_placement(venue):
    placed = await venue.adapter.place_order(venue.order("contract-status"))
    status = await venue.adapter.order_status("contract-status")
    assert (status.client_order_id, status.broker_order_id, status.status, status.filled_quantity) == (
        "contract-status", placed.broker_order_id, placed.status, placed.filled_quantity)


async def test_a_resting_limit_is_open_then_cancelled(venue):
    resting = await venue.adapter.place_order(venue.resting_limit("contract-rest"))
    assert resting.status == "submitted" and resting.filled_quantity == 0
    assert "contract-rest" in {o.client_order_id for o in await venue.adapter.open_orders()}
    cancelled = await venue.adapter.cancel_order("contract-rest")
    assert cancelled.status == "cancelled" and cancelled.broker_order_id == resting.broker_order_id
    assert "contract-rest" not in {o.client_order_id for o in await venue.adapter.open_orders()}
    assert (await venue.adapter.order_status("contract-rest")).status == "cancelled"


async def test_unknown_order_is_order_not_found(venue):
    with pytest.raises(OrderNotFound):
        await venue.adapter.order_status("contract-never-placed")
    with pytest.raises(OrderNotFound):
        await venue.adapter.cancel_order("contract-never-placed")


async def test_positions_and_fills_after_a_fill(venue):
    start = utcnow() - timedelta(seconds=2)
    snap = await venue.adapter.place_order(venue.order("contract-fill"))
    [position] = [p for p in await venue.adapter.positions() if p.symbol == venue.symbol]
    assert position.quantity == snap.filled_quantity
    fills = [(cid, f) for cid, f in await venue.adapter.fills_since(start) if cid == "contract-fill"]
    assert sum((f.quantity for _, f in fills), Decimal("0")) == snap.filled_quantity
    assert all(f.filled_at.tzinfo is not None and isinstance(f.price, Decimal) for _, f in fills)


async def test_the_venue_quotes_its_symbol_and_the_account_may_trade(venue):
    """The engine sizes market signals from ``quote``: without a price a follower's market orders are refused."""
    price = await venue.adapter.quote(venue.symbol)
    assert isinstance(price, Decimal) and price == venue.price
    assert (await venue.adapter.account()).can_trade is True
