"""Checking the audit chain end to end.

Walks ``audit_events`` in ``seq`` order, a page at a time (keyset paging, so
memory stays flat on millions of rows), and stops at the first problem:

* a gap in ``seq``: an event was deleted (``first_bad_seq`` is the missing seq);
* ``prev_hash`` differs from the previous event's hash: the link was edited
  or events were spliced;
* the stored ``hash`` differs from the recomputed one: the event's content
  was altered.

What a chain alone cannot show is the removal of the *newest* events; keep
the ``head_hash`` of a run somewhere else (a ticket, a notarised log) to
catch that too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from backend.audit.chain import GENESIS_HASH, event_hash
from backend.db.models import AuditEvent

PAGE_SIZE = 2000

_COLUMNS = (
    AuditEvent.seq, AuditEvent.created_at, AuditEvent.actor_user_id, AuditEvent.community_id,
    AuditEvent.action, AuditEvent.subject_type, AuditEvent.subject_id, AuditEvent.data,
    AuditEvent.prev_hash, AuditEvent.hash,
)


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int
    first_bad_seq: int | None
    problem: str | None
    head_hash: str | None = None  # hash of the last event checked; worth recording elsewhere


def _pages(conn: Any, page_size: int):
    last_seq = None
    while True:
        query = sa.select(*_COLUMNS).order_by(AuditEvent.seq).limit(page_size)
        if last_seq is not None:
            query = query.where(AuditEvent.seq > last_seq)
        rows = conn.execute(query).all()
        if not rows:
            return
        yield rows
        last_seq = rows[-1].seq


def _walk(conn: Any, page_size: int) -> VerifyResult:
    checked, expected_seq, prev_hash = 0, 1, GENESIS_HASH
    for rows in _pages(conn, page_size):
        for row in rows:
            if row.seq != expected_seq:
                missing = f"{expected_seq}" if row.seq == expected_seq + 1 else f"{expected_seq}..{row.seq - 1}"
                return VerifyResult(False, checked, expected_seq,
                                    f"event missing: seq {missing} absent (next present is {row.seq})", prev_hash)
            if row.prev_hash != prev_hash:
                what = "the genesis value" if expected_seq == 1 else f"the hash of seq {expected_seq - 1}"
                return VerifyResult(False, checked, row.seq, f"broken link: prev_hash is not {what}", prev_hash)
            if event_hash(row._asdict()) != row.hash:
                return VerifyResult(False, checked, row.seq,
                                    "event altered: stored hash does not match its content", prev_hash)
            checked += 1
            expected_seq, prev_hash = row.seq + 1, row.hash
    return VerifyResult(True, checked, None, None, None if checked == 0 else prev_hash)


def verify(session_or_engine: Any, *, page_size: int = PAGE_SIZE) -> VerifyResult:
    """Verify the whole chain; accepts a Session, a Connection or an Engine."""
    if isinstance(session_or_engine, sa.Engine):
        with session_or_engine.connect() as conn:
            return _walk(conn, page_size)
    return _walk(session_or_engine, page_size)
