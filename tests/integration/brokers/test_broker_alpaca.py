"""AlpacaAdapter with the real alpaca-py TradingClient against a loopback Alpaca API."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date, timedelta
from decimal import Decimal

import pytest
from alpaca.trading.models import Asset, Clock, Order, Position, TradeAccount

from backend.brokers import registry
from backend.brokers.alpaca import AlpacaAdapter
from backend.brokers.base import BracketSpec, OrderRequest
from backend.db.types import utcnow
from backend.errors import (
    AuthenticationFailed,
    InsufficientFunds,
    InvalidSymbol,
    MarketClosed,
    OrderNotFound,
    OrderRejected,
    OrderTooSmall,
    RateLimited,
    TemporaryBrokerError,
    ValidationError,
)
from fakes.fake_alpaca import FakeAlpaca
from fakes.loopback import serve


def _adapter(fake: FakeAlpaca, url: str, **kw) -> AlpacaAdapter:
    return AlpacaAdapter(
        credentials={"api_key": fake.api_key, "api_secret": fake.api_secret}, base_url=url,
        timeout=kw.pop("timeout", 2.0), requests_per_minute=100_000, **kw,
    )


@pytest.fixture
async def venue():
    fake = FakeAlpaca(api_key=f"PK{uuid.uuid4().hex[:16].upper()}")
    async with serve(fake.app()) as url:
        adapter = _adapter(fake, url)
        yield fake, adapter, url
        await adapter.close()


def req(cid: str = "", **kw) -> OrderRequest:
    base = dict(client_order_id=cid or f"c-{uuid.uuid4().hex[:12]}", symbol="AAPL", side="buy", quantity=Decimal("2"))
    base.update(kw)
    return OrderRequest(**base)


async def test_validate_reads_the_account_with_the_key_headers(venue):
    fake, adapter, _ = venue
    info = await adapter.validate()
    assert info.account_id == "PA3ZV2L9S1G3"
    assert info.cash == Decimal("100000") and isinstance(info.equity, Decimal)
    assert info.can_trade is True
    assert fake.requests[-1][:2] == ("GET", "/v2/account")


async def test_market_order_is_acknowledged_and_filled(venue):
    fake, adapter, _ = venue
    snap = await adapter.place_order(req("mkt-1"))
    assert snap.client_order_id == "mkt-1" and snap.status == "filled"
    assert snap.filled_quantity == Decimal("2") and snap.avg_fill_price == Decimal("190.12")
    body = fake.requests[-1][2]
    assert body["client_order_id"] == "mkt-1" and body["type"] == "market" and body["time_in_force"] == "day"
    assert (await adapter.order_status("mkt-1")).broker_order_id == snap.broker_order_id


async def test_a_sell_beside_a_full_size_stop_is_refused_for_want_of_free_shares(venue):
    """The old ladder design at Alpaca: a stop-only OTO holds every share, so a separate target is refused."""
    fake, adapter, _ = venue
    await adapter.place_order(req("oto-1", quantity=Decimal("10"), bracket=BracketSpec(stop_loss=Decimal("180"))))
    with pytest.raises(OrderRejected, match=r"insufficient qty available for order \(requested: 5, available: 0\)"
                                            r".*held by other open orders"):
        await adapter.place_order(req("tp-alone", side="sell", quantity=Decimal("5"), order_type="limit",
                                      limit_price=Decimal("200")))
    assert fake.requests[-1][1] == "/v2/orders" and fake.book.by_client_id("tp-alone") is None
    [position] = [p for p in await adapter.positions()]
    assert position.quantity == Decimal("10")


async def test_a_brackets_legs_hold_their_shares_once_between_them(venue):
    """10 shares, a bracket of 4 (stop and target both 4): 6 are free, not 2; a sell of 7 is refused."""
    fake, adapter, _ = venue
    await adapter.place_order(req("plain", quantity=Decimal("6")))
    spec = BracketSpec(stop_loss=Decimal("180"), take_profits=((Decimal("200"), Decimal("4")),))
    await adapter.place_order(req("br-4", quantity=Decimal("4"), bracket=spec))
    assert fake.book.available_to_close("AAPL", "sell") == Decimal("6")
    with pytest.raises(OrderRejected, match=r"\(requested: 7, available: 6\)") as refused:
        await adapter.place_order(req("sell-7", side="sell", quantity=Decimal("7"), order_type="limit",
                                      limit_price=Decimal("250")))
    assert not isinstance(refused.value, InsufficientFunds)  # not "add funds": the shares are held, not missing
    snap = await adapter.place_order(req("sell-6", side="sell", quantity=Decimal("6"), order_type="limit",
                                         limit_price=Decimal("250")))
    assert snap.status == "submitted" and fake.book.available_to_close("AAPL", "sell") == 0


async def test_one_bracket_per_target_shares_each_slice_between_its_legs(venue):
    """Three brackets of 5/3/2: each stop shares its slice with its target; a target's fill cancels its stop only."""
    fake, adapter, _ = venue
    for n, (qty, tp) in enumerate([(Decimal(5), Decimal(200)), (Decimal(3), Decimal(205)), (Decimal(2), Decimal(210))]):
        spec = BracketSpec(stop_loss=Decimal("180"), take_profits=((tp, qty),))
        await adapter.place_order(req(f"slice-{n}", quantity=qty, bracket=spec))
    assert fake.book.available_to_close("AAPL", "sell") == 0
    legs = {o.client_order_id: o for o in await adapter.open_orders()}
    assert sorted(legs) == sorted(f"slice-{n}-{leg}" for n in range(3) for leg in ("sl", "tp1"))
    tp1 = fake.book.get(legs["slice-0-tp1"].broker_order_id)
    fake.book.fill(tp1.order_id)
    assert (await adapter.order_status("slice-0-sl")).status == "cancelled"
    assert {o.client_order_id for o in await adapter.open_orders()} == {f"slice-{n}-{leg}" for n in (1, 2)
                                                                       for leg in ("sl", "tp1")}
    moved = await adapter.replace_order("slice-1-sl", stop_price=Decimal("190.12"))
    assert moved.status == "submitted" and fake.book.available_to_close("AAPL", "sell") == 0


