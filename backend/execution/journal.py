"""What a unit of work tells the rest of the world: audit events and bus pushes.

The execution engine does its writes in a few large transactions (a fan-out
to a thousand followers is one).  Rows nobody reads back before the commit
(order events, notifications, order and position updates ...) are queued
here and written together at ``flush_audit``, with the audit events, in the
*same* transaction, so the chain never records a step that was rolled back;
bus events are published only *after* the commit, so a dashboard never
shows an order the database does not have.

Bus events are coalesced per (user, type, key): a fill that moves an order
through submitted -> filled in one transaction pushes one ``order.updated``
with the final state, not two.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from backend.db.models import AuditEvent
from backend.execution import pipeline
from backend.execution.bulk import Writes

log = logging.getLogger(__name__)

_NO_TAIL = object()
_ASYNC_COMMIT = "set_config('synchronous_commit', 'off', true)"


def _table(model: Any) -> sa.Table:
    return getattr(model, "__table__", model)


@dataclass
class Journal:
    audit_events: list[dict[str, Any]] = field(default_factory=list)
    _bus: dict[tuple[int, str, str], dict[str, Any]] = field(default_factory=dict)
    writes: Writes = field(default_factory=Writes)
    _chained: list[dict[str, Any]] | None = field(default=None, repr=False)  # audit rows of the last statement
    _late: list[tuple[Any, dict[str, Any]]] = field(default_factory=list, repr=False)

    def insert(self, model: Any, row: dict[str, Any]) -> None:
        """Queue a row nobody needs the id of (order events, notifications), written at ``flush_audit``."""
        self.writes.insert(_table(model), (row,))

    def update(self, model: Any, rows: Iterable[dict[str, Any]]) -> None:
        """Queue updates by ``id`` of rows nobody reads again before the commit (``flush_audit`` writes them)."""
        self.writes.update(_table(model), rows)

    def late(self, statement: sa.Executable, params: dict[str, Any]) -> None:
        """A statement to run after the queued writes, just before the commit (nobody reads its result):
        on Postgres it travels in the COMMIT's round trip (``commit``).  A Core statement built once,
        whose parameters need no bind processing (``pipeline.driver_sql``), e.g. a conditional UPDATE."""
        self._late.append((statement, params))

    def audit(self, action: str, *, subject_type: str | None = None, subject_id: Any = None,
              data: dict[str, Any] | None = None, actor_user_id: int | None = None,
              community_id: int | None = None) -> None:
        self.audit_events.append({
            "action": action,
            "subject_type": subject_type,
            "subject_id": None if subject_id is None else str(subject_id),
            "data": data or {},
            "actor_user_id": actor_user_id,
            "community_id": community_id,
        })

    def push(self, user_id: int, event: dict[str, Any], *, key: Any = None) -> None:
        """Queue a bus event for ``user_id``; a later push with the same key replaces it."""
        self._bus[(user_id, event["type"], str(key))] = event

    def flush_audit(self, session: Session, *, durable: bool = True, tail: Any = _NO_TAIL) -> None:
        """Write the queued rows, then append the queued audit events, in the caller's transaction
        (call just before commit: the audit chain's lock is held until the commit).

        ``durable=False`` (Postgres): the commit returns before its WAL reaches the
        disk (``synchronous_commit = off`` for this transaction only).  Only for
        what a crash of the database server may lose because it is found again:
        recording a broker's answer, which ``runner.recover`` asks the broker for
        again (the order is still ``new``).  The WAL is written in order, so the
        next durable commit makes it durable too.

        On Postgres (psycopg) it takes two round trips: the queued writes with the
        chain's lock in one statement, the chain's tail read right after it (one
        ``pipeline`` round trip), then the audit rows.  ``tail``: the caller read
        the tail already, after taking the lock in an earlier statement (``audit.chain.
        TAIL_SQL``; None for an empty chain): one round trip, writes and audit rows
        together.  ``commit`` saves one more: the last of these travels with the COMMIT.
        """
        conn = session.connection()
        if not pipeline.available(conn):
            self._flush_one_by_one(session, durable)
            return
        last = self._last_statement(conn, durable, tail)
        if last is not None:
            conn.exec_driver_sql(*last)
        self._run_late(conn)
        self._tail_written(conn)

    def commit(self, session: Session, *, durable: bool = True, tail: Any = _NO_TAIL) -> None:
        """``flush_audit``, then ``session.commit()``; on Postgres the last write and the COMMIT go in
        one round trip (``pipeline.commit``; the COMMIT, and so durability, is the same).

        The ORM's pending changes would be flushed by ``session.commit()`` after the COMMIT, so a
        session holding any (new, changed or deleted objects) takes the two-step way instead.
        """
        conn = session.connection()
        if not pipeline.available(conn) or session.new or session.deleted or session.dirty:
            self.flush_audit(session, durable=durable, tail=tail)
            session.commit()
            return
        last = self._last_statement(conn, durable, tail)
        late = [(pipeline.driver_sql(stmt, conn.dialect), params) for stmt, params in self._late]
        if pipeline.commit(conn, ([last] if last is not None else []) + late) is not None:
            self._late = []
        else:
            if last is not None:
                conn.exec_driver_sql(*last)
            self._run_late(conn)
        self._tail_written(conn)
        session.commit()  # ends SQLAlchemy's transaction (the database's is already committed, usually)

    def _last_statement(self, conn: sa.Connection, durable: bool, tail: Any) -> tuple[str, dict[str, Any]] | None:
        """Postgres: send what must come first (the writes with the chain's lock, and the tail read,
        unless ``tail`` is given); return the last statement (writes and audit rows), not yet sent."""
        from backend.audit.chain import CHAIN_LOCK_ID, LOCK_SQL, TAIL_SQL, chained_rows

        late = [] if durable else [_ASYNC_COMMIT]
        self._chained = None
        if self.audit_events:
            if tail is _NO_TAIL:
                first = self.writes.statement(conn, [LOCK_SQL, *late])
                found = pipeline.read(conn, [(first, {**self.writes.params, "audit_lock": CHAIN_LOCK_ID}),
                                             (TAIL_SQL, {})])[1]
                tail, late = (found[0] if found else None), []
            self._chained = chained_rows(self.audit_events, tail)
            self.writes.insert(AuditEvent.__table__, self._chained)
            self.audit_events = []
        last = self.writes.statement(conn, late)
        return None if last is None else (last, self.writes.params)

    def _tail_written(self, conn: sa.Connection) -> None:
        from backend.audit.chain import remember_tail

        if self._chained:
            remember_tail(conn, self._chained)
        self._chained = None

    def _flush_one_by_one(self, session: Session, durable: bool) -> None:
        """SQLite (or another driver): the writes, then the chain's lock, tail and INSERT (``append_many``);
        commits stay durable."""
        from backend.audit.chain import append_many

        self.writes.flush(session.connection())
        if self.audit_events:
            append_many(session, self.audit_events)
            self.audit_events = []
        self._run_late(session.connection())

    def _run_late(self, conn: sa.Connection) -> None:
        late, self._late = self._late, []
        for statement, params in late:
            conn.execute(statement, params)

    def publish(self) -> None:
        """Push the queued bus events (call after commit); a failed push never breaks the money path."""
        from backend.events import publish_to_user

        events, self._bus = self._bus, {}
        for (user_id, _type, _key), event in events.items():
            try:
                publish_to_user(user_id, event)
            except Exception as exc:  # noqa: BLE001 - the bus is best-effort by design
                log.warning("bus publish failed for user %s: %s", user_id, exc)
