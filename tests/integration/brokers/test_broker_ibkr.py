"""IbkrAdapter with the real ib_async client against a loopback IB Gateway (TWS API socket protocol).

End-to-end over the socket: connecting, orders and their status, fills,
refusals and the gateway dropping or losing its IBKR session, and what a
NEW connection (a restart, or another client id) learns about earlier
orders from the gateway's ``openOrder`` / ``completedOrder`` messages.
"""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from decimal import Decimal

import pytest
from ib_async import MarketOrder, Stock, Trade
from ib_async.order import OrderStatus, TradeLogEntry

from backend.brokers import registry
from backend.brokers.base import BracketSpec, OrderRequest
from backend.brokers.errors_map import translate_ib_rejection
from backend.brokers.ibkr import IbkrAdapter
from backend.db.types import utcnow
from backend.errors import (
    AuthenticationFailed,
    BrokerDisconnected,
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
from fakes.fake_ibkr import FakeIbGateway
from fakes.loopback import load_fixture

IB_ERRORS = load_fixture("ibkr", "errors.json")


def build(gateway: FakeIbGateway, client_id: int = 7, **kw) -> IbkrAdapter:
    options = {"timeout": 3, "ack_timeout": 2, "requests_per_minute": 100_000, **kw}
    return IbkrAdapter(credentials={"host": "127.0.0.1", "port": gateway.port, "client_id": client_id,
                                    "account": gateway.account}, **options)


@pytest.fixture
async def ib():
    gateway = FakeIbGateway()
    await gateway.start()
    adapter = build(gateway)
    yield gateway, adapter
    await adapter.close()
    await gateway.stop()


def req(cid: str = "ib-1", **kw) -> OrderRequest:
    base = dict(client_order_id=cid, symbol="AAPL", side="buy", quantity=Decimal("10"))
    base.update(kw)
    return OrderRequest(**base)


def placed(gateway: FakeIbGateway) -> list[list[str]]:
    return [f for f in gateway.received if f[0] == "3"]


async def test_connect_validates_the_account_and_reports_connected(ib):
    gateway, adapter = ib
    assert adapter.status()[0] == "unknown"  # never connected yet: nothing to report
    info = await adapter.validate()
    assert (info.account_id, info.cash, info.equity) == ("DU1234567", Decimal("100000"), Decimal("100000"))
    assert adapter.status()[0] == "connected"
    start_api = next(f for f in gateway.received if f[0] == "71")
    assert start_api[2] == "7"  # our client id


async def test_market_order_is_filled_through_order_status_messages(ib):
    gateway, adapter = ib
    snap = await adapter.place_order(req("mkt-1"))
    assert (snap.client_order_id, snap.status, snap.filled_quantity, snap.avg_fill_price) == (
        "mkt-1", "filled", Decimal("10"), Decimal("190.12"))
    [fill] = snap.fills
    assert fill.fee == Decimal("1") and fill.filled_at.tzinfo is not None
    wire = placed(gateway)[-1]
    assert (wire[3], wire[16], wire[17], wire[18], wire[26]) == ("AAPL", "BUY", "10.0", "MKT", "mkt-1")
    [pos] = await adapter.positions()
    assert (pos.symbol, pos.quantity, pos.avg_price) == ("AAPL", Decimal("10"), Decimal("190.12"))


async def test_limit_order_rests_and_is_cancelled(ib):
    gateway, adapter = ib
    snap = await adapter.place_order(req("lmt-1", order_type="limit", limit_price=Decimal("150")))
    assert snap.status == "submitted"
    assert [o.client_order_id for o in await adapter.open_orders()] == ["lmt-1"]
    cancelled = await adapter.cancel_order("lmt-1")
    assert cancelled.status == "cancelled" and cancelled.reject_reason is None
    assert await adapter.open_orders() == []


async def test_same_reference_returns_the_existing_order(ib):
    gateway, adapter = ib
    first = await adapter.place_order(req("idem-1"))
    again = await adapter.place_order(req("idem-1"))
    assert again.broker_order_id == first.broker_order_id and len(placed(gateway)) == 1


async def test_bracket_is_native_with_one_take_profit(ib):
    gateway, adapter = ib
    bracket = BracketSpec(stop_loss=Decimal("180"), take_profits=((Decimal("200"), Decimal("10")),))
    snap = await adapter.place_order(req("br-1", bracket=bracket))
    parent, tp, sl = placed(gateway)[-3:]
    assert (parent[27], tp[27], sl[27]) == ("0", "0", "1")  # transmit only with the last leg
    assert tp[28] == sl[28] == parent[1] == snap.broker_order_id
    assert (tp[18], tp[19], sl[18], sl[20]) == ("LMT", "200.0", "STP", "180.0")
    legs = {o.client_order_id: o.status for o in await adapter.open_orders()}
    assert legs == {"br-1-tp1": "submitted", "br-1-sl": "submitted"}  # the engine's names for the legs
    ladder = BracketSpec(take_profits=((Decimal("200"), Decimal("5")), (Decimal("210"), Decimal("5"))))
    with pytest.raises(ValidationError):
        await adapter.place_order(req("br-2", bracket=ladder))


async def test_oco_group_becomes_an_ib_oca_group(ib):
    gateway, adapter = ib
    await adapter.place_order(req("oca-1", side="sell", order_type="limit", limit_price=Decimal("250"), oco_group="g1"))
    assert placed(gateway)[-1][22] == "g1"


async def test_replace_moves_the_limit(ib):
    gateway, adapter = ib
    first = await adapter.place_order(req("rep-1", order_type="limit", limit_price=Decimal("150")))
    await adapter.replace_order("rep-1", limit_price=Decimal("155"))
    assert gateway.orders[int(first.broker_order_id)].limit_price == Decimal("155")


@pytest.mark.parametrize("kw, error", [
    (dict(quantity=Decimal("100000")), InsufficientFunds),
    (dict(symbol="ZZZZ"), InvalidSymbol),
    (dict(quantity=Decimal("1.5")), ValidationError),
])
async def test_refusals_are_translated(ib, kw, error):
    _, adapter = ib
    with pytest.raises(error):
        await adapter.place_order(req("bad-1", **kw))


@pytest.mark.parametrize("kind, error", [
    ("market_closed", MarketClosed), ("too_small", OrderTooSmall), ("size_rule", OrderTooSmall),
    ("not_allowed", AuthenticationFailed), ("api_trading_off", AuthenticationFailed),
])
async def test_gateway_refusals_over_the_socket_are_translated_and_not_retried(ib, kind, error):
    gateway, adapter = ib
    gateway.fail_next[3] = tuple(IB_ERRORS[kind])
    with pytest.raises(error) as refused:
        await adapter.place_order(req(f"{kind}-1"))
    assert not refused.value.retryable and str(IB_ERRORS[kind][0]) in refused.value.message
    with pytest.raises(error):  # asked again: the same refusal, nothing sent a second time
        await adapter.place_order(req(f"{kind}-1"))
    assert len(placed(gateway)) == 1


async def test_pacing_refuses_the_order_as_rate_limited_and_the_retry_sends_it(ib):
    gateway, adapter = ib
    gateway.fail_next[3] = tuple(IB_ERRORS["pacing"])
    with pytest.raises(RateLimited) as paced:
        await adapter.place_order(req("pace-1"))
    assert paced.value.retryable
    snap = await adapter.place_order(req("pace-1"))  # never lived at IB: sent again, once
    assert (snap.status, snap.filled_quantity) == ("filled", Decimal("10"))
    assert [f[26] for f in placed(gateway)] == ["pace-1", "pace-1"]
    assert len([o for o in gateway.orders.values() if o.order_ref == "pace-1"]) == 1


async def test_pacing_of_a_contract_lookup_is_rate_limited_not_an_unknown_symbol(ib):
    gateway, adapter = ib
    await adapter.validate()
    gateway.fail_next[9] = tuple(IB_ERRORS["pacing"])
    with pytest.raises(RateLimited):
        await adapter.instrument("AAPL")
    assert (await adapter.instrument("AAPL")).price_tick == Decimal("0.01")


async def test_an_order_the_gateway_never_acknowledges_is_a_timeout_and_the_retry_finds_it(ib):
    gateway, adapter = ib
    await adapter.validate()
    gateway.silent = {3}
    with pytest.raises(TemporaryBrokerError) as late:
        await adapter.place_order(req("noack-1"))
    assert late.value.retryable and "never sent twice" in late.value.message
    with pytest.raises(TemporaryBrokerError):
        await adapter.place_order(req("noack-1"))   # still no answer: still not sent again
    gateway.silent = set()
    await gateway.answer_held()                     # the gateway answers, late
    snap = await adapter.place_order(req("noack-1"))
    assert (snap.status, snap.filled_quantity) == ("filled", Decimal("10")) and len(placed(gateway)) == 1


async def test_a_request_the_gateway_never_answers_times_out_as_temporary(ib):
    gateway, _ = ib
    adapter = build(gateway, client_id=12, timeout=0.5)
    try:
        await adapter.validate()
        gateway.silent = {9}
        with pytest.raises(TemporaryBrokerError) as late:
            await adapter.instrument("MSFT")
        assert late.value.retryable and "did not answer the contract details request in time" in late.value.message
    finally:
        await adapter.close()


async def test_unknown_order_asks_the_gateway_then_says_not_found(ib):
    gateway, adapter = ib
    with pytest.raises(OrderNotFound):
        await adapter.order_status("nope")
    assert {"16", "99"} <= {f[0] for f in gateway.received}


async def test_instrument_from_contract_details(ib):
    _, adapter = ib
    info = await adapter.instrument("AAPL")
    assert (info.price_tick, info.min_quantity, info.fractional) == (Decimal("0.01"), Decimal("1"), False)


async def test_fills_since_after_a_restart_come_from_the_gateway_executions(ib):
    gateway, adapter = ib
    start = utcnow() - timedelta(seconds=2)
    await adapter.place_order(req("r-1"))
    gateway.next_fill = "partial"
    await adapter.place_order(req("r-2", quantity=Decimal("4")))
    await adapter.close()
    fresh = build(gateway, client_id=8)
    fills = await fresh.fills_since(start)
    assert [(cid, f.quantity, f.price, f.fee) for cid, f in fills] == [
        ("r-1", Decimal("10"), Decimal("190.12"), Decimal("1")), ("r-2", Decimal("2"), Decimal("190.12"), Decimal("1"))]
    await fresh.close()


async def test_gateway_losing_ibkr_is_logged_out_and_calls_raise_disconnected(ib):
    gateway, adapter = ib
    await adapter.validate()
    await gateway.push_error(1100, "Connectivity between IB and Trader Workstation has been lost.")
    state, message = adapter.status()
    assert state == "logged_out" and "1100" in message
    sent = len(gateway.received)
    with pytest.raises(BrokerDisconnected) as err:
        await adapter.place_order(req("lo-1"))
    assert err.value.retryable and len(gateway.received) == sent
    await gateway.push_error(1102, "Connectivity between IB and Trader Workstation has been restored - data maintained.")
    assert adapter.status()[0] == "connected"
    await gateway.push_error(2110, "Connectivity between Trader Workstation and server is broken.")
    assert adapter.status()[0] == "logged_out"


async def test_dropped_socket_is_detected_and_the_next_call_reconnects(ib):
    gateway, adapter = ib
    await adapter.validate()
    await gateway.drop_clients()
    assert adapter.status()[0] == "disconnected"
    await adapter.validate()
    assert adapter.status()[0] == "connected"
    await gateway.push_error(1300, "TWS socket port has been reset and this connection is being dropped.")
    assert adapter.status()[0] == "disconnected"


async def test_gateway_down_is_broker_disconnected(ib):
    gateway, adapter = ib
    await adapter.validate()
    await gateway.stop()
    await asyncio.sleep(0.05)
    assert adapter.status()[0] == "disconnected"
    with pytest.raises(BrokerDisconnected) as err:
        await adapter.account()
    assert err.value.retryable and "IB Gateway" in str(err.value)


async def test_registry_builds_it_from_base_url(ib):
    gateway, _ = ib
    built = registry.build("ibkr", credentials={"client_id": 9, "account": gateway.account}, live=False,
                           base_url=f"tcp://127.0.0.1:{gateway.port}", engine=None, broker_account_id=1)
    assert isinstance(built, IbkrAdapter) and (await built.account()).account_id == gateway.account
    await built.close()


# --- a NEW connection learns earlier orders from openOrder (5) / completedOrder (101) -------------
async def _earlier_session(gateway: FakeIbGateway) -> dict[str, str]:
    """Client 7 places a resting limit, a filled market order, a bracket whose legs rest and a limit it cancels,
    then goes away."""
    first = build(gateway)
    placed_ids = {
        "old-open": (await first.place_order(req("old-open", quantity=Decimal("5"), order_type="limit",
                                                 limit_price=Decimal("150")))).broker_order_id,
        "old-done": (await first.place_order(req("old-done", side="sell", quantity=Decimal("2")))).broker_order_id,
        "old-br": (await first.place_order(req("old-br", bracket=BracketSpec(
            stop_loss=Decimal("180.5"), take_profits=((Decimal("200"), Decimal("10")),))))).broker_order_id,
    }
    await first.place_order(req("old-gone", order_type="limit", limit_price=Decimal("140")))
    await first.cancel_order("old-gone")
    await first.close()
    return placed_ids


async def test_the_same_client_after_a_restart_reads_its_open_orders_from_open_order_messages(ib):
    gateway, adapter = ib
    placed_ids = await _earlier_session(gateway)
    await adapter.validate()                        # a NEW ib_async client, same client id: startup reqOpenOrders
    assert {(o.client_order_id, o.status, o.quantity) for o in await adapter.open_orders()} == {
        ("old-open", "submitted", Decimal("5")), ("old-br-tp1", "submitted", Decimal("10")),
        ("old-br-sl", "submitted", Decimal("10"))}
    # what the decoder made of the messages: type, prices, TIF and the bracket link came over the wire
    wire = {t.order.orderRef: t.order for t in adapter._ib.openTrades()}
    assert (wire["old-open"].orderType, wire["old-open"].lmtPrice, wire["old-open"].tif) == ("LMT", 150.0, "DAY")
    assert (wire["old-br-sl"].orderType, wire["old-br-sl"].auxPrice, wire["old-br-sl"].tif) == ("STP", 180.5, "GTC")
    assert wire["old-br-sl"].parentId == wire["old-br-tp1"].parentId == int(placed_ids["old-br"])
    done = await adapter.order_status("old-done")  # from the startup completedOrder: no orderId in it
    assert (done.status, done.side, done.filled_quantity, done.avg_fill_price, done.broker_order_id) == (
        "filled", "sell", Decimal("2"), Decimal("190.12"), placed_ids["old-done"])
    assert [f.fee for f in done.fills] == [Decimal("1")]
    await gateway.push_fill(int(placed_ids["old-open"]))        # the gateway tells the placing client
    assert (await adapter.order_status("old-open")).status == "filled"


async def test_another_client_finds_earlier_orders_through_all_open_orders_and_completed_orders(ib):
    gateway, _ = ib
    placed_ids = await _earlier_session(gateway)
    other = build(gateway, client_id=8)
    try:
        assert await other.open_orders() == []      # reqOpenOrders answers only client 8's own orders
        resting = await other.order_status("old-open")
        assert (resting.status, resting.broker_order_id, resting.quantity) == (
            "submitted", placed_ids["old-open"], Decimal("5"))
        assert (await other.order_status("old-br")).status == "filled"
        gone = await other.order_status("old-gone")       # a completedOrder with status Cancelled
        assert (gone.status, gone.filled_quantity, gone.reject_reason) == ("cancelled", Decimal("0"), None)
        await gateway.push_fill(int(placed_ids["old-open"]))   # heard by client 7 only, not by this session
        now = await other.order_status("old-open")       # so the gateway's books are asked again
        assert (now.status, now.filled_quantity, now.avg_fill_price) == ("filled", Decimal("5"), Decimal("150"))
        with pytest.raises(OrderNotFound):
            await other.order_status("never-placed")
    finally:
        await other.close()
    sent = [f for f in gateway.received if f[0] in ("16", "99")]
    assert {f[0] for f in sent} == {"16", "99"}


async def test_an_order_made_in_tws_by_hand_is_named_by_its_perm_id(ib):
    gateway, adapter = ib
    start = utcnow() - timedelta(seconds=2)
    manual = await gateway.trade_by_hand("MSFT", "BUY", Decimal("3"))
    [(ref, fill)] = await adapter.fills_since(start)
    assert (ref, fill.quantity, fill.price) == (str(manual.perm_id), Decimal("3"), Decimal("420.5"))
    snap = await adapter.order_status(ref)
    assert (snap.symbol, snap.side, snap.status, snap.avg_fill_price) == ("MSFT", "buy", "filled", Decimal("420.5"))


def test_a_cancel_caused_by_a_gateway_error_reads_as_rejected_with_the_reason():
    adapter = IbkrAdapter(credentials={"port": 1})
    trade = Trade(Stock("AAPL", "SMART", "USD"), MarketOrder("BUY", 1, orderId=5, orderRef="rj-1"),
                  OrderStatus(orderId=5, status="Cancelled"), [],
                  [TradeLogEntry(utcnow(), "PendingSubmit"),
                   TradeLogEntry(utcnow(), "Cancelled", "Error 201: Order rejected - reason:No trading permissions", 201)])
    snap = adapter._snapshot(trade)
    assert snap.status == "rejected" and "201" in snap.reject_reason
    user_cancel = Trade(Stock("AAPL", "SMART", "USD"), MarketOrder("BUY", 1, orderId=6, orderRef="uc-1"),
                        OrderStatus(orderId=6, status="Cancelled"), [],
                        [TradeLogEntry(utcnow(), "Cancelled", "Error 202: Order Canceled - reason:", 202)])
    assert adapter._snapshot(user_cancel).status == "cancelled"


@pytest.mark.parametrize("code, text, error", [
    (200, "No security definition has been found for the request", InvalidSymbol),
    (201, "Order rejected - reason:YOUR ORDER IS NOT ACCEPTED ... EQUITY WITH LOAN VALUE", InsufficientFunds),
    (201, "Order rejected - reason:The order cannot be placed outside of regular trading hours", MarketClosed),
    (100, "Max rate of messages per second has been exceeded", RateLimited),
    (201, "Order rejected - reason:No trading permissions", AuthenticationFailed),
    (203, "The security AAPL is not available or allowed for this account.", AuthenticationFailed),
    (10015, "Trading is not allowed in the API.", AuthenticationFailed),
    (388, "Order size 0.5 is smaller than the minimum requirement of 1.", OrderTooSmall),
    (355, "Order size does not conform to market rule.", OrderTooSmall),
    (434, "The order size cannot be zero.", OrderTooSmall),
    (201, "Order rejected - reason:Order size is below the minimum size allowed", OrderTooSmall),
    (201, "Order rejected - reason:The order type is not supported by the exchange", OrderRejected),
])
def test_gateway_refusals_map_to_the_error_tree(code, text, error):
    assert type(translate_ib_rejection(code, text)) is error


def test_option_contracts_need_expiry_strike_and_right():
    adapter = IbkrAdapter(credentials={"port": 1})
    option = adapter._contract("AAPL", "option", req(asset_class="option", option_right="call", strike=Decimal("200"),
                                                     expiry=date(2025, 6, 20)))
    assert (option.secType, option.lastTradeDateOrContractMonth, option.strike, option.right) == (
        "OPT", "20250620", 200.0, "C")
    with pytest.raises(ValidationError):
        adapter._contract("AAPL", "option", req(asset_class="option"))


def test_ibkr_capabilities_and_rate():
    caps = IbkrAdapter.capabilities
    assert caps.native_brackets and caps.native_oco and caps.replace_order and not caps.fractional
    assert caps.max_requests_per_minute == 1500  # half of IB's 50 messages per second
    assert IbkrAdapter.max_bracket_take_profits == 1
