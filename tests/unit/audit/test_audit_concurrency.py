"""Several processes append at once: the chain stays one unbroken line."""

from __future__ import annotations

import threading

from backend.audit import record, record_many, verify
from backend.db.session import session_scope


def _append(engine, worker: str, count: int, errors: list) -> None:
    try:
        for i in range(count):
            with session_scope(engine) as session:
                record(session, "test.append", subject_type="worker", subject_id=worker, data={"i": i})
    except Exception as exc:  # surfaced by the assertion below
        errors.append(exc)


def _run_concurrently(targets) -> None:
    threads = [threading.Thread(target=t) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)


def test_two_writers_of_200_events_each_on_postgres_keep_one_chain(pg_engine):
    errors: list = []
    _run_concurrently([lambda w=w: _append(pg_engine, w, 200, errors) for w in ("web", "bot")])

    assert errors == []
    result = verify(pg_engine)
    assert (result.ok, result.checked) == (True, 400), result.problem


def test_concurrent_writers_on_both_databases_with_batches_and_singles(engine):
    errors: list = []

    def batches():
        try:
            for n in range(10):
                with session_scope(engine) as session:
                    record_many(session, [{"action": "fanout", "data": {"n": n, "k": k}} for k in range(30)])
        except Exception as exc:
            errors.append(exc)

    _run_concurrently([batches, lambda: _append(engine, "scheduler", 60, errors)])

    assert errors == []
    result = verify(engine)
    assert (result.ok, result.checked) == (True, 360), result.problem
