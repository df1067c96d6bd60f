"""The execution journal's fast audit paths keep one unbroken chain, whoever appends in between."""

from __future__ import annotations

import threading

import sqlalchemy as sa
from sqlmodel import Session

from backend.audit import record, verify
from backend.audit.chain import CHAIN_LOCK_ID, TAIL_SQL
from backend.db.session import session_scope
from backend.execution import pipeline
from backend.execution.journal import Journal


def _journal_append(engine, n: int, *, tail_first: bool = False) -> None:
    journal = Journal()
    for i in range(n):
        journal.audit("journal.event", subject_type="test", subject_id=i, data={"i": i, "token": "hide-me"})
    with Session(engine) as session:
        if tail_first and pipeline.available(session.connection()):
            rows = pipeline.read(session.connection(), [("SELECT pg_advisory_xact_lock(%(k)s)", {"k": CHAIN_LOCK_ID}),
                                                        (TAIL_SQL, {})])
            journal.flush_audit(session, tail=rows[1][0] if rows[1] else None)
        else:
            journal.flush_audit(session)
        session.commit()


def test_journal_appends_interleaved_with_another_process_keep_the_chain(engine):
    other = sa.create_engine(engine.url)  # a second "process": it has its own idea of the tail
    try:
        _journal_append(engine, 3)
        with session_scope(other) as session:
            record(session, "elsewhere")
        _journal_append(engine, 2)              # the tail this process remembers is stale now
        _journal_append(engine, 2, tail_first=True)
        with session_scope(other) as session:
            record(session, "elsewhere again")
        _journal_append(engine, 1, tail_first=True)
    finally:
        other.dispose()
    result = verify(engine)
    assert (result.ok, result.checked) == (True, 10), result.problem
    with engine.connect() as conn:
        data = conn.execute(sa.text("SELECT data FROM audit_events WHERE action = 'journal.event' LIMIT 1")).scalar_one()
    assert "hide-me" not in str(data)  # redacted as ``record`` would


def test_a_rolled_back_append_does_not_break_the_next_one(engine):
    journal = Journal()
    journal.audit("discarded")
    with Session(engine) as session:
        journal.flush_audit(session)
        session.rollback()                      # the remembered tail now names a row that does not exist
    _journal_append(engine, 2)
    result = verify(engine)
    assert (result.ok, result.checked) == (True, 2), result.problem


def test_concurrent_journal_and_record_appends_on_postgres(pg_engine):
    errors: list[Exception] = []

    def run(target) -> None:
        try:
            target()
        except Exception as exc:  # surfaced by the assertion below
            errors.append(exc)

    def journals() -> None:
        for n in range(15):
            _journal_append(pg_engine, 3, tail_first=n % 2 == 0)

    def records() -> None:
        for i in range(30):
            with session_scope(pg_engine) as session:
                record(session, "single", data={"i": i})

    threads = [threading.Thread(target=run, args=(t,)) for t in (journals, records, journals)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    result = verify(pg_engine)
    assert (result.ok, result.checked) == (True, 120), result.problem
