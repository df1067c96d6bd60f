"""Paper broker: the stored positions (paper_positions) always equal the fills folded in order.

Every path that writes fills (a placement, a batch, matching on a quote move,
a cancel or a replace) must write the positions the fills changed in the same
transaction; the readers (placement's checks, ``positions``, ``account``)
read the table instead of the fill history.  The migration's backfill must
give the same rows the venue writes.
"""

from __future__ import annotations

import asyncio
import importlib.util
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_paper_positions import make_broker

import backend.db.models as models
from backend.brokers import paper_store as store
from backend.brokers.base import BracketSpec, BrokerPosition, OrderRequest
from backend.brokers.paper_book import BookFill
from backend.brokers.paper_rules import FLAT, after_fill
from backend.errors import BrokerError

D = Decimal
SYMBOLS = ("AAPL", "MSFT")
MIGRATION = next((Path(__file__).resolve().parents[3] / "alembic" / "versions").glob("*_paper_positions.py"))


def stored(engine, account_ids) -> dict[tuple[int, str], tuple[Decimal, Decimal]]:
    """Every row of paper_positions of these accounts, flat ones included."""
    t = store.POSITIONS
    with engine.connect() as conn:
        rows = conn.execute(sa.select(t.c.paper_account_id, t.c.symbol, t.c.quantity, t.c.avg_price)
                            .where(t.c.paper_account_id.in_(sorted(account_ids))))
        return {(r[0], r[1]): (r[2], r[3]) for r in rows}


def folded(engine, account_ids) -> tuple[dict, dict]:
    """From the fills themselves: ({key: average-cost position}, {key: plain signed sum of quantities})."""
    f, o = store.FILLS, store.ORDERS
    with engine.connect() as conn:
        rows = conn.execute(sa.select(o.c.paper_account_id, f.c.symbol, f.c.side, f.c.quantity, f.c.price)
                            .join(o, o.c.id == f.c.paper_order_id)
                            .where(o.c.paper_account_id.in_(sorted(account_ids))).order_by(f.c.id)).all()
    held, sums = {}, {}
    for account_id, symbol, side, quantity, price in rows:
        key = (account_id, symbol)
        held[key] = after_fill(held.get(key, FLAT), side, quantity, price)
        sums[key] = sums.get(key, D(0)) + (quantity if side == "buy" else -quantity)
    return held, sums


def assert_positions_match_fills(engine, brokers) -> None:
    ids = [b._account_id() for b in brokers]
    held, sums = folded(engine, ids)
    table = stored(engine, ids)
    assert table == held
    assert {key: qty for key, (qty, _) in table.items()} == sums


# ------------------------------------------------------------------ random sequences
quantities = st.integers(1, 30).map(lambda n: D(n) / 2)
cents = st.integers(9000, 11000).map(lambda n: D(n) / 100)
offsets = st.integers(-300, 300).map(lambda n: D(n) / 100)
who = st.integers(0, 1)
sides = st.sampled_from(["buy", "sell"])
symbols = st.sampled_from(SYMBOLS)
operations = st.one_of(
    st.tuples(st.just("market"), who, symbols, sides, quantities),
    st.tuples(st.just("reduce"), who, symbols, sides, quantities),
    st.tuples(st.just("limit"), who, symbols, sides, quantities, offsets),
    st.tuples(st.just("stop"), who, symbols, sides, quantities, offsets),
    st.tuples(st.just("bracket"), who, symbols, sides, quantities),
    st.tuples(st.just("batch"), who, symbols, sides, quantities),
    st.tuples(st.just("quote"), symbols, cents),
    st.tuples(st.just("match"),),
    st.tuples(st.just("cancel"), who, st.integers(0, 20)),
    st.tuples(st.just("replace"), who, st.integers(0, 20), offsets),
)