async def test_fractional_quantity_goes_through(venue):
    _, adapter, _ = venue
    snap = await adapter.place_order(req(quantity=Decimal("0.5")))
    assert snap.filled_quantity == Decimal("0.5")


async def test_limit_order_rests_until_the_venue_fills_it(venue):
    fake, adapter, _ = venue
    snap = await adapter.place_order(req("lmt-1", order_type="limit", limit_price=Decimal("150")))
    assert snap.status == "submitted" and snap.filled_quantity == 0
    assert [o.client_order_id for o in await adapter.open_orders()] == ["lmt-1"]
    fake.book.fill(snap.broker_order_id)
    done = await adapter.order_status("lmt-1")
    assert done.status == "filled" and done.avg_fill_price == Decimal("150")


async def test_bracket_sends_one_take_profit_and_a_stop(venue):
    fake, adapter, _ = venue
    bracket = BracketSpec(stop_loss=Decimal("180"), take_profits=((Decimal("200"), Decimal("2")),))
    snap = await adapter.place_order(req("br-1", order_type="limit", limit_price=Decimal("191"), bracket=bracket))
    body = fake.requests[-1][2]
    assert body["order_class"] == "bracket"
    assert Decimal(str(body["take_profit"]["limit_price"])) == Decimal("200")
    assert Decimal(str(body["stop_loss"]["stop_price"])) == Decimal("180")
    order = fake.book.get(snap.broker_order_id)
    assert [leg.order_type for leg in order.legs] == ["limit", "stop"]
    assert AlpacaAdapter.capabilities.native_brackets and AlpacaAdapter.max_bracket_take_profits == 1


