"""Trading states in the database: day-long states lift on the next trading day, the follower's
close-only switch does not; the loss guard counts today's P&L once and claims a change once; sizing
precedence (follow > explicit profile > source default > built-in)."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal as D

import sqlalchemy as sa
from sqlmodel import Session, select

from backend.db.models import AuditEvent, Fill, Follow, Notification, Order, RealizedPnl, RiskProfileRecord, SignalSource
from backend.execution import loss_guard, pipeline
from backend.execution.decisions import sizing_for
from backend.execution.journal import Journal
from backend.execution.loading import ProfileRow
from backend.execution.rows import PositionRow
from backend.execution.seeding import StatementCounter, seed_world
from backend.execution.trading_state import change_state, lift_expired, lift_if_expired

UTC = timezone.utc
FRIDAY = date(2025, 1, 10)
FRIDAY_NOON = datetime(2025, 1, 10, 17, 0, tzinfo=UTC)
SATURDAY = datetime(2025, 1, 11, 15, 0, tzinfo=UTC)
MONDAY = datetime(2025, 1, 13, 15, 0, tzinfo=UTC)


def _profile(**kw) -> RiskProfileRecord:
    return RiskProfileRecord(user_id=1, **kw)


# --- lifting -------------------------------------------------------------------------------------
def test_a_day_long_halt_lifts_on_the_next_trading_day_only():
    row = _profile(trading_state="HALTED", halted_on=FRIDAY, state_reason="loss")
    journal = Journal()
    assert not lift_if_expired(journal, row, SATURDAY) and row.trading_state == "HALTED"
    assert lift_if_expired(journal, row, MONDAY)
    assert (row.trading_state, row.halted_on, row.state_reason) == ("ACTIVE", None, None)
    [note] = journal.writes._inserts[Notification.__table__]
    assert note["kind"] == "risk.resumed" and note["dm_status"] == "pending"
    assert [e["data"]["to"] for e in journal.audit_events] == ["ACTIVE"]


def test_under_the_close_only_switch_a_lifted_halt_returns_to_close_only():
    row = _profile(trading_state="HALTED", halted_on=FRIDAY, close_only=True)
    assert lift_if_expired(Journal(), row, MONDAY)
    assert (row.trading_state, row.halted_on) == ("REDUCING", None)
    assert "your setting" in row.state_reason
    assert not lift_if_expired(Journal(), row, MONDAY + timedelta(days=30))  # the switch has no expiry


def test_change_state_for_the_day_records_the_day_and_says_when_it_ends():
    row = _profile()
    journal = Journal()
    before = change_state(journal, row, "REDUCING", "Past the soft threshold.", FRIDAY_NOON, for_the_day=True)
    assert before == "ACTIVE" and row.halted_on == FRIDAY
    [note] = journal.writes._inserts[Notification.__table__]
    assert note["kind"] == "risk.reducing" and "It lifts at the start of Monday 13 January" in note["body"]
    assert journal.audit_events[0]["data"]["until"] == "2025-01-13"


def test_the_scheduler_job_lifts_expired_states_and_leaves_the_rest(session, engine):
    world = seed_world(session, followers=3)
    ids = [p.id for p in world.profiles]
    states = [("HALTED", FRIDAY), ("REDUCING", FRIDAY), ("REDUCING", None)]
    for pid, (state, day) in zip(ids, states):
        row = session.get(RiskProfileRecord, pid)
        row.trading_state, row.halted_on = state, day
    session.commit()
    assert lift_expired(engine, now=SATURDAY) == 0
    assert lift_expired(engine, now=MONDAY) == 2
    session.expire_all()
    assert [session.get(RiskProfileRecord, pid).trading_state for pid in ids] == ["ACTIVE", "ACTIVE", "REDUCING"]
    assert len(session.exec(select(AuditEvent).where(AuditEvent.action == "risk.state_changed")).all()) == 2


# --- the loss guard ------------------------------------------------------------------------------
def _fill(session, world, cid: str) -> Fill:
    order = Order(client_order_id=cid, user_id=world.followers[0].id, broker_account_id=world.accounts[0].id,
                  symbol="AAPL", side="sell", quantity=D(1), status="filled")
    session.add(order)
    session.flush()
    fill = Fill(order_id=order.id, broker_fill_id=cid, quantity=D(1), price=D(1), filled_at=MONDAY)
    session.add(fill)
    session.flush()
    return fill


def test_today_pnl_counts_each_ledger_row_once_and_only_today(session):
    world = seed_world(session, profile={"daily_loss_limit": D(100)})
    uid, account = world.followers[0].id, world.accounts[0].id
    written, queued = _fill(session, world, "a"), _fill(session, world, "b")
    session.add_all([
        RealizedPnl(user_id=uid, broker_account_id=account, fill_id=written.id, symbol="AAPL", amount=D(-30),
                    realized_at=MONDAY - timedelta(hours=1)),
        RealizedPnl(user_id=uid, broker_account_id=account, symbol="AAPL", amount=D(-500),
                    realized_at=MONDAY - timedelta(days=3)),  # Friday: another trading day
    ])
    session.flush()
    booked = [{"user_id": uid, "fill_id": written.id, "amount": D(-30), "realized_at": MONDAY},  # already written
              {"user_id": uid, "fill_id": queued.id, "amount": D(-15), "realized_at": MONDAY}]   # queued only
    held = PositionRow({**{c: None for c in PositionRow.COLUMNS}, "id": 999, "user_id": uid,
                        "broker_account_id": account, "symbol": "AAPL", "asset_class": "stock", "quantity": D(10),
                        "avg_price": D(100), "last_price": D(96), "realized_pnl": D(0), "fees": D(0)})
    profiles = [ProfileRow(r._mapping) for r in session.connection().execute(
        sa.select(RiskProfileRecord.__table__).where(RiskProfileRecord.__table__.c.user_id == uid))]
    realized, unrealized, positions = loss_guard.today_pnl(session.connection(), profiles, MONDAY, held=[held],
                                                           booked=booked)
    assert realized[uid] == D(-45) and unrealized[uid] == D(-40)
    assert [p.id for p in positions[uid]] == [999]


def test_a_change_is_claimed_by_one_transaction_only(session):
    world = seed_world(session, profile={"daily_loss_limit": D(100)})
    conn = session.connection()
    table = RiskProfileRecord.__table__
    read = ProfileRow(conn.execute(sa.select(table).where(table.c.id == world.profiles[0].id)).one()._mapping)
    conn.execute(sa.update(table).where(table.c.id == read.id).values(trading_state="HALTED"))  # someone else
    assert not loss_guard._claim(conn, read, "HALTED", "loss", MONDAY)
    read.trading_state = "HALTED"
    assert loss_guard._claim(conn, read, "ACTIVE", "test", MONDAY)


def test_without_a_daily_loss_limit_the_guard_costs_one_query(session, engine):
    world = seed_world(session)  # no daily loss limit
    session.commit()
    counter = StatementCounter(engine)
    result = loss_guard.check(session, Journal(), [world.followers[0].id], MONDAY, open_orders=lambda ids: [])
    assert result.changed == {} and counter.count == 1


def test_the_guard_reads_no_limits_the_caller_read_already(session, engine):
    world = seed_world(session)  # no daily loss limit
    session.commit()
    uid = world.followers[0].id
    counter = StatementCounter(engine)
    known = loss_guard.watched([uid], [])  # what submit's pipelined read found for this owner: nothing
    result = loss_guard.check(session, Journal(), [uid], MONDAY, open_orders=lambda ids: [], known=known)
    assert result.changed == {} and counter.count == 0
    other = loss_guard.watched([uid + 1000], [])  # it read someone else: this owner is read now
    loss_guard.check(session, Journal(), [uid], MONDAY, open_orders=lambda ids: [], known=other)
    assert counter.count == 1


def test_the_pipelined_read_of_limits_gives_the_rows_the_query_gives(pg_engine):
    with Session(pg_engine, expire_on_commit=False) as session:
        limited = seed_world(session, tag="lim", profile={"daily_loss_limit": D("50.5"), "reduce_at_loss_percent": D(80)})
        seed_world(session, tag="free")  # no limit: not watched
        halted = seed_world(session, tag="halt", profile={"daily_loss_limit": D(10), "trading_state": "HALTED",
                                                          "halted_on": MONDAY.date()})
        users = [w.followers[0].id for w in (limited, halted)] + [limited.followers[0].id + 500]
        conn = session.connection()
        sql, params = loss_guard.pipelined_read(users)
        [rows] = pipeline.read(conn, [(sql, params)])
        known = loss_guard.watched(users, rows)
        queried = [ProfileRow(r._mapping) for r in conn.execute(loss_guard._WATCHED, {"users": sorted(users)})]
    assert [p.user_id for p in known.profiles] == [limited.followers[0].id]
    assert [p._values() for p in known.profiles] == [p._values() for p in queried]
    assert known.profiles[0].daily_loss_limit == D("50.5") and known.profiles[0].updated_at.tzinfo is not None


def test_a_breach_found_by_the_guard_halts_notifies_and_plans_the_flatten(session):
    world = seed_world(session, profile={"daily_loss_limit": D(50), "flatten_on_daily_loss": True})
    uid, account = world.followers[0].id, world.accounts[0].id
    fill = _fill(session, world, "stop")
    session.commit()
    held = PositionRow({**{c: None for c in PositionRow.COLUMNS}, "id": 1000, "user_id": uid,
                        "broker_account_id": account, "symbol": "MSFT", "asset_class": "stock", "quantity": D(5),
                        "avg_price": D(100), "last_price": D(100), "realized_pnl": D(0), "fees": D(0)})
    journal = Journal()
    cancels: set[int] = set()
    result = loss_guard.after_fills(session, journal, [held], [
        {"user_id": uid, "fill_id": fill.id, "amount": D(-60), "realized_at": MONDAY}], MONDAY,
        open_orders=lambda ids: [], venue_cancels=cancels)
    assert result.changed == {uid: "HALTED"}
    [flatten] = session.exec(select(Order).where(Order.leg == "flatten")).all()
    assert (flatten.symbol, flatten.side, flatten.quantity, flatten.reduce_only) == ("MSFT", "sell", D(5), True)
    assert result.submit_ids == [flatten.id]
    [note] = journal.writes._inserts[Notification.__table__]
    assert note["kind"] == "risk.halted" and "-$60.00" in note["body"]
    row = session.get(RiskProfileRecord, world.profiles[0].id)
    session.refresh(row)
    assert row.trading_state == "HALTED" and row.halted_on == MONDAY.date()
    again = loss_guard.after_fills(session, Journal(), [held], [], MONDAY, open_orders=lambda ids: [],
                                   venue_cancels=set())
    assert again.changed == {}  # halted already: no second halt, no second flatten


# --- sizing precedence ---------------------------------------------------------------------------
def test_sizing_precedence_follow_profile_source_default():
    source = SignalSource(community_id=1, provider_id=1, name="s", default_sizing_mode="fixed_notional",
                          default_sizing_value=D(500))
    bare = SignalSource(community_id=1, provider_id=1, name="s", default_sizing_value=None)
    follow = Follow(follower_id=1, source_id=1)
    override = Follow(follower_id=1, source_id=1, sizing_mode="fixed_units", sizing_value=D(3))
    explicit = _profile(sizing_mode="risk_percent", sizing_value=D(1))
    unset = _profile()  # a profile saved for its limits, sizing left to the provider
    assert unset.sizing_mode == "provider_default"
    assert sizing_for(explicit, override, source) == ("fixed_units", D(3), "follow")
    assert sizing_for(explicit, follow, source) == ("risk_percent", D(1), "profile")
    assert sizing_for(unset, follow, source) == ("fixed_notional", D(500), "source")
    assert sizing_for(unset, follow, bare) == ("percent_equity", D(2), "default")
