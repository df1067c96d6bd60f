"""Paper broker: positions, equity, shorts, options, the random walk, the registry and the batch path."""

from __future__ import annotations

import dataclasses
import random
from datetime import date
from decimal import Decimal

import pytest
from sqlmodel import Session

from backend.brokers import registry
from backend.brokers.base import BrokerPosition, OrderRequest
from backend.brokers.paper import PaperBroker
from backend.brokers.paper_rules import net_positions, random_walk
from backend.db.models import BrokerAccount, User
from backend.errors import InsufficientFunds, InvalidSymbol

D = Decimal


def new_account(engine) -> int:
    with Session(engine) as s:
        user = User(username="trader")
        s.add(user)
        s.flush()
        account = BrokerAccount(user_id=user.id, broker="paper", label="Paper")
        s.add(account)
        s.commit()
        return account.id


def make_broker(engine, **terms) -> PaperBroker:
    terms = {"starting_cash": D("100000"), "slippage_bps": D("0"), "fee_per_order": D("0"), "fee_bps": D("0")} | terms
    return PaperBroker(engine, new_account(engine), **terms)


async def test_positions_and_equity_after_trades_including_a_short(engine):
    broker = make_broker(engine)
    await broker.set_quote("AAPL", D("100"))
    await broker.set_quote("TSLA", D("200"))
    await broker.place_order(OrderRequest("a1", "AAPL", "buy", D("10")))
    await broker.set_quote("AAPL", D("110"))
    await broker.place_order(OrderRequest("a2", "AAPL", "buy", D("10")))
    await broker.place_order(OrderRequest("a3", "AAPL", "sell", D("5")))
    await broker.place_order(OrderRequest("t1", "TSLA", "sell", D("5")))   # opens a short
    await broker.set_quote("TSLA", D("180"))

    assert await broker.positions() == [
        BrokerPosition("AAPL", D("15"), D("105"), D("110")),
        BrokerPosition("TSLA", D("-5"), D("200"), D("180")),
    ]
    account = await broker.account()
    cash = D("100000") - D("1000") - D("1100") + D("550") + D("1000")
    assert (account.cash, account.buying_power) == (cash, cash)
    assert account.equity == cash + 15 * D("110") - 5 * D("180")
    assert account == await broker.validate()

    await broker.place_order(OrderRequest("t2", "TSLA", "buy", D("8")))    # covers and flips long
    assert (await broker.positions())[1] == BrokerPosition("TSLA", D("3"), D("180"), D("180"))


async def test_opening_a_short_needs_buying_power_but_closing_a_long_never_does(engine):
    broker = make_broker(engine, starting_cash=D("1000"))
    await broker.set_quote("AAPL", D("100"))
    with pytest.raises(InsufficientFunds, match=r"needs \$1,100.00 but only \$1,000.00"):
        await broker.place_order(OrderRequest("s1", "AAPL", "sell", D("11")))
    await broker.place_order(OrderRequest("b1", "AAPL", "buy", D("10")))
    closed = await broker.place_order(OrderRequest("s2", "AAPL", "sell", D("10")))  # cash is 0 now
    assert closed.status == "filled" and (await broker.account()).cash == D("1000")


async def test_options_trade_under_their_occ_symbol_with_a_100_multiplier(engine):
    broker = make_broker(engine)
    request = OrderRequest(
        "o1", "aapl", "buy", D("2"), asset_class="option", option_right="call", strike=D("190"),
        expiry=date(2024, 1, 19), reference_price=D("2.50"),
    )
    placed = await broker.place_order(request)
    assert (placed.symbol, placed.avg_fill_price) == ("AAPL240119C00190000", D("2.5"))
    assert (await broker.account()).cash == D("100000") - D("500")
    await broker.set_quote("AAPL240119C00190000", D("3"))
    assert (await broker.account()).equity == D("100100")


async def test_instruments_describe_steps_and_ticks(engine):
    broker = make_broker(engine)
    stock = await broker.instrument("aapl")
    assert (stock.symbol, stock.quantity_step, stock.min_quantity, stock.price_tick, stock.fractional) == (
        "AAPL", D("0.0001"), D("0.0001"), D("0.01"), True)
    assert (await broker.instrument("BTC/USD", "crypto")).quantity_step == D("0.00000001")
    option = await broker.instrument("AAPL240119C00190000", "option")
    assert (option.quantity_step, option.fractional) == (D("1"), False)
    with pytest.raises(InvalidSymbol, match="not 'future'"):
        await broker.instrument("ES", "future")