async def run(brokers, ops) -> None:
    quotes = {s: D("100") for s in SYMBOLS}
    for symbol, price in quotes.items():
        await brokers[0].set_quote(symbol, price)
    placed: list[list[str]] = [[], []]
    for n, op in enumerate(ops):
        kind, cid = op[0], f"op{n}"
        try:
            if kind == "quote":
                quotes[op[1]] = op[2]
                await brokers[0].set_quote(op[1], op[2])
            elif kind == "match":
                await brokers[0].match()
            elif kind in ("cancel", "replace"):
                mine = placed[op[1]]
                if mine:
                    target = mine[op[2] % len(mine)]
                    if kind == "cancel":
                        await brokers[op[1]].cancel_order(target)
                    else:
                        await brokers[op[1]].replace_order(target, limit_price=max(D("1"), D("100") + op[3]))
            else:
                broker, symbol, side, quantity = brokers[op[1]], op[2], op[3], op[4]
                price = quotes[symbol]
                above = side == "buy"
                request = {
                    "market": lambda: OrderRequest(cid, symbol, side, quantity),
                    "reduce": lambda: OrderRequest(cid, symbol, side, quantity, reduce_only=True),
                    "limit": lambda: OrderRequest(cid, symbol, side, quantity, "limit", limit_price=price + op[5]),
                    "stop": lambda: OrderRequest(cid, symbol, side, quantity, "stop",
                                                 stop_price=max(D("1"), price + abs(op[5]) * (1 if above else -1))),
                    "bracket": lambda: OrderRequest(cid, symbol, side, quantity, bracket=BracketSpec(
                        stop_loss=price * (D("0.98") if above else D("1.02")),
                        take_profits=((price * (D("1.01") if above else D("0.99")), quantity / 2),))),
                    "batch": lambda: None,
                }[kind]()
                if kind == "batch":
                    other = "sell" if side == "buy" else "buy"
                    await broker.place_orders([OrderRequest(f"{cid}a", symbol, side, quantity),
                                               OrderRequest(f"{cid}b", symbol, other, quantity * 2)])
                else:
                    placed[op[1]].append(cid)
                    await broker.place_order(request)
        except BrokerError:
            pass  # a refused order or replace: what matters is that fills and positions still agree


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(operations, min_size=1, max_size=14))
def test_random_trading_keeps_the_stored_positions_equal_to_the_fills(engine, ops):
    brokers = [make_broker(engine, slippage_bps=D("5"), fee_bps=D("1")),
               make_broker(engine, partial_fill_max=D("0.5"))]
    asyncio.run(run(brokers, ops))
    assert_positions_match_fills(engine, brokers)
    for broker in brokers:
        held = {s: qty for (_, s), (qty, _) in stored(engine, [broker._account_id()]).items() if qty != 0}
        assert {p.symbol: p.quantity for p in asyncio.run(broker.positions())} == held


# ------------------------------------------------------------------ flips, the backfill
async def test_a_short_covered_and_flipped_through_zero_is_stored_row_by_row(engine):
    broker = make_broker(engine)
    account = broker._account_id()
    await broker.set_quote("AAPL", D("100"))
    await broker.place_order(OrderRequest("b1", "AAPL", "buy", D("10")))
    await broker.set_quote("AAPL", D("110"))
    await broker.place_order(OrderRequest("s1", "AAPL", "sell", D("15")))    # long 10 -> short 5 at 110
    assert stored(engine, [account]) == {(account, "AAPL"): (D("-5"), D("110"))}
    await broker.place_order(OrderRequest("s2", "AAPL", "sell", D("5")))     # a bigger short: average 110
    await broker.set_quote("AAPL", D("90"))
    await broker.place_order(OrderRequest("b2", "AAPL", "buy", D("4")))      # covers part: average kept
    assert stored(engine, [account]) == {(account, "AAPL"): (D("-6"), D("110"))}
    await broker.place_order(OrderRequest("b3", "AAPL", "buy", D("9")))      # covers and flips long 3 at 90
    assert stored(engine, [account]) == {(account, "AAPL"): (D("3"), D("90"))}
    await broker.place_order(OrderRequest("s3", "AAPL", "sell", D("3"), reduce_only=True))
    assert stored(engine, [account]) == {(account, "AAPL"): (D("0"), D("0"))}  # flat: the row stays, zeroed
    assert await broker.positions() == []
    closing = await broker.place_order(OrderRequest("s4", "AAPL", "sell", D("1"), reduce_only=True))
    assert closing.status == "cancelled" and not closing.fills  # nothing to close: read from the zeroed row
    await broker.set_quote("AAPL", D("95"))
    await broker.place_order(OrderRequest("s5", "AAPL", "sell", D("2")))     # from flat straight to a short
    assert await broker.positions() == [BrokerPosition("AAPL", D("-2"), D("95"), D("95"))]
    assert_positions_match_fills(engine, [broker])