async def test_a_take_profit_ladder_is_refused_before_reaching_alpaca(venue):
    fake, adapter, _ = venue
    ladder = BracketSpec(stop_loss=Decimal("180"), take_profits=((Decimal("200"), Decimal("1")), (Decimal("210"), Decimal("1"))))
    sent = len(fake.requests)
    with pytest.raises(ValidationError) as err:
        await adapter.place_order(req(bracket=ladder))
    assert err.value.field == "bracket" and len(fake.requests) == sent


async def test_stop_only_bracket_becomes_an_oto_order(venue):
    fake, adapter, _ = venue
    await adapter.place_order(req(bracket=BracketSpec(stop_loss=Decimal("180"))))
    assert fake.requests[-1][2]["order_class"] == "oto"


async def test_cancel_a_resting_limit(venue):
    fake, adapter, _ = venue
    await adapter.place_order(req("lmt-c", order_type="limit", limit_price=Decimal("100")))
    snap = await adapter.cancel_order("lmt-c")
    assert snap.status == "cancelled"
    assert await adapter.open_orders() == []
    again = await adapter.cancel_order("lmt-c")  # cancelling twice reports the final state
    assert again.status == "cancelled"


async def test_a_cancel_alpaca_confirms_later_is_still_working_and_holds_its_shares(venue):
    """DELETE answers 204, the order is ``pending_cancel`` (still working for the engine) until Alpaca confirms."""
    fake, adapter, _ = venue
    await adapter.place_order(req("own", quantity=Decimal("4")))  # a position of 4
    await adapter.place_order(req("tp", side="sell", quantity=Decimal("4"), order_type="limit",
                                  limit_price=Decimal("200")))
    fake.cancel_mode = "pending"
    snap = await adapter.cancel_order("tp")
    assert (snap.status, fake.render_order(fake.book.by_client_id("tp"))["status"]) == ("submitted", "pending_cancel")
    assert [o.client_order_id for o in await adapter.open_orders()] == ["tp"]
    with pytest.raises(OrderRejected, match="insufficient qty"):  # its shares are not free yet
        await adapter.place_order(req("close", side="sell", quantity=Decimal("4")))
    assert (await adapter.cancel_order("tp")).status == "submitted"  # asked again: still pending, no error
    fake.complete_cancels()
    assert (await adapter.order_status("tp")).status == "cancelled"
    assert (await adapter.place_order(req("close", side="sell", quantity=Decimal("4")))).status == "filled"


async def test_a_replace_alpaca_confirms_later_is_read_from_the_new_order(venue):
    """Until Alpaca confirms, the old order is ``pending_replace`` (no ``replaced_by`` yet): we read the new one."""
    fake, adapter, _ = venue
    fake.replace_mode = "pending"
    await adapter.place_order(req("rep-p", order_type="limit", limit_price=Decimal("150"), quantity=Decimal("3")))
    new = await adapter.replace_order("rep-p", quantity=Decimal("2"))
    old = fake.book.by_client_id("rep-p")
    assert fake.render_order(old)["status"] == "pending_replace" and old.replaced_by is None
    assert (await adapter.order_status("rep-p")).quantity == Decimal("2")
    assert [(o.client_order_id, o.quantity) for o in await adapter.open_orders()] == [("rep-p", Decimal("2"))]
    assert fake.complete_replaces() == [new.broker_order_id]
    assert (await adapter.order_status("rep-p")).broker_order_id == new.broker_order_id


async def test_when_the_old_order_fills_before_the_replace_the_fill_is_what_we_report(venue):
    fake, adapter, _ = venue
    fake.replace_mode = "pending"
    first = await adapter.place_order(req("rep-f", order_type="limit", limit_price=Decimal("150"),
                                          quantity=Decimal("3")))
    await adapter.replace_order("rep-f", quantity=Decimal("2"))
    fake.book.fill(first.broker_order_id)  # the original fills first: Alpaca rejects the replacement
    fake.complete_replaces()
    snap = await adapter.order_status("rep-f")
    assert (snap.status, snap.filled_quantity, snap.broker_order_id) == ("filled", Decimal("3"),
                                                                         first.broker_order_id)


