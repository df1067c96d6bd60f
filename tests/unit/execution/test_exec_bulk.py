"""The bulk write paths: the same rows stored on both databases, one statement on Postgres."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal as D

import pytest
from sqlmodel import Session, select

from backend.db.models import Notification, Order, RiskDecisionRecord, Signal
from backend.execution.bulk import Writes
from backend.execution import loading, pipeline
from backend.execution.ids import draw_ids
from backend.execution.intake import signal_row
from backend.execution.planner import order_fields
from backend.execution.seeding import StatementCounter, seed_world
from backend.execution.sqlutil import insert_ignore, insert_rows

NOW = datetime(2026, 11, 2, 15, 0, tzinfo=timezone.utc)


def _orders(world, n: int, tag: str) -> list[dict]:
    return [order_fields(client_order_id=f"{tag}-{i}", user_id=world.followers[0].id,
                         broker_account_id=world.accounts[0].id, symbol="AAPL", side="buy",
                         quantity=D("1.123456789012"), leg="entry", now=NOW) for i in range(n)]


def test_insert_ignore_returns_only_new_rows_and_keeps_decimals(session):
    world = seed_world(session)
    first = insert_ignore(session, Order, _orders(world, 3, "a"), conflict=("client_order_id",),
                          returning=("id", "client_order_id"))
    again = insert_ignore(session, Order, _orders(world, 4, "a"), conflict=("client_order_id",),
                          returning=("id", "client_order_id"))
    session.commit()
    assert [cid for _, cid in first] == ["a-0", "a-1", "a-2"] and [cid for _, cid in again] == ["a-3"]
    stored = session.exec(select(Order).order_by(Order.id)).all()
    assert [o.quantity for o in stored] == [D("1.1234567890")] * 4  # the column's scale, as the ORM stores it


def test_insert_rows_applies_column_defaults_and_returns_ids_in_input_order(session):
    world = seed_world(session)
    rows = [{"user_id": world.followers[0].id, "kind": "k", "title": f"t{i}"} for i in range(5)]
    ids = [row.id for row in insert_rows(session, Notification, rows, returning=("id",))]
    session.commit()
    stored = {n.id: n for n in session.exec(select(Notification)).all()}
    assert [stored[i].title for i in ids] == [f"t{i}" for i in range(5)]
    assert all(n.body == "" and n.data == {} and n.created_at is not None for n in stored.values())


def test_writes_merge_updates_of_a_row_and_send_one_statement_on_postgres(engine):
    with Session(engine, expire_on_commit=False) as session:
        world = seed_world(session)
        ids = [r.id for r in insert_ignore(session, Order, _orders(world, 3, "w"), conflict=("client_order_id",),
                                           returning=("id",))]
        session.commit()
    counter = StatementCounter(engine)
    writes = Writes()
    writes.update(Order.__table__, [{"id": ids[0], "status": "submitted"}])
    writes.update(Order.__table__, [{"id": ids[0], "attempts": 1}, {"id": ids[1], "status": "cancelled"}])
    writes.delete(Order.__table__, [ids[2]])
    writes.insert(Notification.__table__, [{"user_id": world.followers[0].id, "kind": "k", "title": "x"}])
    with Session(engine) as session:
        before = counter.count
        writes.flush(session.connection())
        sent = counter.count - before
        session.commit()
        orders = {o.id: o for o in session.exec(select(Order)).all()}
        assert (orders[ids[0]].status, orders[ids[0]].attempts) == ("submitted", 1)
        assert orders[ids[1]].status == "cancelled" and ids[2] not in orders
        assert len(session.exec(select(Notification)).all()) == 1
    assert sent == (1 if engine.dialect.name == "postgresql" else 4)


def test_ids_drawn_ahead_are_fresh_and_a_duplicate_signal_draws_none(pg_engine):
    with Session(pg_engine, expire_on_commit=False) as session:
        if not pipeline.available(session.connection()):
            pytest.skip("the signal is stored with the reads only in a pipeline")
        world = seed_world(session, followers=2)
        pool = draw_ids(session.connection(), {"orders": 3, "risk_decisions": 2})
        assert pool.take("orders", 4) is None and len(pool.take("orders", 3)) == 3
        assert pool.take("risk_decisions", 2) and pool.take("risk_decisions", 1) is None
        row = signal_row(None, source_message_id="m1", text="Buy AAPL", parsed=None, sent_at=NOW, author_id=None,
                         now=NOW)
        first = loading.read(session, channel=world.source.discord_channel_id, instrument="AAPL",
                             open_orders=False, signal=row, legs_per_follower=4)
        again = loading.read(session, channel=world.source.discord_channel_id, instrument="AAPL",
                             open_orders=False, signal=row, legs_per_follower=4)
        session.commit()
        stored = session.exec(select(Signal)).one()
    signal_id, drawn = first.stored
    assert signal_id == stored.id and (stored.status, stored.source_id) == ("received", world.source.id)
    assert len(drawn.take("risk_decisions", 2)) == 2 and len(drawn.take("orders", 8)) == 8
    assert again.stored == (None, None) and len(again.pairs) == 2


@pytest.mark.parametrize("n", [1, 1200])
def test_decisions_with_json_survive_the_array_path(engine, n):
    with Session(engine, expire_on_commit=False) as session:
        world = seed_world(session)
        signal = Signal(source_id=world.source.id, source_message_id="m", raw_text="x", status="received",
                        received_at=NOW)
        session.add(signal)
        session.commit()
        rows = [{"signal_id": signal.id, "follower_id": world.followers[0].id, "approved": True,
                 "quantity": D(i), "reasons": [{"code": "ok", "message": 'quote " and \\ backslash'}],
                 "inputs": {"i": i, "nested": {"price": "1.5"}}, "created_at": NOW} for i in range(n)]
        # one follower: only the first row goes in, the rest conflict on (signal, follower)
        got = insert_ignore(session, RiskDecisionRecord, rows, conflict=("signal_id", "follower_id"),
                            returning=("id", "follower_id"))
        session.commit()
        stored = session.exec(select(RiskDecisionRecord)).one()
    assert len(got) == 1 and stored.reasons[0]["message"] == 'quote " and \\ backslash'
    assert stored.inputs == {"i": 0, "nested": {"price": "1.5"}}