async def test_resting_orders_filled_by_a_quote_move_update_every_account(engine):
    brokers = [make_broker(engine) for _ in range(3)]
    await brokers[0].set_quote("AAPL", D("100"))
    for i, broker in enumerate(brokers):
        await broker.place_order(OrderRequest(f"l{i}", "AAPL", "buy", D(i + 1), "limit", limit_price=D("99")))
    assert stored(engine, [b._account_id() for b in brokers]) == {}
    await brokers[0].set_quote("AAPL", D("98"))   # one matching pass fills all three accounts
    assert stored(engine, [b._account_id() for b in brokers]) == {
        (b._account_id(), "AAPL"): (D(i + 1), D("98")) for i, b in enumerate(brokers)}
    assert_positions_match_fills(engine, brokers)


def _run_migration(engine) -> None:
    spec = importlib.util.spec_from_file_location("paper_positions_migration", MIGRATION)
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    with engine.begin() as conn, Operations.context(MigrationContext.configure(conn)):
        migration.upgrade()


async def test_the_migration_backfills_the_positions_the_venue_keeps(engine):
    brokers = [make_broker(engine, fee_bps=D("3")), make_broker(engine, partial_fill_max=D("0.4"))]
    await brokers[0].set_quote("AAPL", D("100"))
    await brokers[0].set_quote("MSFT", D("300"))
    await brokers[0].place_order(OrderRequest("a", "AAPL", "buy", D("7")))
    await brokers[0].place_order(OrderRequest("b", "MSFT", "sell", D("3")))
    await brokers[1].place_order(OrderRequest("c", "AAPL", "buy", D("10")))     # 4 now, the rest on matches
    await brokers[1].place_order(OrderRequest("d", "AAPL", "sell", D("2"), "limit", limit_price=D("103")))
    await brokers[0].set_quote("AAPL", D("103.37"))
    await brokers[0].place_order(OrderRequest("e", "AAPL", "sell", D("9")))      # flips short at 103.37
    await brokers[0].match()
    await brokers[0].place_order(OrderRequest("f", "MSFT", "buy", D("3")))       # flat again
    ids = [b._account_id() for b in brokers]
    kept = stored(engine, ids)
    with engine.connect() as conn:
        stamps = dict(((r[0], r[1]), r[2]) for r in conn.execute(sa.select(
            store.POSITIONS.c.paper_account_id, store.POSITIONS.c.symbol, store.POSITIONS.c.updated_at)))
    assert kept[(ids[0], "MSFT")] == (D("0"), D("0")) and kept[(ids[0], "AAPL")][0] == D("-2")

    store.POSITIONS.drop(engine)
    try:
        _run_migration(engine)
        assert stored(engine, ids) == kept
        with engine.connect() as conn:  # a position's time is that of its last fill, as the venue writes it
            assert dict(((r[0], r[1]), r[2]) for r in conn.execute(sa.select(
                store.POSITIONS.c.paper_account_id, store.POSITIONS.c.symbol,
                store.POSITIONS.c.updated_at))) == stamps
    finally:
        models.metadata.create_all(engine, tables=[store.POSITIONS])
    assert_positions_match_fills(engine, brokers)


def test_a_pass_refuses_a_fill_whose_position_it_did_not_read():
    read = store.Positions(frozenset({1}), frozenset({"AAPL"}), {(1, "AAPL"): (D("2"), D("10"))})
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    fill = BookFill(1, 1, "AAPL", "sell", D("5"), D("12"), D("0"), now)
    assert read.after([fill, BookFill(1, 1, "AAPL", "buy", D("1"), D("11"), D("0"), now)]) == {
        (1, "AAPL"): (D("-2"), D("12"))}
    with pytest.raises(RuntimeError, match="did not read"):
        read.after([BookFill(2, 1, "MSFT", "buy", D("1"), D("11"), D("0"), now)])


def test_the_demo_seed_writes_its_paper_position_with_its_fill(engine):
    from backend.services.demo_seed import seed_demo

    assert seed_demo(engine)
    with engine.connect() as conn:
        ids = conn.execute(sa.select(models.PaperAccount.__table__.c.id)).scalars().all()
    held, _ = folded(engine, ids)
    assert held and stored(engine, ids) == held