async def test_same_client_order_id_returns_the_existing_order(venue):
    fake, adapter, _ = venue
    first = await adapter.place_order(req("idem-1"))
    second = await adapter.place_order(req("idem-1"))
    assert second.broker_order_id == first.broker_order_id
    assert len(fake.book.orders) == 1


async def test_replace_keeps_the_engine_client_id(venue):
    fake, adapter, _ = venue
    first = await adapter.place_order(req("rep-1", order_type="limit", limit_price=Decimal("150")))
    new = await adapter.replace_order("rep-1", limit_price=Decimal("155"))
    assert new.client_order_id == "rep-1" and new.broker_order_id != first.broker_order_id
    assert (await adapter.order_status("rep-1")).broker_order_id == new.broker_order_id
    assert [o.client_order_id for o in await adapter.open_orders()] == ["rep-1"]
    with pytest.raises(ValidationError):
        await adapter.replace_order("rep-1", quantity=Decimal("1.5"))


async def test_option_order_uses_the_occ_symbol(venue):
    fake, adapter, _ = venue
    snap = await adapter.place_order(req(asset_class="option", quantity=Decimal("1"), order_type="limit",
                                         limit_price=Decimal("3"), option_right="call", strike=Decimal("200"),
                                         expiry=date(2025, 6, 20)))
    assert fake.requests[-1][2]["symbol"] == "AAPL250620C00200000" and snap.status == "submitted"


@pytest.mark.parametrize(
    "kw, error",
    [
        (dict(quantity=Decimal("100000")), InsufficientFunds),
        (dict(symbol="ZZZZ"), InvalidSymbol),
        (dict(quantity=Decimal("0.00001")), OrderTooSmall),
    ],
)
async def test_refusals_are_translated(venue, kw, error):
    _, adapter, _ = venue
    with pytest.raises(error):
        await adapter.place_order(req(**kw))


async def test_option_market_order_when_closed_is_market_closed_with_next_open(venue):
    fake, adapter, _ = venue
    fake.market_open = False
    with pytest.raises(MarketClosed) as err:
        await adapter.place_order(req(symbol="AAPL250620C00200000", asset_class="option", quantity=Decimal("1")))
    assert "2025-06-09T09:30" in str(err.value)
    assert await adapter.market_is_open() == (False, "2025-06-09T09:30:00-04:00")


@pytest.mark.parametrize("status_kind", ["wrong_secret", "forbidden"])
async def test_bad_credentials_are_authentication_failed_without_the_secret(venue, status_kind):
    fake, adapter, url = venue
    if status_kind == "wrong_secret":
        bad = AlpacaAdapter(credentials={"api_key": fake.api_key, "api_secret": "WRONG-secret-123"}, base_url=url)
    else:
        bad = adapter
        fake.faults.append("forbidden")
    with pytest.raises(AuthenticationFailed) as err:
        await bad.validate()
    assert "WRONG-secret-123" not in str(err.value) and fake.api_secret not in str(err.value)


async def test_http_429_is_rate_limited_without_sdk_sleeping(venue):
    fake, adapter, _ = venue
    fake.faults.append("rate_limited")
    before = len(fake.requests)
    with pytest.raises(RateLimited) as err:
        await adapter.place_order(req())
    assert err.value.retryable and len(fake.requests) == before + 1


async def test_timeout_is_temporary_and_the_retry_is_idempotent(venue):
    fake, adapter, url = venue
    quick = _adapter(fake, url, timeout=0.3)
    fake.delay_seconds = 1.0
    fake.faults.append("timeout")
    with pytest.raises(TemporaryBrokerError) as err:
        await quick.place_order(req("slow-1"))
    assert err.value.retryable
    await asyncio.sleep(0.8)  # the venue did accept it after all
    retried = await quick.place_order(req("slow-1"))
    assert retried.client_order_id == "slow-1" and len(fake.book.orders) == 1
    await quick.close()


