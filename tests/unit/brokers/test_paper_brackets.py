"""Paper broker: bracket ladders (stop + 50/30/20 take-profits) and OCO groups, on SQLite and Postgres."""

from __future__ import annotations

from decimal import Decimal

from sqlmodel import Session

from backend.brokers.base import BracketSpec, OrderRequest
from backend.brokers.paper import PaperBroker
from backend.db.models import BrokerAccount, User

D = Decimal
LADDER = BracketSpec(stop_loss=D("95"), take_profits=((D("110"), D("50")), (D("120"), D("30")), (D("130"), D("20"))))


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


def entry(cid: str = "e1", **kw) -> OrderRequest:
    kw = {"quantity": D("100"), "bracket": LADDER} | kw
    return OrderRequest(client_order_id=cid, symbol="AAPL", side="buy", **kw)


async def states(broker, *cids):
    return {cid: ((s := await broker.order_status(cid)).status, s.quantity, s.filled_quantity) for cid in cids}


async def test_take_profit_fills_reduce_the_stop_and_the_stop_cancels_the_rest(engine):
    broker = make_broker(engine)
    await broker.set_quote("AAPL", D("100"))
    placed = await broker.place_order(entry())
    assert placed.status == "filled"
    assert {o.client_order_id for o in await broker.open_orders()} == {"e1-sl", "e1-tp1", "e1-tp2", "e1-tp3"}

    await broker.set_quote("AAPL", D("110"))
    assert await states(broker, "e1-tp1", "e1-sl") == {
        "e1-tp1": ("filled", D("50"), D("50")), "e1-sl": ("submitted", D("50"), D("0")),
    }
    await broker.set_quote("AAPL", D("121"))
    assert (await broker.order_status("e1-tp2")).avg_fill_price == D("121")
    assert (await broker.order_status("e1-sl")).quantity == D("20")

    await broker.set_quote("AAPL", D("94"))
    assert await states(broker, "e1-sl", "e1-tp3") == {
        "e1-sl": ("filled", D("20"), D("20")), "e1-tp3": ("cancelled", D("20"), D("0")),
    }
    assert (await broker.order_status("e1-tp3")).reject_reason == "The stop-loss filled first."
    assert await broker.positions() == [] and await broker.open_orders() == []
    cash = D("100000") - D("10000") + 50 * D("110") + 30 * D("121") + 20 * D("94")
    assert (await broker.account()).cash == cash


async def test_when_every_take_profit_fills_the_stop_is_cancelled(engine):
    broker = make_broker(engine)
    await broker.set_quote("AAPL", D("100"))
    await broker.place_order(entry())
    await broker.set_quote("AAPL", D("131"))  # one pass: all three take-profits are marketable
    status = await states(broker, "e1-tp1", "e1-tp2", "e1-tp3", "e1-sl")
    assert [status[f"e1-tp{n}"][0] for n in (1, 2, 3)] == ["filled"] * 3
    assert status["e1-sl"] == ("cancelled", D("0"), D("0"))
    assert (await broker.order_status("e1-sl")).reject_reason == "Every take-profit filled: nothing left to protect."
    assert await broker.positions() == []


async def test_a_stop_fill_cancels_every_take_profit_at_once(engine):
    broker = make_broker(engine)
    await broker.set_quote("AAPL", D("100"))
    await broker.place_order(entry())
    await broker.set_quote("AAPL", D("90"))
    status = await states(broker, "e1-sl", "e1-tp1", "e1-tp2", "e1-tp3")
    assert status["e1-sl"] == ("filled", D("100"), D("100"))
    assert {status[f"e1-tp{n}"][0] for n in (1, 2, 3)} == {"cancelled"}


async def test_legs_wait_for_a_resting_entry_to_fill(engine):
    broker = make_broker(engine)
    await broker.set_quote("AAPL", D("100"))
    resting = await broker.place_order(entry(order_type="limit", limit_price=D("99")))
    assert resting.status == "submitted"
    assert (await broker.order_status("e1-sl")).status == "submitted"  # held at the venue, reads as accepted

    await broker.set_quote("AAPL", D("94"))  # would hit the stop, but the entry fills first
    assert (await broker.order_status("e1")).avg_fill_price == D("94")  # better than its 99 limit
    assert (await broker.order_status("e1-sl")).status == "filled"  # activated in the same pass, then hit
    assert await broker.positions() == []


