"""Paper broker: placing, matching, partial fills, idempotency and the errors it raises (SQLite and Postgres)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from sqlmodel import Session

from backend.brokers.base import OrderRequest
from backend.brokers.paper import PaperBroker
from backend.db.models import BrokerAccount, PaperOrder, User
from backend.db.types import utcnow
from backend.errors import InsufficientFunds, InvalidSymbol, OrderNotFound, OrderRejected

D = Decimal


def make_broker(engine, **terms) -> PaperBroker:
    with Session(engine) as s:
        user = User(username="trader")
        s.add(user)
        s.flush()
        account = BrokerAccount(user_id=user.id, broker="paper", label="Paper")
        s.add(account)
        s.commit()
        account_id = account.id
    terms = {"starting_cash": D("100000"), "slippage_bps": D("0"), "fee_per_order": D("0"), "fee_bps": D("0")} | terms
    return PaperBroker(engine, account_id, **terms)


def order(cid: str, side: str = "buy", quantity: Decimal = D("10"), symbol: str = "AAPL", **kw) -> OrderRequest:
    return OrderRequest(client_order_id=cid, symbol=symbol, side=side, quantity=quantity, **kw)


def paper_rows(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(PaperOrder.__table__)).scalar_one()


async def test_market_orders_fill_with_slippage_and_fees_and_move_cash_exactly(engine):
    broker = make_broker(engine, slippage_bps=D("10"), fee_per_order=D("1"), fee_bps=D("5"))
    await broker.set_quote("AAPL", D("100"))

    bought = await broker.place_order(order("b1"))
    assert (bought.status, bought.filled_quantity, bought.avg_fill_price) == ("filled", D("10"), D("100.1"))
    assert [(f.quantity, f.price, f.fee) for f in bought.fills] == [(D("10"), D("100.1"), D("1.5005"))]
    assert (await broker.account()).cash == D("100000") - D("1001") - D("1.5005")

    sold = await broker.place_order(order("s1", side="sell"))
    assert sold.avg_fill_price == D("99.9")
    assert sold.fills[0].fee == D("1.4995")
    account = await broker.account()
    assert account.cash == D("98997.4995") + D("999") - D("1.4995")
    assert account.equity == account.cash and await broker.positions() == []


async def test_limit_order_rests_until_a_quote_makes_it_marketable(engine):
    broker = make_broker(engine, slippage_bps=D("5"))
    await broker.set_quote("AAPL", D("100"))
    resting = await broker.place_order(order("l1", order_type="limit", limit_price=D("98"), quantity=D("5")))
    assert resting.status == "submitted" and resting.filled_quantity == 0
    assert [o.client_order_id for o in await broker.open_orders()] == ["l1"]

    await broker.set_quote("AAPL", D("99"))
    assert (await broker.order_status("l1")).status == "submitted"
    await broker.set_quote("AAPL", D("97.5"))
    filled = await broker.order_status("l1")
    # the slipped quote, better than the limit
    assert filled.status == "filled" and filled.avg_fill_price == D("97.54875")
    assert await broker.open_orders() == []

    capped = await broker.place_order(order("l2", order_type="limit", limit_price=D("97.50"), quantity=D("1")))
    assert capped.avg_fill_price == D("97.50")  # marketable, but never worse than the limit


async def test_stop_and_stop_limit_orders_trigger_when_the_quote_crosses(engine):
    broker = make_broker(engine, slippage_bps=D("10"))
    await broker.set_quote("AAPL", D("100"))
    await broker.place_order(order("entry", quantity=D("20")))
    await broker.place_order(order("stop", side="sell", order_type="stop", stop_price=D("95")))
    await broker.place_order(
        order("stoplimit", side="sell", order_type="stop_limit", stop_price=D("95"), limit_price=D("94.5"))
    )
    await broker.place_order(order("buystop", order_type="stop", stop_price=D("105"), symbol="MSFT", quantity=D("1")))

    await broker.set_quote("AAPL", D("96"))
    assert {o.client_order_id for o in await broker.open_orders()} == {"stop", "stoplimit", "buystop"}

    await broker.set_quote("AAPL", D("94"))  # gaps through both stops
    stop = await broker.order_status("stop")
    assert stop.status == "filled" and stop.avg_fill_price == D("93.906")  # the gap fills at the quote, less slippage
    assert (await broker.order_status("stoplimit")).status == "submitted"  # triggered, now a 94.5 limit

    await broker.set_quote("AAPL", D("94.6"))
    assert (await broker.order_status("stoplimit")).avg_fill_price == D("94.5054")

    await broker.set_quote("MSFT", D("106"))
    assert (await broker.order_status("buystop")).avg_fill_price == D("106.106")


async def test_partial_fills_across_passes_keep_an_exact_average_price(engine):
    broker = make_broker(engine, partial_fill_max=D("0.5"), fee_per_order=D("1"))
    await broker.set_quote("AAPL", D("100"))

    first = await broker.place_order(order("p1"))
    assert (first.status, first.filled_quantity, first.avg_fill_price) == ("partially_filled", D("5"), D("100"))
    assert [o.client_order_id for o in await broker.open_orders()] == ["p1"]

    await broker.set_quote("AAPL", D("110"))
    done = await broker.order_status("p1")
    assert (done.status, done.filled_quantity, done.avg_fill_price) == ("filled", D("10"), D("105"))
    assert [f.fee for f in done.fills] == [D("1"), D("0")]  # the per-order fee is charged once

    await broker.place_order(order("p2", order_type="limit", limit_price=D("120"), quantity=D("3")))
    await broker.match()
    after = await broker.order_status("p2")
    assert (after.status, after.filled_quantity) == ("filled", D("3"))  # 1.5 then 1.5 over two passes
    assert len(after.fills) == 2
    assert (await broker.account()).cash == D("100000") - D("1050") - D("1") - D("330") - D("1")


async def test_the_same_client_order_id_places_one_order(engine):
    broker = make_broker(engine)
    await broker.set_quote("AAPL", D("100"))
    first = await broker.place_order(order("dup"))
    again = await broker.place_order(order("dup", quantity=D("99")))
    assert again == first and paper_rows(engine) == 1

    batch = await broker.place_orders([order("dup"), order("new"), order("new")])
    assert batch[0] == first
    assert batch[1] == batch[2] and batch[1].status == "filled"
    assert (await broker.place_orders([order("new")]))[0] == batch[1]
    assert paper_rows(engine) == 2
    assert (await broker.account()).cash == D("100000") - 2 * D("1000")


async def test_a_placement_on_postgres_takes_two_round_trips_its_commit_included(pg_engine):
    from backend.execution.seeding import StatementCounter

    broker = make_broker(pg_engine)
    await broker.set_quote("AAPL", D("100"))
    await broker.place_order(order("warm"))  # opens the account's books
    counter = StatementCounter(pg_engine)
    placed = await broker.place_order(order("fresh"))
    assert placed.status == "filled" and len(placed.fills) == 1
    assert counter.round_trips == 2  # [BEGIN, lock, draw ids] then [writes, COMMIT]
    assert (await broker.place_order(order("fresh"))) == placed  # a re-send: the stored order, nothing doubled
    assert paper_rows(pg_engine) == 2 and (await broker.account()).cash == D("100000") - 2 * D("1000")


async def test_a_rejected_order_is_stored_and_a_retry_returns_it(engine):
    broker = make_broker(engine, starting_cash=D("1000"), slippage_bps=D("5"))
    await broker.set_quote("AAPL", D("100"))
    with pytest.raises(InsufficientFunds) as error:
        await broker.place_order(order("big", quantity=D("20")))
    assert str(error.value) == "Order needs $2,001.00 but only $1,000.00 buying power is available."

    retried = await broker.place_order(order("big", quantity=D("20")))
    assert retried.status == "rejected" and retried.reject_reason == str(error.value)
    assert (await broker.account()).cash == D("1000")


async def test_crypto_leverage_multiplies_buying_power(engine):
    broker = make_broker(engine, starting_cash=D("1000"))
    await broker.set_quote("BTC/USD", D("50000"))
    with pytest.raises(InsufficientFunds):
        await broker.place_order(order("c1", symbol="BTC/USD", quantity=D("0.03"), asset_class="crypto"))
    levered = await broker.place_order(
        order("c2", symbol="BTC/USD", quantity=D("0.03"), asset_class="crypto", leverage=D("2"))
    )
    assert levered.status == "filled"
    assert (await broker.account()).cash == D("-500")  # the borrowed part of a leveraged buy


async def test_market_order_without_any_price_is_rejected_and_reference_price_becomes_the_quote(engine):
    broker = make_broker(engine)
    with pytest.raises(InvalidSymbol, match="The paper market has no price for XYZ yet, so a market order cannot fill"):
        await broker.place_order(order("np", symbol="XYZ"))
    assert (await broker.order_status("np")).status == "rejected"

    filled = await broker.place_order(order("rp", symbol="XYZ", reference_price=D("12.5")))
    assert filled.avg_fill_price == D("12.5") and await broker.quote("XYZ") == D("12.5")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"quantity": D("0")}, "Quantity must be greater than zero"),
        ({"quantity": D("-3")}, "Quantity must be greater than zero"),
        ({"order_type": "trailing_stop"}, "does not support order type 'trailing_stop'"),
        ({"order_type": "limit"}, "needs a positive limit price"),
        ({"asset_class": "option", "symbol": "AAPL"}, "needs option_right, strike and expiry"),
        ({"asset_class": "option", "symbol": "AAPL240119C00190000", "quantity": D("1.5")}, "not a multiple"),
    ],
)
async def test_malformed_orders_are_rejected_with_a_clear_message(engine, kwargs, message):
    broker = make_broker(engine)
    await broker.set_quote("AAPL", D("100"))
    kwargs = dict(kwargs)  # the parameter dict is shared by the SQLite and Postgres runs
    request = OrderRequest(
        client_order_id="bad", symbol=kwargs.pop("symbol", "AAPL"), side="buy",
        quantity=kwargs.pop("quantity", D("1")), **kwargs,
    )
    with pytest.raises(OrderRejected, match=message):
        await broker.place_order(request)
    stored = await broker.order_status("bad")
    assert stored.status == "rejected" and message in stored.reject_reason


async def test_unknown_orders_raise_order_not_found(engine):
    broker = make_broker(engine)
    for call in (broker.order_status, broker.cancel_order, broker.replace_order):
        with pytest.raises(OrderNotFound, match="no order with client order id 'ghost'"):
            await call("ghost")


async def test_cancel_an_open_order_and_cancel_is_harmless_on_finished_ones(engine):
    broker = make_broker(engine)
    await broker.set_quote("AAPL", D("100"))
    await broker.place_order(order("rest", order_type="limit", limit_price=D("90")))
    cancelled = await broker.cancel_order("rest")
    assert cancelled.status == "cancelled" and await broker.open_orders() == []
    assert await broker.cancel_order("rest") == cancelled

    await broker.set_quote("AAPL", D("80"))
    assert (await broker.order_status("rest")).status == "cancelled"  # never fills after a cancel
    await broker.place_order(order("done"))
    assert (await broker.cancel_order("done")).status == "filled"


async def test_replace_order_amends_and_rematches(engine):
    broker = make_broker(engine)
    await broker.set_quote("AAPL", D("100"))
    await broker.place_order(order("amend", order_type="limit", limit_price=D("90"), quantity=D("4")))
    bigger = await broker.replace_order("amend", quantity=D("6"))
    assert (bigger.quantity, bigger.status) == (D("6"), "submitted")
    filled = await broker.replace_order("amend", limit_price=D("101"))
    assert (filled.status, filled.avg_fill_price, filled.filled_quantity) == ("filled", D("100"), D("6"))
    with pytest.raises(OrderRejected, match="can no longer be replaced"):
        await broker.replace_order("amend", limit_price=D("99"))
    await broker.place_order(order("lim2", order_type="limit", limit_price=D("90")))
    with pytest.raises(OrderRejected, match="has no stop price"):
        await broker.replace_order("lim2", stop_price=D("80"))


async def test_fills_since_returns_the_fills_after_a_time(engine):
    broker = make_broker(engine, partial_fill_max=D("0.5"))
    await broker.set_quote("AAPL", D("100"))
    start = utcnow() - timedelta(seconds=1)
    await broker.place_order(order("f1"))
    await broker.match()
    fills = await broker.fills_since(start)
    assert [(cid, f.quantity) for cid, f in fills] == [("f1", D("5")), ("f1", D("5"))]
    assert fills[0][1].fill_id != fills[1][1].fill_id
    assert await broker.fills_since(utcnow() + timedelta(seconds=1)) == []
