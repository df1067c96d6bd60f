"""``Journal.commit``: the queued rows, the audit chain and the COMMIT, with one round trip fewer on Postgres
(the last write travels with the COMMIT), and exactly the old outcome otherwise: all or nothing."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from backend.audit import verify
from backend.db.models import AuditEvent, Notification
from backend.execution.journal import Journal
from backend.execution.seeding import StatementCounter, seed_world

NOW = datetime(2025, 3, 3, 15, 0, tzinfo=timezone.utc)


def _note(user_id: int, title: str) -> dict:
    return {"user_id": user_id, "kind": "test", "title": title, "body": "", "data": {}, "created_at": NOW,
            "read_at": None, "dm_status": "pending"}


def _journal(user_id: int, title: str) -> Journal:
    journal = Journal()
    journal.insert(Notification, _note(user_id, title))
    journal.audit("test.written", subject_type="notification", data={"title": title})
    journal.audit("test.written.again", subject_type="notification", data={"title": title})
    return journal


def _titles(engine) -> list[str]:
    with Session(engine) as s:
        return sorted(s.exec(select(Notification.title)).all())


def test_commit_writes_rows_and_chain_with_one_round_trip_fewer_on_postgres(engine):
    with Session(engine, expire_on_commit=False) as s:
        user = seed_world(s).followers[0].id
    counter = StatementCounter(engine)
    with Session(engine) as session:
        _journal(user, "old way").flush_audit(session)
        session.commit()
    old_trips = counter.round_trips
    with Session(engine) as session:
        _journal(user, "new way").commit(session)
    new_trips = counter.round_trips - old_trips
    assert _titles(engine) == ["new way", "old way"]
    result = verify(engine)
    assert (result.ok, result.checked) == (True, 4), result.problem
    if engine.dialect.name == "postgresql":
        # [writes + chain lock, tail] then [audit rows + writes, COMMIT]; flush_audit + commit took three
        assert (old_trips, new_trips) == (3, 2)
    else:
        assert new_trips == old_trips


def test_a_failing_last_write_commits_nothing_and_raises_sqlalchemys_error(engine):
    with Session(engine, expire_on_commit=False) as s:
        user = seed_world(s).followers[0].id
    journal = _journal(user, "kept out")
    journal.insert(Notification, _note(987654, "no such user"))  # a foreign-key violation in the same statement
    with Session(engine) as session:
        with pytest.raises(sa.exc.IntegrityError):
            journal.commit(session)
        session.rollback()
        _journal(user, "next one").commit(session)  # the session (and its connection) go on as usual
    assert _titles(engine) == ["next one"]
    with Session(engine) as s:
        assert s.exec(select(sa.func.count()).select_from(AuditEvent)).one() == 2
    assert verify(engine).ok


def test_pending_orm_changes_are_committed_with_the_journal(engine):
    with Session(engine, expire_on_commit=False) as s:
        user = seed_world(s).followers[0].id
    with Session(engine) as session:
        session.add(Notification(**_note(user, "through the ORM")))
        _journal(user, "through the journal").commit(session)
    assert _titles(engine) == ["through the ORM", "through the journal"]


def test_a_late_statement_must_not_need_bind_processing():
    from sqlalchemy.dialects import postgresql

    from backend.db.models import Position
    from backend.execution import pipeline
    from backend.execution.intake import CURSOR_ADVANCE

    dialect = postgresql.psycopg.dialect()
    assert "UPDATE signal_sources" in pipeline.driver_sql(CURSOR_ADVANCE, dialect)
    money = sa.update(Position.__table__).values(quantity=sa.bindparam("q", type_=Position.__table__.c.quantity.type))
    with pytest.raises(ValueError, match="bind processing"):
        pipeline.driver_sql(money, dialect)