async def test_held_legs_ignore_quotes_until_the_entry_fills_and_are_cancelled_with_it(engine):
    broker = make_broker(engine)
    await broker.set_quote("AAPL", D("100"))
    await broker.place_order(entry(order_type="limit", limit_price=D("90")))
    await broker.set_quote("AAPL", D("111"))
    assert (await broker.order_status("e1-tp1")).filled_quantity == 0
    await broker.cancel_order("e1")
    status = await states(broker, "e1", "e1-sl", "e1-tp1", "e1-tp2", "e1-tp3")
    assert {s[0] for s in status.values()} == {"cancelled"}
    assert (await broker.order_status("e1-tp2")).reject_reason == "The entry order was cancelled before it filled."


async def test_a_partly_filled_entry_that_is_cancelled_protects_what_did_fill(engine):
    broker = make_broker(engine, partial_fill_max=D("0.4"))
    await broker.set_quote("AAPL", D("100"))
    first = await broker.place_order(entry())
    assert (first.status, first.filled_quantity) == ("partially_filled", D("40"))
    await broker.cancel_order("e1")
    status = await states(broker, "e1-sl", "e1-tp1", "e1-tp2", "e1-tp3")
    assert status["e1-sl"] == ("submitted", D("40"), D("0"))
    assert status["e1-tp1"] == ("submitted", D("40"), D("0"))
    assert status["e1-tp2"][0] == status["e1-tp3"][0] == "cancelled"
    reason = (await broker.order_status("e1-tp3")).reject_reason
    assert reason == "The entry filled only in part, leaving nothing for this exit."


async def test_moving_a_bracket_stop_to_break_even(engine):
    broker = make_broker(engine)
    await broker.set_quote("AAPL", D("100"))
    await broker.place_order(entry())
    await broker.set_quote("AAPL", D("110"))
    moved = await broker.replace_order("e1-sl", stop_price=D("100"))
    assert (moved.status, moved.quantity) == ("submitted", D("50"))
    await broker.set_quote("AAPL", D("99.5"))
    assert (await broker.order_status("e1-sl")).avg_fill_price == D("99.5")
    assert (await broker.order_status("e1-tp2")).status == "cancelled"


async def test_short_entry_bracket_mirrors_the_sides(engine):
    broker = make_broker(engine)
    await broker.set_quote("AAPL", D("100"))
    spec = BracketSpec(stop_loss=D("105"), take_profits=((D("90"), D("10")),))
    await broker.place_order(OrderRequest("s1", "AAPL", "sell", D("10"), bracket=spec))
    await broker.set_quote("AAPL", D("89"))
    tp = await broker.order_status("s1-tp1")
    assert (tp.side, tp.status, tp.avg_fill_price) == ("buy", "filled", D("89"))  # better than the limit
    assert (await broker.order_status("s1-sl")).status == "cancelled"


async def test_oco_fill_cancels_the_rest_of_the_group(engine):
    broker = make_broker(engine)
    await broker.set_quote("AAPL", D("100"))
    await broker.place_order(OrderRequest("long", "AAPL", "buy", D("10")))
    results = await broker.place_orders([
        OrderRequest("take", "AAPL", "sell", D("10"), order_type="limit", limit_price=D("110"), oco_group="exit"),
        OrderRequest("stop", "AAPL", "sell", D("10"), order_type="stop", stop_price=D("90"), oco_group="exit"),
    ])
    assert [r.status for r in results] == ["submitted", "submitted"]
    await broker.set_quote("AAPL", D("111"))
    assert (await broker.order_status("take")).avg_fill_price == D("111")
    stop = await broker.order_status("stop")
    assert (stop.status, stop.reject_reason) == (
        "cancelled", "The other order of its one-cancels-other pair filled first.")


async def test_an_oco_member_placed_later_cancels_the_resting_one(engine):
    broker = make_broker(engine)
    await broker.set_quote("AAPL", D("100"))
    resting = OrderRequest("a", "AAPL", "buy", D("1"), order_type="limit", limit_price=D("90"), oco_group="g")
    await broker.place_order(resting)
    filled = await broker.place_order(OrderRequest("b", "AAPL", "buy", D("1"), oco_group="g"))
    assert filled.status == "filled"
    assert (await broker.order_status("a")).status == "cancelled"
