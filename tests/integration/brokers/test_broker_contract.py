"""The BrokerAdapter contract, run unchanged against every adapter.

What the engine relies on, whatever the venue: validate() proves the
account; a placed order comes back under the engine's client order id;
placing it again returns the same venue order; status, open orders, cancel
and fills agree with each other; an unknown id is OrderNotFound; a bracket
is held natively or can be built from separate exit orders; partial fills,
refusals (funds, symbol), throttling and timeouts come back as the
product's errors, retryable exactly when they are temporary, and a retry
never doubles an order; a new adapter instance (a restart) finds the open
orders and the fills of the previous one.

A test is skipped only where the venue's ``capabilities`` say it cannot do
the thing (the in-process paper venue has no network to time out or
throttle), never by the venue's name.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from backend.brokers.base import AccountInfo, BracketSpec, Capabilities
from backend.db.types import utcnow
from backend.errors import InsufficientFunds, InvalidSymbol, OrderNotFound, RateLimited, TemporaryBrokerError
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


def _held(positions, symbol) -> Decimal:
    return sum((p.quantity for p in positions if p.symbol == symbol), Decimal("0"))


def _tick(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"))


async def test_a_bracket_is_held_by_the_venue_or_built_from_exit_orders(venue):
    caps, cid = venue.adapter.capabilities, "contract-br"
    stop, tp1, tp2 = _tick(venue.price * Decimal("0.9")), _tick(venue.price * Decimal("1.1")), \
        _tick(venue.price * Decimal("1.2"))
    if caps.native_brackets:
        n = min(caps.max_bracket_take_profits or 2, 2)
        half = venue.quantity / 2
        targets = ((tp1, venue.quantity),) if n == 1 else ((tp1, half), (tp2, venue.quantity - half))
        entry = await venue.adapter.place_order(venue.order(cid, bracket=BracketSpec(stop, targets)))
    else:  # the engine's way: the entry, then a stop and a take-profit as separate reduce-only orders
        entry = await venue.adapter.place_order(venue.order(cid))
        stop_type = "stop" if "stop" in caps.order_types else "stop_limit"
        n = 1
        await venue.adapter.place_order(venue.order(
            f"{cid}-sl", side="sell", order_type=stop_type, stop_price=stop, reduce_only=True, time_in_force="gtc",
            limit_price=_tick(stop * Decimal("0.99")) if stop_type == "stop_limit" else None))
        target = venue.order(f"{cid}-tp1", side="sell", order_type="limit", limit_price=tp1, reduce_only=True,
                             time_in_force="gtc")
        if caps.exits_reserve_quantity:  # spot: the full-size stop locks every unit, so the engine holds targets
            with pytest.raises(InsufficientFunds):
                await venue.adapter.place_order(target)
            n = 0
        else:
            await venue.adapter.place_order(target)
    assert entry.status == "filled" and entry.client_order_id == cid
    exits = {o.client_order_id: o for o in await venue.adapter.open_orders() if o.client_order_id.startswith(cid + "-")}
    assert set(exits) == {f"{cid}-sl", *(f"{cid}-tp{i}" for i in range(1, n + 1))}
    assert all(o.status == "submitted" and o.side == "sell" and o.filled_quantity == 0 for o in exits.values())
    covered = [o.quantity for k, o in exits.items() if k != f"{cid}-sl"] if n else [exits[f"{cid}-sl"].quantity]
    assert sum(covered, Decimal("0")) == entry.filled_quantity
    cancelled = await venue.adapter.cancel_order(f"{cid}-sl")
    assert cancelled.status == "cancelled" and f"{cid}-sl" not in {
        o.client_order_id for o in await venue.adapter.open_orders()}


async def test_a_partial_fill_is_reported_and_a_cancel_keeps_it(venue):
    adapter = await venue.partly()
    snap = await adapter.place_order(venue.order("contract-part"))
    assert snap.status == "partially_filled" and 0 < snap.filled_quantity < venue.quantity
    assert (await adapter.order_status("contract-part")).filled_quantity == snap.filled_quantity
    assert _held(await adapter.positions(), venue.symbol) == snap.filled_quantity
    cancelled = await adapter.cancel_order("contract-part")
    assert cancelled.status == "cancelled" and cancelled.filled_quantity == snap.filled_quantity


async def test_an_order_the_account_cannot_pay_for_is_insufficient_funds(venue):
    with pytest.raises(InsufficientFunds) as refused:
        await venue.adapter.place_order(venue.order("contract-rich", quantity=venue.quantity * 10_000))
    assert not refused.value.retryable
    assert _held(await venue.adapter.positions(), venue.symbol) == 0


async def test_an_unknown_symbol_is_invalid_symbol(venue):
    with pytest.raises(InvalidSymbol) as refused:
        await venue.adapter.place_order(venue.order("contract-sym", symbol=venue.bad_symbol))
    assert not refused.value.retryable


async def test_throttling_is_rate_limited_and_the_retry_places_one_order(venue):
    if venue.adapter.capabilities.max_requests_per_minute is None:
        pytest.skip("the venue publishes no request limit (capabilities.max_requests_per_minute)")
    await venue.adapter.validate()
    venue.fault("rate_limited")
    with pytest.raises(RateLimited) as throttled:
        await venue.adapter.place_order(venue.order("contract-429"))
    assert throttled.value.retryable
    snap = await venue.adapter.place_order(venue.order("contract-429"))
    assert snap.status == "filled" and _held(await venue.adapter.positions(), venue.symbol) == snap.filled_quantity


async def test_a_timeout_is_temporary_and_the_retry_finds_the_one_order(venue):
    if venue.adapter.capabilities.in_process:
        pytest.skip("an in-process venue has no network to time out (capabilities.in_process)")
    await venue.adapter.validate()
    await venue.adapter.instrument(venue.symbol, venue.asset_class)
    venue.fault("timeout")
    with pytest.raises(TemporaryBrokerError) as late:
        await venue.adapter.place_order(venue.order("contract-slow"))
    assert late.value.retryable
    await venue.recover()
    snap = await venue.adapter.place_order(venue.order("contract-slow"))
    assert snap.status == "filled" and _held(await venue.adapter.positions(), venue.symbol) == snap.filled_quantity


async def test_cancelling_a_filled_order_reports_it_filled(venue):
    filled = await venue.adapter.place_order(venue.order("contract-done"))
    again = await venue.adapter.cancel_order("contract-done")
    assert (again.status, again.broker_order_id, again.filled_quantity) == (
        "filled", filled.broker_order_id, filled.filled_quantity)
    assert _held(await venue.adapter.positions(), venue.symbol) == filled.filled_quantity


async def test_a_new_adapter_instance_finds_the_open_orders_and_fills_of_the_last_one(venue):
    start = utcnow() - timedelta(seconds=2)
    filled = await venue.adapter.place_order(venue.order("contract-before"))
    resting = await venue.adapter.place_order(venue.resting_limit("contract-rest-r"))
    adapter = await venue.restart()
    assert "contract-rest-r" in {o.client_order_id for o in await adapter.open_orders()}
    status = await adapter.order_status("contract-before")
    assert (status.status, status.broker_order_id, status.filled_quantity) == (
        "filled", filled.broker_order_id, filled.filled_quantity)
    fills = await adapter.fills_since(start)
    assert sum((f.quantity for cid, f in fills if cid == "contract-before"), Decimal("0")) == filled.filled_quantity

    await venue.fill_resting("contract-rest-r")  # filled while this instance was not looking
    now = await adapter.order_status("contract-rest-r")
    assert (now.status, now.broker_order_id, now.filled_quantity) == ("filled", resting.broker_order_id, venue.quantity)
    assert "contract-rest-r" not in {o.client_order_id for o in await adapter.open_orders()}
    assert {cid for cid, _ in await adapter.fills_since(start)} >= {"contract-before", "contract-rest-r"}
    assert _held(await adapter.positions(), venue.symbol) == filled.filled_quantity + venue.quantity