async def test_server_error_is_temporary(venue):
    fake, adapter, _ = venue
    fake.faults.append("server_error")
    with pytest.raises(TemporaryBrokerError):
        await adapter.account()


async def test_a_slow_call_does_not_block_the_event_loop(venue):
    fake, adapter, _ = venue
    fake.delay_seconds = 0.4
    fake.faults.append("timeout")
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            await asyncio.sleep(0.02)
            ticks += 1

    task = asyncio.create_task(ticker())
    await adapter.account()
    task.cancel()
    assert ticks >= 10


async def test_unknown_order_is_order_not_found(venue):
    _, adapter, _ = venue
    with pytest.raises(OrderNotFound):
        await adapter.order_status("never-placed")


async def test_instrument_and_positions(venue):
    fake, adapter, _ = venue
    info = await adapter.instrument("AAPL")
    assert info.fractional and info.min_quantity == Decimal("0.0001") and info.price_tick == Decimal("0.01")
    with pytest.raises(InvalidSymbol):
        await adapter.instrument("ZZZZ")
    await adapter.place_order(req(quantity=Decimal("3")))
    [pos] = await adapter.positions()
    assert pos.symbol == "AAPL" and pos.quantity == Decimal("3") and pos.avg_price == Decimal("190.12")


async def test_reconciliation_after_restart_matches_the_venue(venue):
    fake, adapter, url = venue
    start = utcnow() - timedelta(seconds=1)
    await adapter.place_order(req("r-fill"))
    fake.book.next_fill = "partial"
    await adapter.place_order(req("r-part", quantity=Decimal("4")))
    await adapter.place_order(req("r-rest", order_type="limit", limit_price=Decimal("100")))
    await adapter.close()

    fresh = _adapter(fake, url)
    open_now = {o.client_order_id: o for o in await fresh.open_orders()}
    assert set(open_now) == {fake.book.get(o.order_id).client_id for o in fake.book.open_orders()} == {"r-part", "r-rest"}
    assert open_now["r-part"].filled_quantity == Decimal("2")
    fills = await fresh.fills_since(start)
    expected = [(fake.book.get(f.order_id).client_id, f.fill_id, f.quantity, f.price) for f in fake.book.fills_since(start)]
    assert [(cid, f.fill_id, f.quantity, f.price) for cid, f in fills] == expected
    assert all(f.filled_at.tzinfo is not None for _, f in fills)
    assert await fresh.fills_since(utcnow() + timedelta(minutes=1)) == []
    await fresh.close()


async def test_fake_payloads_validate_against_alpaca_py_models(venue):
    """Fidelity of the fake itself: the SDK's own pydantic models accept every payload it serves."""
    fake, adapter, _ = venue
    await adapter.place_order(req("fid-1", bracket=BracketSpec(stop_loss=Decimal("180"), take_profits=((Decimal("200"), Decimal("2")),))))
    client = adapter._client
    raw_order = await asyncio.to_thread(client.get_order_by_client_id, "fid-1")
    Order(**raw_order)
    TradeAccount(**await asyncio.to_thread(client.get_account))
    Asset(**await asyncio.to_thread(client.get_asset, "AAPL"))
    Clock(**await asyncio.to_thread(client.get_clock))
    for p in await asyncio.to_thread(client.get_all_positions):
        Position(**p)


async def test_registry_builds_it_with_the_engine_kwargs(venue):
    fake, _, url = venue
    built = registry.build("alpaca", credentials={"api_key": fake.api_key, "api_secret": fake.api_secret},
                           live=False, base_url=url, engine=None, broker_account_id=7)
    assert isinstance(built, AlpacaAdapter) and "alpaca" in registry.known_kinds()
    assert (await built.account()).currency == "USD"
    await built.close()
