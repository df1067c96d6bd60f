"""The scheduled reconciliation job and ``python -m backend reconcile``.

The job is a plain function of an engine that the scheduler calls every five
minutes, once from inside its own event loop at start and later from worker
threads; the command prints the report and says by its exit code whether
every account was reconciled.
"""

from __future__ import annotations

from decimal import Decimal as D

from sqlmodel import Session, select

from backend.__main__ import main
from backend.brokers.base import OrderRequest
from backend.brokers.paper import PaperBroker
from backend.db.models import BrokerAccount, Position
from backend.execution.seeding import seed_world
from backend.reconcile.job import reconcile_job
from backend.workers.jobs import JOBS, run_safely


async def world_with_a_position_bought_by_hand(engine):
    with Session(engine, expire_on_commit=False) as s:
        world = seed_world(s)
    broker = PaperBroker(engine, world.accounts[0].id)
    await broker.set_quote("TSLA", D("200"))
    await broker.place_order(OrderRequest("by-hand", "TSLA", "buy", D("3")))
    return world


def held(engine) -> dict[str, D]:
    with Session(engine) as s:
        return {p.symbol: p.quantity for p in s.exec(select(Position).where(Position.quantity != 0))}


def test_the_job_is_scheduled_every_five_minutes():
    assert [(j.name, j.seconds) for j in JOBS if j.name == "reconcile"] == [("reconcile", 300)]


async def test_the_job_runs_from_inside_a_running_event_loop(engine, settings_env):
    await world_with_a_position_bought_by_hand(engine)
    report = reconcile_job(engine)        # the scheduler's first, in-loop call
    assert [r.kind for r in report.repairs] == ["unknown_position"] and held(engine) == {"TSLA": D(3)}
    assert reconcile_job(engine).repairs == []


async def test_a_failing_account_does_not_fail_the_job(engine, settings_env):
    world = await world_with_a_position_bought_by_hand(engine)
    with Session(engine) as s:
        broken = BrokerAccount(user_id=world.followers[0].id, broker="alpaca", label="keys lost",
                               credentials_enc="v1:gone:AAAA")
        s.add(broken)
        s.commit()
        broken_id = broken.id
    run_safely(next(j for j in JOBS if j.name == "reconcile"), engine)
    with Session(engine) as s:
        row = s.get(BrokerAccount, broken_id)
    assert row.status == "error" and "credentials" in row.status_message
    assert held(engine) == {"TSLA": D(3)}


async def test_the_command_prints_the_report_and_exits_by_outcome(engine, settings_env, capsys, monkeypatch):
    world = await world_with_a_position_bought_by_hand(engine)
    monkeypatch.setattr("backend.logsetup.configure_logging", lambda settings: None)  # keep the test's logging
    settings_env(DATABASE_URL=engine.url.render_as_string(hide_password=False))
    assert main(["reconcile", "--account", str(world.accounts[0].id)]) == 0
    out = capsys.readouterr().out
    assert "1 repair(s), 0 failure(s)" in out and "unknown_position: TSLA" in out
    assert main(["reconcile", "--account", "999999"]) == 2
    assert "no connected broker account #999999" in capsys.readouterr().out
    assert main(["reconcile"]) == 0 and "0 repair(s)" in capsys.readouterr().out
