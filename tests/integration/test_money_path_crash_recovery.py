"""Crash recovery, proven by killing real worker processes (SQLite and Postgres).

A worker subprocess runs with the test-only ``DTE_CRASH_AFTER`` hook and
dies with ``os._exit(137)`` right after a named step: after the fan-out
commit (intents written, nothing sent) and after the venue acknowledged the
orders (acks not yet recorded).  A fresh worker then recovers, and the venue
(paper_orders) and our orders table must hold exactly one order per
follower and per leg, entries filled, brackets held at the venue.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from datetime import datetime, timezone
from decimal import Decimal as D
from pathlib import Path

from sqlmodel import Session, select

from backend.brokers.paper import PaperBroker
from backend.db.models import Order, PaperOrder, Position, Signal as SignalRow
from backend.execution.seeding import seed_world, store_signal
from backend.signals import Signal

ROOT = Path(__file__).resolve().parents[2]
FOLLOWERS = 3
BRACKET = Signal(action="open", symbol="AAPL", asset_class="stock", side="buy", stop_loss=D(95),
                 take_profits=[D(105), D(110)])


def run_worker(engine, crash_after: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, DATABASE_URL=engine.url.render_as_string(hide_password=False), LOG_LEVEL="WARNING",
               PAPER_SLIPPAGE_BPS="0", PAPER_FEE_BPS="0", PAPER_FEE_PER_ORDER="0")
    env.pop("DTE_CRASH_AFTER", None)
    if crash_after:
        env["DTE_CRASH_AFTER"] = crash_after
    return subprocess.run([sys.executable, "-m", "backend.execution.worker", "--once"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def orders(engine) -> list[Order]:
    with Session(engine) as s:
        return s.exec(select(Order).order_by(Order.id)).all()


def venue_orders(engine) -> list[PaperOrder]:
    with Session(engine) as s:
        return s.exec(select(PaperOrder).order_by(PaperOrder.id)).all()


def assert_exactly_once_and_done(engine, world) -> None:
    ours = orders(engine)
    assert Counter((o.user_id, o.leg) for o in ours) == Counter(
        {(u.id, leg): 1 for u in world.followers for leg in ("entry", "stop", "tp1", "tp2")})
    venue = venue_orders(engine)
    assert len(venue) == len(ours) == FOLLOWERS * 4
    assert Counter(p.client_order_id for p in venue) == Counter(o.client_order_id for o in ours)
    assert {o.status for o in ours if o.leg == "entry"} == {"filled"}
    assert {o.status for o in ours if o.leg != "entry"} == {"submitted"}  # held at the venue with the entry
    with Session(engine) as s:
        assert [p.quantity for p in s.exec(select(Position))] == [D(10)] * FOLLOWERS


async def _setup(engine, settings_env):
    settings_env(PAPER_SLIPPAGE_BPS="0", PAPER_FEE_BPS="0", PAPER_FEE_PER_ORDER="0")
    with Session(engine, expire_on_commit=False) as s:
        world = seed_world(s, followers=FOLLOWERS)
    await PaperBroker(engine, world.accounts[0].id).set_quote("AAPL", D(100))
    now = datetime.now(timezone.utc)
    store_signal(engine, world.source, BRACKET, message_id="m1", now=now)
    return world


async def test_a_worker_killed_after_the_fan_out_commit(engine, settings_env):
    world = await _setup(engine, settings_env)
    crashed = run_worker(engine, "fanout_committed")
    assert crashed.returncode == 137, crashed.stderr
    with Session(engine) as s:
        assert s.exec(select(SignalRow)).one().status == "dispatched"
    assert {o.status for o in orders(engine)} == {"new"} and len(orders(engine)) == FOLLOWERS * 4
    assert venue_orders(engine) == []  # intents are durable before any broker call

    recovered = run_worker(engine)
    assert recovered.returncode == 0, recovered.stderr
    assert_exactly_once_and_done(engine, world)


async def test_a_worker_killed_between_the_broker_ack_and_recording_it(engine, settings_env):
    world = await _setup(engine, settings_env)
    crashed = run_worker(engine, "broker_acked")
    assert crashed.returncode == 137, crashed.stderr
    assert {o.status for o in orders(engine)} == {"new"}  # the acks were lost with the process
    assert {p.status for p in venue_orders(engine) if "-" not in p.client_order_id[4:]} == {"filled"}

    recovered = run_worker(engine)  # re-sends the same client order ids: the venue returns the first orders
    assert recovered.returncode == 0, recovered.stderr
    assert_exactly_once_and_done(engine, world)
    again = run_worker(engine)  # and a further pass changes nothing
    assert again.returncode == 0, again.stderr
    assert_exactly_once_and_done(engine, world)


async def test_a_worker_that_comes_back_too_late_does_not_trade_late(engine, settings_env):
    """In process, with an injected clock: recovery 5 minutes later refuses to send a stale entry."""
    from datetime import timedelta

    from backend.db.models import Notification
    from backend.execution.adapters import Adapters
    from backend.execution.runner import recover

    world = await _setup(engine, settings_env)
    later = datetime.now(timezone.utc) + timedelta(minutes=5)
    report = await recover(engine, Adapters(engine), clock=lambda: later)
    assert report.signals == 1 and len(world.followers) == FOLLOWERS
    assert report.dispatches[0].status == "stale" and orders(engine) == [] and venue_orders(engine) == []
    with Session(engine) as s:
        assert {n.kind for n in s.exec(select(Notification))} == {"signal.stale"}


async def test_unsent_entries_expire_but_their_signal_stays_recorded(engine, settings_env):
    from datetime import timedelta

    from backend.execution.adapters import Adapters
    from backend.execution.runner import recover

    await _setup(engine, settings_env)
    assert run_worker(engine, "fanout_committed").returncode == 137
    later = datetime.now(timezone.utc) + timedelta(minutes=5)
    await recover(engine, Adapters(engine), clock=lambda: later)
    assert {(o.leg, o.status) for o in orders(engine)} == {
        ("entry", "cancelled"), ("stop", "cancelled"), ("tp1", "cancelled"), ("tp2", "cancelled")}
    assert venue_orders(engine) == []