def test_random_walk_is_reproducible_and_stays_on_the_cent_tick():
    start = {"AAPL": D("100.00"), "BTC/USD": D("50000.00")}
    first = random_walk(start, 50, D("30"), random.Random(7))
    assert first == random_walk(start, 50, D("30"), random.Random(7))
    assert first != start and all(p == p.quantize(D("0.01")) and p >= D("0.01") for p in first.values())
    assert random_walk({"PENNY": D("0.01")}, 100, D("5000"), random.Random(1))["PENNY"] >= D("0.01")


def test_net_positions_use_average_cost():
    fills = [("X", "buy", D("10"), D("100")), ("X", "buy", D("10"), D("110")), ("X", "sell", D("15"), D("120")),
             ("Y", "sell", D("2"), D("50")), ("Y", "buy", D("2"), D("40"))]
    assert net_positions(fills) == {"X": (D("5"), D("105"))}


async def test_random_walk_moves_quotes_and_triggers_resting_orders(engine):
    broker = make_broker(engine, rng_seed=3)
    await broker.set_quote("AAPL", D("100"))
    await broker.place_order(OrderRequest("b", "AAPL", "buy", D("1"), order_type="limit", limit_price=D("99.99")))
    await broker.place_order(OrderRequest("s", "AAPL", "sell", D("1"), order_type="limit", limit_price=D("100.01")))
    moved = await broker.apply_random_walk(steps=1, sigma_bps=D("200"))
    assert set(moved) == {"AAPL"} and await broker.quote("AAPL") == moved["AAPL"]
    statuses = {(await broker.order_status(cid)).status for cid in ("b", "s")}
    assert statuses == {"filled", "submitted"}  # whichever side the price moved to


async def test_registry_builds_a_paper_broker_from_settings(engine, settings_env):
    settings_env(PAPER_STARTING_CASH="5000", PAPER_SLIPPAGE_BPS="0", PAPER_FEE_PER_ORDER="2")
    assert "paper" in registry.known_kinds()
    broker = registry.build("paper", engine=engine, broker_account_id=new_account(engine), credentials=None)
    assert isinstance(broker, PaperBroker) and broker.capabilities.native_brackets
    await broker.set_quote("AAPL", D("100"))
    await broker.place_order(OrderRequest("r1", "AAPL", "buy", D("1")))
    assert (await broker.account()).cash == D("5000") - D("100") - D("2")


def _comparable(result):
    """A result without what differs between two accounts (ids, timestamps)."""
    if isinstance(result, Exception):
        return (type(result), str(result))
    fills = tuple(dataclasses.replace(f, fill_id="", filled_at=None) for f in result.fills)
    return dataclasses.replace(result, broker_order_id="", fills=fills)


async def test_the_batch_path_gives_the_results_of_placing_one_by_one(engine):
    terms = {"starting_cash": D("5000"), "slippage_bps": D("7"), "fee_per_order": D("0.5"), "fee_bps": D("3"),
             "partial_fill_max": D("0.75")}
    single, batch = make_broker(engine, **terms), make_broker(engine, **terms)
    await single.set_quote("AAPL", D("100"))
    requests = [
        OrderRequest("m1", "AAPL", "buy", D("10")),
        OrderRequest("l1", "AAPL", "buy", D("5"), order_type="limit", limit_price=D("99")),
        OrderRequest("l2", "AAPL", "sell", D("4"), order_type="limit", limit_price=D("99.5")),
        OrderRequest("x1", "MSFT", "buy", D("3"), reference_price=D("400")),
        OrderRequest("big", "AAPL", "buy", D("100")),
        OrderRequest("bad", "AAPL", "buy", D("0")),
        OrderRequest("m1", "AAPL", "buy", D("10")),
        OrderRequest("m2", "MSFT", "sell", D("1")),
    ]
    one_by_one = []
    for request in requests:
        try:
            one_by_one.append(await single.place_order(request))
        except Exception as exc:  # noqa: BLE001 - the batch returns errors in place; compare them
            one_by_one.append(exc)
    together = await batch.place_orders(requests)
    assert [_comparable(r) for r in together] == [_comparable(r) for r in one_by_one]
    assert isinstance(together[4], InsufficientFunds) and together[6] == together[0]
    assert (await batch.account()).cash == (await single.account()).cash
    assert await batch.positions() == await single.positions()
