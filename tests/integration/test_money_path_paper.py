"""The money path end to end on the paper venue, on SQLite and Postgres.

Signal in -> decision -> orders -> paper venue -> fills -> positions and P&L.
Signals are hand-built (``backend.signals.Signal``) so these tests exercise
the engine, not the parser; one test goes through the Discord service with
raw text.  Paper slippage and fees are off so every figure is exact.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal as D

import pytest
from sqlmodel import Session, select

from backend.brokers.paper import PaperBroker
from backend.db.models import (
    AuditEvent, Fill, Notification, Order, PaperOrder, Position, RealizedPnl, RiskDecisionRecord, RiskProfileRecord,
    Signal as SignalRow, SignalSource,
)
from backend.errors import NotFound
from backend.execution.adapters import Adapters
from backend.execution.runner import dispatch_signal, recover
from backend.execution.seeding import seed_world, store_signal
from backend.services import trading
from backend.risk import trading_day
from backend.signals import Signal

NOW = datetime(2026, 11, 2, 15, 0, tzinfo=timezone.utc)  # a Monday, 10:00 in New York


@pytest.fixture
def paper_env(settings_env):
    settings_env(PAPER_SLIPPAGE_BPS="0", PAPER_FEE_BPS="0", PAPER_FEE_PER_ORDER="0")


def world_of(engine, **kwargs):
    with Session(engine, expire_on_commit=False) as s:
        return seed_world(s, **kwargs)


async def quote(engine, world, symbol: str, price: str) -> None:
    await PaperBroker(engine, world.accounts[0].id).set_quote(symbol, D(price))


async def run_signal(engine, world, parsed: Signal, mid: str, adapters: Adapters | None = None, now=NOW):
    signal_id = store_signal(engine, world.source, parsed, message_id=mid, now=now)
    return await dispatch_signal(engine, adapters or Adapters(engine), signal_id, now=now, clock=lambda: now)


async def settle(engine, adapters: Adapters | None = None):
    """What the worker does on a tick: re-read working orders, act on what changed."""
    return await recover(engine, adapters or Adapters(engine), inline_retries=False)


def rows(engine, model, *where):
    with Session(engine) as s:
        return s.exec(select(model).where(*where).order_by(model.id)).all()


def position(engine, world, symbol="AAPL", n=0) -> Position | None:
    found = rows(engine, Position, Position.broker_account_id == world.accounts[n].id, Position.symbol == symbol)
    return found[0] if found else None


def order(engine, leg: str, n_user=None) -> Order:
    found = rows(engine, Order, Order.leg == leg)
    return found[-1]


def buy(symbol="AAPL", **kw) -> Signal:
    return Signal(action="open", symbol=symbol, asset_class=kw.pop("asset_class", "stock"), side="buy", **kw)


# --------------------------------------------------------------------------- idempotency
async def test_a_duplicate_discord_message_is_one_signal_and_one_order(engine, paper_env):
    world = world_of(engine, followers=2)
    await quote(engine, world, "AAPL", "100")
    first = await trading.ingest_discord_message(channel_id=world.source.discord_channel_id, message_id="m1",
                                                 content="Buy AAPL", sent_at=NOW, now=NOW, engine=engine,
                                                 adapters=Adapters(engine))
    again = await trading.ingest_discord_message(channel_id=world.source.discord_channel_id, message_id="m1",
                                                 content="Buy AAPL", sent_at=NOW, now=NOW, engine=engine,
                                                 adapters=Adapters(engine))
    assert first["created"] and first["approved"] == 2 and not again["created"]
    assert len(rows(engine, SignalRow)) == 1
    orders = rows(engine, Order)
    assert len(orders) == 2 and {o.status for o in orders} == {"filled"}
    assert len(rows(engine, PaperOrder)) == 2
    assert rows(engine, SignalRow)[0].status == "dispatched"


async def test_running_the_fan_out_again_changes_nothing(engine, paper_env):
    world = world_of(engine)
    await quote(engine, world, "AAPL", "100")
    signal_id = store_signal(engine, world.source, buy(), message_id="m1", now=NOW)
    adapters = Adapters(engine)
    await dispatch_signal(engine, adapters, signal_id, now=NOW)
    with Session(engine) as s:  # as if a second worker had read the signal before the first committed
        row = s.get(SignalRow, signal_id)
        row.status = "received"
        s.commit()
    await dispatch_signal(engine, adapters, signal_id, now=NOW)
    assert len(rows(engine, RiskDecisionRecord)) == 1
    assert len(rows(engine, Order)) == 1 and len(rows(engine, PaperOrder)) == 1


# --------------------------------------------------------------------------- sizing
@pytest.mark.parametrize("mode,value,expected", [
    ("fixed_units", "7", D(7)),
    ("fixed_notional", "1000", D(10)),            # $1,000 at $100
    ("percent_equity", "5", D(50)),               # 5 % of $100,000 = $5,000 at $100
    ("risk_percent", "1", D(200)),                # 1 % of $100,000 = $1,000 risked over a $5 stop
])
async def test_each_sizing_mode_end_to_end(engine, paper_env, mode, value, expected):
    world = world_of(engine, profile={"sizing_mode": mode, "sizing_value": D(value)})
    await quote(engine, world, "AAPL", "100")
    await run_signal(engine, world, buy(stop_loss=D(95)), "m1")
    entry = order(engine, "entry")
    assert (entry.quantity, entry.status, entry.avg_fill_price) == (expected, "filled", D(100))
    decision = rows(engine, RiskDecisionRecord)[0]
    assert decision.approved and decision.quantity == expected
    assert decision.reasons[0]["code"] == "approved" and decision.inputs["profile"]["sizing_mode"] == mode
    assert position(engine, world).quantity == expected


async def test_the_follow_override_wins_over_the_profile(engine, paper_env):
    world = world_of(engine)
    with Session(engine) as s:
        follow = s.get(type(world.follows[0]), world.follows[0].id)
        follow.sizing_mode, follow.sizing_value = "fixed_units", D(3)
        s.commit()
    await quote(engine, world, "AAPL", "100")
    await run_signal(engine, world, buy(), "m1")
    assert order(engine, "entry").quantity == D(3)
    assert rows(engine, RiskDecisionRecord)[0].inputs["sizing_from"] == "follow"


async def test_denials_are_recorded_with_their_reason_and_trade_nothing(engine, paper_env):
    world = world_of(engine, followers=2, profile={"denied_symbols": ["AAPL"]})
    with Session(engine) as s:  # the second follower has no connected account
        acc = s.get(type(world.accounts[1]), world.accounts[1].id)
        acc.status = "disconnected"
        s.commit()
    await quote(engine, world, "AAPL", "100")
    await run_signal(engine, world, buy(), "m1")
    decisions = rows(engine, RiskDecisionRecord)
    assert [d.approved for d in decisions] == [False, False]
    codes = sorted(d.reasons[0]["code"] for d in decisions)
    assert codes == ["no_broker_account", "symbol_denied"]
    assert rows(engine, Order) == [] and rows(engine, PaperOrder) == []
    assert rows(engine, SignalRow)[0].status_reason == "0 of 2 followers approved."


# --------------------------------------------------------------------------- partial fills
async def test_partial_fills_update_the_position_and_the_pnl(engine, paper_env):
    world = world_of(engine)
    adapters = Adapters(engine, provider=lambda acc, eng: PaperBroker(eng, acc.id, partial_fill_max=D("0.5")))
    await quote(engine, world, "AAPL", "100")
    await run_signal(engine, world, buy(), "m1", adapters)
    entry = order(engine, "entry")
    assert entry.status == "partially_filled" and entry.filled_quantity == D(5)
    assert position(engine, world).quantity == D(5)

    await PaperBroker(engine, world.accounts[0].id, partial_fill_max=D("0.5")).set_quote("AAPL", D(102))
    await settle(engine, adapters)
    entry = order(engine, "entry")
    assert entry.status == "filled" and entry.avg_fill_price == D(101)
    pos = position(engine, world)
    assert (pos.quantity, pos.avg_price) == (D(10), D(101))
    assert len(rows(engine, Fill)) == 2

    await run_signal(engine, world, Signal(action="close", symbol="AAPL", asset_class="stock"), "m2", adapters)
    close = order(engine, "close")
    assert close.status == "partially_filled" and close.filled_quantity == D(5)
    assert [r.amount for r in rows(engine, RealizedPnl)] == [D(10)]  # FIFO: the 5 bought at 100 sold at 102
    await PaperBroker(engine, world.accounts[0].id, partial_fill_max=D("0.5")).set_quote("AAPL", D(104))
    await settle(engine, adapters)
    assert order(engine, "close").status == "filled"
    assert [r.amount for r in rows(engine, RealizedPnl)] == [D(10), D(10)]  # then the 5 bought at 102, at 104
    pos = position(engine, world)
    assert pos.quantity == 0 and pos.realized_pnl == D(20)
    statuses = [e for e in rows(engine, Notification) if e.kind.startswith("order.")]
    assert {n.kind for n in statuses} == {"order.partially_filled", "order.filled"}


# --------------------------------------------------------------------------- brackets (native at the paper venue)
async def test_a_take_profit_ladder_hits_and_the_stop_shrinks(engine, paper_env):
    world = world_of(engine)
    await quote(engine, world, "AAPL", "100")
    await run_signal(engine, world, buy(stop_loss=D(95), take_profits=[D(105), D(110)]), "m1")
    legs = {o.leg: o for o in rows(engine, Order)}
    assert set(legs) == {"entry", "stop", "tp1", "tp2"}
    assert legs["stop"].status == "submitted" and legs["stop"].client_order_id == legs["entry"].client_order_id + "-sl"
    assert (legs["tp1"].quantity, legs["tp2"].quantity) == (D(5), D(5))

    await quote(engine, world, "AAPL", "105")
    await settle(engine)
    legs = {o.leg: o for o in rows(engine, Order)}
    assert legs["tp1"].status == "filled" and legs["stop"].quantity == D(5)
    assert position(engine, world).quantity == D(5)

    await quote(engine, world, "AAPL", "110")
    await settle(engine)
    legs = {o.leg: o for o in rows(engine, Order)}
    assert legs["tp2"].status == "filled" and legs["stop"].status == "cancelled"
    pos = position(engine, world)
    assert pos.quantity == 0 and pos.realized_pnl == D(75)


async def test_the_stop_cancels_the_remaining_targets(engine, paper_env):
    world = world_of(engine)
    await quote(engine, world, "AAPL", "100")
    await run_signal(engine, world, buy(stop_loss=D(95), take_profits=[D(105), D(110)]), "m1")
    await quote(engine, world, "AAPL", "94")
    await settle(engine)
    legs = {o.leg: o for o in rows(engine, Order)}
    assert legs["stop"].status == "filled" and {legs["tp1"].status, legs["tp2"].status} == {"cancelled"}
    assert position(engine, world).realized_pnl == D(-60)  # stop gapped: filled at the 94 quote


async def test_a_limit_entry_waits_and_its_bracket_is_held(engine, paper_env):
    world = world_of(engine)
    await quote(engine, world, "AAPL", "100")
    await run_signal(engine, world, buy(order_type="limit", entry_prices=[D(98)], stop_loss=D(95),
                                        take_profits=[D(105)]), "m1")
    assert order(engine, "entry").status == "submitted" and position(engine, world) is None
    await run_signal(engine, world, Signal(action="cancel", symbol="AAPL", asset_class="stock"), "m2")
    legs = {o.leg: o for o in rows(engine, Order)}
    assert legs["entry"].status == "cancelled"
    await settle(engine)
    legs = {o.leg: o for o in rows(engine, Order)}
    assert legs["stop"].status == "cancelled" and legs["tp1"].status == "cancelled"


# --------------------------------------------------------------------------- modify, close, reverse
async def test_moving_the_stop_and_breakeven(engine, paper_env):
    world = world_of(engine)
    await quote(engine, world, "AAPL", "100")
    await run_signal(engine, world, buy(stop_loss=D(95), take_profits=[D(110)]), "m1")
    await run_signal(engine, world, Signal(action="modify", symbol="AAPL", asset_class="stock", stop_loss=D(97)), "m2")
    stop = order(engine, "stop")
    assert stop.stop_price == D(97) and stop.status == "submitted"
    assert rows(engine, PaperOrder, PaperOrder.client_order_id == stop.client_order_id)[0].stop_price == D(97)
    await run_signal(engine, world, Signal(action="modify", symbol="AAPL", asset_class="stock"), "m3")
    assert order(engine, "stop").stop_price == D(100)  # breakeven = the average entry price
    await quote(engine, world, "AAPL", "99")
    await settle(engine)
    assert order(engine, "stop").status == "filled" and position(engine, world).quantity == 0


async def test_a_close_signal_cancels_the_bracket_first(engine, paper_env):
    world = world_of(engine)
    await quote(engine, world, "AAPL", "100")
    await run_signal(engine, world, buy(stop_loss=D(95), take_profits=[D(105), D(110)]), "m1")
    await quote(engine, world, "AAPL", "103")
    await run_signal(engine, world, Signal(action="close", symbol="AAPL", asset_class="stock"), "m2")
    legs = {o.leg: o for o in rows(engine, Order)}
    assert legs["close"].status == "filled" and legs["close"].reduce_only
    assert {legs["stop"].status, legs["tp1"].status, legs["tp2"].status} == {"cancelled"}
    assert position(engine, world).realized_pnl == D(30)


async def test_close_a_percentage_from_the_dashboard_and_shrink_the_stop(engine, paper_env):
    world = world_of(engine)
    await quote(engine, world, "AAPL", "100")
    await run_signal(engine, world, buy(stop_loss=D(95)), "m1")
    user, account = world.followers[0].id, world.accounts[0].id
    result = await trading.close_position(user, account, "AAPL", 30, request_id="r1", engine=engine,
                                          adapters=Adapters(engine))
    assert [(o["leg"], o["quantity"], o["status"]) for o in result["orders"]] == [("close", D(3), "filled")]
    assert position(engine, world).quantity == D(7)
    stop = order(engine, "stop")
    assert stop.quantity == D(7) and stop.status == "submitted"  # amended at the venue, bracket intact
    again = await trading.close_position(user, account, "AAPL", 30, request_id="r1", engine=engine,
                                         adapters=Adapters(engine))
    assert again["orders"][0]["id"] == result["orders"][0]["id"]  # a double click is one order
    assert position(engine, world).quantity == D(7)
    with pytest.raises(Exception) as refused:
        await trading.close_position(world.followers[0].id + 999, account, "AAPL", 100, engine=engine)
    assert type(refused.value).__name__ in ("PermissionDenied", "NotFound")


async def test_an_opposite_signal_closes_then_reverses(engine, paper_env):
    world = world_of(engine)
    await quote(engine, world, "AAPL", "100")
    await run_signal(engine, world, buy(stop_loss=D(95)), "m1")
    await quote(engine, world, "AAPL", "102")
    await run_signal(engine, world, Signal(action="open", symbol="AAPL", asset_class="stock", side="sell",
                                           stop_loss=D(106)), "m2")
    by_leg = {}
    for o in rows(engine, Order):
        by_leg.setdefault(o.leg, []).append(o)
    reverse, entry = by_leg["reverse"][0], by_leg["entry"][-1]
    assert entry.wait_for_order_id == reverse.id and reverse.status == "filled" and entry.status == "filled"
    assert by_leg["stop"][0].status == "cancelled"
    pos = position(engine, world)
    assert pos.quantity == D(-10) and pos.realized_pnl == D(20)
    assert [e.filled_at for e in rows(engine, Fill)] == sorted(e.filled_at for e in rows(engine, Fill))


async def test_reverse_from_the_dashboard_waits_for_the_close(engine, paper_env):
    world = world_of(engine)
    await quote(engine, world, "AAPL", "100")
    await run_signal(engine, world, buy(), "m1")
    result = await trading.reverse_position(world.followers[0].id, world.accounts[0].id, "AAPL", request_id="x",
                                            engine=engine, adapters=Adapters(engine))
    assert [(o["leg"], o["side"], o["status"]) for o in result["orders"]] == [
        ("reverse", "sell", "filled"), ("entry", "sell", "filled")]
    assert position(engine, world).quantity == D(-10)


# --------------------------------------------------------------------------- daily loss
async def test_the_daily_loss_limit_halts_and_flattens_the_follower(engine, paper_env):
    # The venue stamps fills with the real clock, so this test lives in real time too.
    now = datetime.now(timezone.utc)
    world = world_of(engine, profile={"daily_loss_limit": D(50), "flatten_on_daily_loss": True})
    for symbol in ("AAPL", "MSFT"):
        await quote(engine, world, symbol, "100")
        await run_signal(engine, world, buy(symbol), f"open-{symbol}", now=now)
    await quote(engine, world, "AAPL", "93")
    await run_signal(engine, world, Signal(action="close", symbol="AAPL", asset_class="stock"), "close-aapl", now=now)
    assert position(engine, world, "AAPL").realized_pnl == D(-70)

    await quote(engine, world, "TSLA", "200")
    await run_signal(engine, world, buy("TSLA"), "tsla", now=now + timedelta(seconds=5))
    decision = rows(engine, RiskDecisionRecord)[-1]
    assert not decision.approved and decision.reasons[0]["code"] == "daily_loss_limit"
    profile = rows(engine, RiskProfileRecord)[0]
    assert profile.trading_state == "HALTED" and profile.halted_on == trading_day(now)
    assert position(engine, world, "MSFT").quantity == 0  # flattened
    assert position(engine, world, "TSLA") is None
    flatten = [o for o in rows(engine, Order) if o.leg == "flatten"]
    assert len(flatten) == 1 and flatten[0].status == "filled" and flatten[0].symbol == "MSFT"
    assert any(n.kind == "risk.halted" for n in rows(engine, Notification))

    await run_signal(engine, world, buy("TSLA"), "tsla-2", now=now + timedelta(seconds=10))
    assert not rows(engine, RiskDecisionRecord)[-1].approved  # still halted today

    later = now + timedelta(days=3)  # always a later trading day, whatever today's weekday
    await run_signal(engine, world, buy("TSLA"), "tsla-3", now=later)
    assert rows(engine, RiskDecisionRecord)[-1].approved
    assert rows(engine, RiskProfileRecord)[0].trading_state == "ACTIVE"
    assert position(engine, world, "TSLA").quantity == D(10)


# --------------------------------------------------------------------------- audit
async def test_every_step_is_audited_and_the_chain_verifies(engine, paper_env):
    from backend.audit import verify

    world = world_of(engine)
    await quote(engine, world, "AAPL", "100")
    await run_signal(engine, world, buy(stop_loss=D(95)), "m1")
    events = rows(engine, AuditEvent)
    actions = [a.action for a in events]
    for expected in ("signal.received", "risk.decision", "signal.dispatched", "order.placed", "order.status",
                     "fill.booked"):
        assert expected in actions
    decision = next(e for e in events if e.action == "risk.decision")
    assert [o["leg"] for o in decision.data["orders_created"]] == ["entry", "stop"]  # the intents, before any send
    assert actions.index("signal.dispatched") < actions.index("order.placed")
    with Session(engine) as s:
        assert verify(s).ok


# --------------------------------------------------------------------------- durability
async def test_the_bot_moves_the_cursor_with_the_message_it_stores_forward_only_and_at_no_extra_trip(engine,
                                                                                                      paper_env):
    from backend.execution.seeding import StatementCounter

    world = world_of(engine)
    await quote(engine, world, "AAPL", "100")
    channel, adapters = world.source.discord_channel_id, Adapters(engine)

    async def message(mid: str, content: str, advance: bool) -> dict:
        return await trading.ingest_discord_message(channel_id=channel, message_id=mid, content=content, sent_at=NOW,
                                                    now=NOW, engine=engine, adapters=adapters, advance_cursor=advance)

    def cursor() -> str | None:
        with Session(engine) as s:
            return s.get(SignalSource, world.source.id).last_message_id

    await message("1000000000000000001", "Buy AAPL", False)  # the venue opens its books on first use
    await message("1000000000000000002", "Sell AAPL", False)
    counter = StatementCounter(engine)
    trips = []
    for mid, text, advance in (("1000000000000000005", "Buy AAPL", False), ("1000000000000000006", "Sell AAPL", False),
                               ("1000000000000000010", "Buy AAPL", True), ("1000000000000000020", "Sell AAPL", True)):
        before = counter.round_trips
        await message(mid, text, advance)
        trips.append(counter.round_trips - before)
        assert cursor() == (mid if advance else None)
    if engine.dialect.name == "postgresql":  # the UPDATE travels with the fan-out's COMMIT
        assert trips[2:] == trips[:2], trips
    assert [o.status for o in rows(engine, Order)] == ["filled"] * 6
    await message("1000000000000000030", "anyone still holding AAPL?", True)  # chatter moves it too
    assert cursor() == "1000000000000000030"
    await message("999999999999999999", "gm", True)             # an older (shorter) snowflake: never back
    await message("1000000000000000020", "Sell AAPL", True)     # a replay: no second order, cursor kept
    assert cursor() == "1000000000000000030"
    assert len(rows(engine, Order)) == 6
    with pytest.raises(NotFound):
        await trading.ingest_discord_message(channel_id="no-such-channel", message_id="2000000000000000000",
                                             content="Buy AAPL", sent_at=NOW, now=NOW, engine=engine,
                                             adapters=adapters, advance_cursor=True)
    assert cursor() == "1000000000000000030"


async def test_a_failing_inline_fan_out_never_loses_the_signal(engine, paper_env, monkeypatch):
    world = world_of(engine)
    await quote(engine, world, "AAPL", "100")

    async def broken_fan_out(*args, **kwargs):
        raise RuntimeError("a bug in the fan-out")

    monkeypatch.setattr(trading, "fan_out_in", broken_fan_out)  # our own seam: nothing else reaches this path
    now = datetime.now(timezone.utc)  # the worker below runs on the real clock
    result = await trading.ingest_discord_message(channel_id=world.source.discord_channel_id, message_id="m1",
                                                  content="Buy AAPL", sent_at=now, now=now, engine=engine,
                                                  adapters=Adapters(engine))
    assert result["status"] == "received" and rows(engine, Order) == []
    monkeypatch.undo()
    done = await trading.process_pending(engine=engine, adapters=Adapters(engine))
    assert done["signals"] == 1 and done["orders_submitted"] == 1
    assert rows(engine, SignalRow)[0].status == "dispatched"
    assert order(engine, "entry").status == "filled"


async def test_chatter_and_edits_through_the_discord_service_never_trade(engine, paper_env):
    world = world_of(engine)
    await quote(engine, world, "AAPL", "100")
    channel = world.source.discord_channel_id
    chatter = await trading.ingest_discord_message(channel_id=channel, message_id="c1", engine=engine,
                                                   content="anyone still holding AAPL?", sent_at=NOW, now=NOW)
    assert chatter["status"] == "ignored"
    await trading.ingest_discord_message(channel_id=channel, message_id="s1", content="Buy AAPL", sent_at=NOW,
                                         now=NOW, engine=engine, adapters=Adapters(engine))
    edit = await trading.ingest_discord_edit(channel_id=channel, message_id="s1", content="Buy AAPL SL 95",
                                             now=NOW, engine=engine)
    assert edit == {"signal_id": rows(engine, SignalRow)[1].id, "status": "dispatched", "traded": False}
    assert len(rows(engine, Order)) == 1
    notes = [n for n in rows(engine, Notification) if n.kind == "signal.edited"]
    assert len(notes) == 1 and "never trades twice" in notes[0].body


async def test_an_option_is_sized_priced_and_booked_as_its_contract(engine, paper_env):
    from datetime import date

    world = world_of(engine, profile={"sizing_mode": "fixed_units", "sizing_value": D(2)})
    contract = dict(symbol="SPY", asset_class="option", option_right="call", strike=D(450), expiry=date(2026, 11, 20))
    await quote(engine, world, "SPY261120C00450000", "2.40")
    await run_signal(engine, world, Signal(action="open", side="buy", order_type="limit", entry_prices=[D("2.50")],
                                           **contract), "o1")
    entry = order(engine, "entry")
    assert (entry.symbol, entry.quantity, entry.status, entry.avg_fill_price) == ("SPY", D(2), "filled", D("2.40"))
    pos = position(engine, world, "SPY261120C00450000")
    assert pos.quantity == D(2) and pos.asset_class == "option"
    await quote(engine, world, "SPY261120C00450000", "3.00")
    await run_signal(engine, world, Signal(action="close", **contract), "o2")
    pos = position(engine, world, "SPY261120C00450000")
    assert pos.quantity == 0 and pos.realized_pnl == D(120)  # 0.60 x 2 contracts x 100


async def test_open_positions_are_marked_at_the_last_quote(engine, paper_env):
    from backend.execution.positions import unrealized_pnl
    from backend.execution.tracking import refresh_marks

    world = world_of(engine, followers=2)
    await quote(engine, world, "AAPL", "100")
    await run_signal(engine, world, Signal(action="open", symbol="AAPL", asset_class="stock", side="sell"), "m1")
    await quote(engine, world, "AAPL", "96.5")
    assert await refresh_marks(engine, Adapters(engine)) == 2
    pos = position(engine, world)
    assert pos.last_price == D("96.5") and unrealized_pnl(pos) == D(35)  # short 10 from 100


async def test_move_stop_and_cancel_from_the_dashboard(engine, paper_env):
    world = world_of(engine)
    user, account = world.followers[0].id, world.accounts[0].id
    await quote(engine, world, "AAPL", "100")
    await run_signal(engine, world, buy(stop_loss=D(95)), "m1")
    moved = await trading.move_stop(user, account, "AAPL", D(98), engine=engine, adapters=Adapters(engine))
    assert moved["orders_changed"] == 1 and order(engine, "stop").stop_price == D(98)
    await trading.move_stop(user, account, "AAPL", engine=engine, adapters=Adapters(engine))  # breakeven
    assert order(engine, "stop").stop_price == D(100)

    await quote(engine, world, "MSFT", "100")
    await run_signal(engine, world, buy("MSFT", order_type="limit", entry_prices=[D(90)]), "m2")
    cancelled = await trading.cancel_pending_entries(user, account, "MSFT", engine=engine, adapters=Adapters(engine))
    assert cancelled == {"cancelled": 1}
    msft = [o for o in rows(engine, Order) if o.symbol == "MSFT"]
    assert [o.status for o in msft] == ["cancelled"]


# --------------------------------------------------------------------------- daily loss between signals
def profile_row(engine, world, n=0) -> RiskProfileRecord:
    return rows(engine, RiskProfileRecord, RiskProfileRecord.user_id == world.followers[n].id)[0]


def notes(engine, kind: str) -> list[Notification]:
    return rows(engine, Notification, Notification.kind == kind)


async def test_a_stop_fill_that_breaks_the_daily_loss_limit_halts_and_flattens_with_no_new_signal(engine, paper_env):
    from backend.audit import verify
    from backend.workers import jobs

    now = datetime.now(timezone.utc)  # the venue stamps fills with the real clock
    world = world_of(engine, profile={"daily_loss_limit": D(50), "flatten_on_daily_loss": True})
    for symbol in ("AAPL", "MSFT", "NVDA"):
        await quote(engine, world, symbol, "100")
    await run_signal(engine, world, buy(stop_loss=D(95)), "aapl", now=now)
    await run_signal(engine, world, buy("MSFT"), "msft", now=now)
    await run_signal(engine, world, buy("NVDA", order_type="limit", entry_prices=[D(95)]), "nvda", now=now)
    assert profile_row(engine, world).trading_state == "ACTIVE"

    await quote(engine, world, "AAPL", "94")
    await settle(engine)  # the worker's tick: the stop fills at 94, realising -60 against a 50 limit
    assert len(rows(engine, SignalRow)) == 3  # no signal was needed
    assert order(engine, "stop").status == "filled" and position(engine, world).realized_pnl == D(-60)
    profile = profile_row(engine, world)
    assert profile.trading_state == "HALTED" and profile.halted_on == trading_day(now)
    assert "daily loss limit of $50.00" in profile.state_reason
    flatten = [o for o in rows(engine, Order) if o.leg == "flatten"]
    assert [(o.symbol, o.side, o.quantity, o.status) for o in flatten] == [("MSFT", "sell", D(10), "filled")]
    assert position(engine, world, "MSFT").quantity == 0
    assert [o.status for o in rows(engine, Order, Order.symbol == "NVDA")] == ["cancelled"]  # working entry
    halted = notes(engine, "risk.halted")
    assert len(halted) == 1 and halted[0].dm_status == "pending" and "being closed" in halted[0].body
    assert "lifts at the start of" in halted[0].body
    events = [e for e in rows(engine, AuditEvent) if e.action == "risk.state_changed"]
    assert [(e.data["from"], e.data["to"], e.data["flatten"]) for e in events] == [("ACTIVE", "HALTED", True)]
    with Session(engine) as s:
        assert verify(s).ok

    await quote(engine, world, "TSLA", "200")
    await run_signal(engine, world, buy("TSLA"), "tsla", now=datetime.now(timezone.utc))
    assert [r["code"] for r in rows(engine, RiskDecisionRecord)[-1].reasons] == ["daily_loss_limit", "trading_halted"]

    assert "risk_halts" in [job.name for job in jobs.JOBS]
    assert jobs.risk_halts_job(engine, now=now + timedelta(minutes=1)) == 0  # same trading day: still halted
    assert profile_row(engine, world).trading_state == "HALTED"
    later = now + timedelta(days=3)  # always a later trading day, whatever today's weekday
    assert jobs.risk_halts_job(engine, now=later) == 1
    profile = profile_row(engine, world)
    assert (profile.trading_state, profile.halted_on, profile.state_reason) == ("ACTIVE", None, None)
    assert len(notes(engine, "risk.resumed")) == 1
    assert jobs.risk_halts_job(engine, now=later) == 0  # nothing left to lift
    await run_signal(engine, world, buy("TSLA"), "tsla-2", now=later)
    assert rows(engine, RiskDecisionRecord)[-1].approved


async def test_a_position_marked_down_past_the_limit_halts_and_the_next_tick_flattens(engine, paper_env):
    from backend.execution.tracking import refresh_marks

    world = world_of(engine, profile={"daily_loss_limit": D(50), "flatten_on_daily_loss": True})
    await quote(engine, world, "AAPL", "100")
    await run_signal(engine, world, buy(), "m1", now=datetime.now(timezone.utc))
    await quote(engine, world, "AAPL", "95")
    await refresh_marks(engine, Adapters(engine))  # open P&L -50: exactly the limit
    assert profile_row(engine, world).trading_state == "HALTED"
    assert "open positions -$50.00" in profile_row(engine, world).state_reason
    flatten = order(engine, "flatten")
    assert (flatten.status, flatten.quantity, flatten.reduce_only) == ("new", D(10), True)
    await settle(engine)
    assert order(engine, "flatten").status == "filled" and position(engine, world).quantity == 0
    assert position(engine, world).realized_pnl == D(-50)
    await refresh_marks(engine, Adapters(engine))  # nothing held: nothing to mark, no second halt
    assert len(notes(engine, "risk.halted")) == 1


async def test_past_the_soft_threshold_the_follower_turns_close_only_until_the_next_day(engine, paper_env):
    from backend.execution.trading_state import lift_expired

    now = datetime.now(timezone.utc)
    world = world_of(engine, profile={"daily_loss_limit": D(100), "reduce_at_loss_percent": D(50),
                                      "flatten_on_daily_loss": True})
    for symbol in ("AAPL", "MSFT", "TSLA"):
        await quote(engine, world, symbol, "100")
    await run_signal(engine, world, buy(stop_loss=D(95)), "aapl", now=now)
    await run_signal(engine, world, buy("MSFT"), "msft", now=now)
    await quote(engine, world, "AAPL", "94")
    await settle(engine)  # -60: past 50 % of the $100 limit, short of the limit
    profile = profile_row(engine, world)
    assert profile.trading_state == "REDUCING" and profile.halted_on == trading_day(now)
    assert position(engine, world, "MSFT").quantity == D(10)  # close-only never flattens
    assert len(notes(engine, "risk.reducing")) == 1 and notes(engine, "risk.halted") == []

    await run_signal(engine, world, buy("TSLA"), "tsla", now=datetime.now(timezone.utc))
    decision = rows(engine, RiskDecisionRecord)[-1]
    assert not decision.approved and [r["code"] for r in decision.reasons] == ["daily_loss_soft", "trading_reducing"]
    await run_signal(engine, world, Signal(action="close", symbol="MSFT", asset_class="stock"), "close-msft",
                     now=datetime.now(timezone.utc))
    assert rows(engine, RiskDecisionRecord)[-1].approved and position(engine, world, "MSFT").quantity == 0

    assert lift_expired(engine, now=now + timedelta(days=3)) == 1
    assert profile_row(engine, world).trading_state == "ACTIVE"


async def test_the_followers_close_only_switch_denies_entries_allows_closes_and_has_no_expiry(engine, paper_env):
    from backend.execution.trading_state import lift_expired
    from backend.services import risk_settings

    world = world_of(engine)
    user = world.followers[0].id
    await quote(engine, world, "AAPL", "100")
    await quote(engine, world, "MSFT", "100")
    await run_signal(engine, world, buy(), "m1")
    with Session(engine, expire_on_commit=False) as s:
        profile = risk_settings.set_close_only(s, user, True, now=NOW)
    assert (profile.trading_state, profile.close_only, profile.halted_on) == ("REDUCING", True, None)

    await run_signal(engine, world, buy("MSFT"), "m2")
    decision = rows(engine, RiskDecisionRecord)[-1]
    assert not decision.approved and decision.reasons[0]["code"] == "trading_reducing"
    assert position(engine, world, "MSFT") is None
    await run_signal(engine, world, Signal(action="close", symbol="AAPL", asset_class="stock"), "m3")
    assert rows(engine, RiskDecisionRecord)[-1].approved and position(engine, world).quantity == 0

    assert lift_expired(engine, now=NOW + timedelta(days=7)) == 0  # the follower's own choice: no expiry
    assert profile_row(engine, world).trading_state == "REDUCING"
    with Session(engine, expire_on_commit=False) as s:
        assert risk_settings.set_close_only(s, user, False, now=NOW).trading_state == "ACTIVE"
    await run_signal(engine, world, buy("MSFT"), "m4")
    assert rows(engine, RiskDecisionRecord)[-1].approved
    switched = [e.data for e in rows(engine, AuditEvent) if e.action == "risk.close_only_set"]
    assert switched == [{"close_only": True, "state": "REDUCING"}, {"close_only": False, "state": "ACTIVE"}]


# --------------------------------------------------------------------------- denials are told
async def test_each_denied_follower_hears_why_once_per_signal_in_the_inbox_and_as_a_dm(engine, paper_env):
    from backend.services import notifications as inbox
    from backend.services.notify import take_pending

    world = world_of(engine, followers=3, profile={"denied_symbols": ["AAPL"]})
    with Session(engine) as s:  # the second follower has no connected account, the third may trade AAPL
        acc = s.get(type(world.accounts[1]), world.accounts[1].id)
        acc.status = "disconnected"
        third = s.get(RiskProfileRecord, world.profiles[2].id)
        third.denied_symbols = []
        s.commit()
    await quote(engine, world, "AAPL", "100")
    dispatch = await run_signal(engine, world, buy(), "m1")
    signal_id = dispatch.dispatches[0].signal_id
    denied = notes(engine, "signal.denied")
    assert sorted(n.user_id for n in denied) == sorted(u.id for u in world.followers[:2])
    by_user = {n.user_id: n for n in denied}
    first = by_user[world.followers[0].id]
    assert first.title == "Buy AAPL from w signals not taken"
    assert "AAPL is on your list of symbols never to trade." in first.body
    assert first.data["signal_id"] == signal_id and first.data["codes"] == ["symbol_denied"]
    assert "account you chose for this source is not connected" in by_user[world.followers[1].id].body

    with Session(engine) as s:  # the fan-out runs again (a second worker): no second notification
        row = s.get(SignalRow, signal_id)
        row.status = "received"
        s.commit()
    await dispatch_signal(engine, Adapters(engine), signal_id, now=NOW, clock=lambda: NOW)
    assert len(notes(engine, "signal.denied")) == 2

    await run_signal(engine, world, Signal(action="close", symbol="MSFT", asset_class="stock"), "m2")
    later = notes(engine, "signal.denied")[2:]  # "nothing to close" is not news; a disconnected account is
    assert [(n.user_id, n.data["codes"]) for n in later] == [(world.followers[1].id, ["no_broker_account"])]

    with Session(engine) as s:
        page = inbox.inbox(s, world.followers[0].id)
        assert [v.kind for v in page.items] == ["signal.denied"]
        pending, _off = take_pending(s)
    dm = next(p for p in pending if p.notification_id == first.id)
    assert dm.discord_id == world.followers[0].discord_id and "never to trade" in dm.text


# --------------------------------------------------------------------------- sizing precedence
@pytest.mark.parametrize("profile,source,follow,expected,origin", [
    ({"sizing_mode": "provider_default"}, {"default_sizing_mode": "fixed_units", "default_sizing_value": D(4)},
     None, D(4), "source"),
    ({"sizing_mode": "fixed_units", "sizing_value": D(7)},
     {"default_sizing_mode": "fixed_units", "default_sizing_value": D(4)}, None, D(7), "profile"),
    ({"sizing_mode": "fixed_units", "sizing_value": D(7)},
     {"default_sizing_mode": "fixed_units", "default_sizing_value": D(4)}, ("fixed_units", D(3)), D(3), "follow"),
    ({"sizing_mode": "provider_default"}, {}, None, D(20), "default"),  # 2 % of $100,000 at $100
])
async def test_sizing_precedence_follow_then_explicit_profile_then_source_default(engine, paper_env, profile,
                                                                                  source, follow, expected, origin):
    world = world_of(engine, profile=profile, source=source)
    if follow:
        with Session(engine) as s:
            row = s.get(type(world.follows[0]), world.follows[0].id)
            row.sizing_mode, row.sizing_value = follow
            s.commit()
    await quote(engine, world, "AAPL", "100")
    await run_signal(engine, world, buy(), "m1")
    decision = rows(engine, RiskDecisionRecord)[0]
    assert decision.inputs["sizing_from"] == origin and order(engine, "entry").quantity == expected


# --------------------------------------------------------------------------- price sanity, max lag
async def test_a_limit_price_far_from_the_quote_is_refused_before_any_order(engine, paper_env):
    world = world_of(engine)
    await quote(engine, world, "AAPL", "250.10")
    await run_signal(engine, world, buy(order_type="limit", entry_prices=[D("1.00")]), "m1")
    decision = rows(engine, RiskDecisionRecord)[0]
    assert not decision.approved and decision.reasons[0]["code"] == "price_far_from_market"
    assert "limit $1.00 is 99.6% below the last price $250.10" in decision.reasons[0]["message"]
    assert D(decision.inputs["quote"]) == D("250.10")
    assert rows(engine, Order) == [] and rows(engine, PaperOrder) == []
    assert "99.6% below" in notes(engine, "signal.denied")[0].body


async def test_new_sources_take_their_max_lag_from_the_setting_and_keep_their_own(engine, paper_env, settings_env):
    settings_env(SIGNAL_MAX_LAG_SECONDS="5")
    world = world_of(engine)
    own = world_of(engine, tag="own", source={"max_lag_seconds": 60})
    assert (world.source.max_lag_seconds, own.source.max_lag_seconds) == (5, 60)
    await quote(engine, world, "AAPL", "100")
    late = NOW - timedelta(seconds=10)
    for w in (world, own):
        store_signal(engine, w.source, buy(), message_id="m1", now=NOW, sent_at=late)
    statuses = {s.source_id: s.status for s in rows(engine, SignalRow)}
    assert statuses == {world.source.id: "stale", own.source.id: "received"}
