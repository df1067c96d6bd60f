"""Appending to the hash-chained audit log.

Every event stores ``hash = sha256(canonical JSON of its content + prev_hash)``
where ``prev_hash`` is the hash of the event before it (``"0" * 64`` for the
first).  Editing, deleting or reordering any row breaks the chain from that
row on, and ``backend.audit.verify`` names where.

Appends happen in the caller's transaction (nothing here commits), so an
order and its audit events land together or not at all.  One chain means
one writer at a time: on Postgres ``pg_advisory_xact_lock(CHAIN_LOCK_ID)``
serialises appenders until their transaction ends; on SQLite a no-op UPDATE
takes the database write lock before the tail is read.  The lock is held to
the end of the caller's transaction, so callers should record their events
late, just before committing.  ``seq`` is unique as a last line of defence.

``record_many`` is the fast path for fan-outs (one signal, a thousand
followers): hashes are computed in Python and the rows go in one bulk
INSERT under a single lock; ``append_many`` does the same without reading
the rows back.  The execution engine's journal goes further on Postgres: it
takes the lock in a statement it sends anyway, reads the tail right after it
(``TAIL_SQL``), and inserts ``chained_rows`` with its own other writes.

Credentials never enter the log: ``data`` is passed through
``backend.security.redact.redact_data`` before it is hashed and stored.
"""

from __future__ import annotations

import hashlib
import json
import math
import weakref
from datetime import date, datetime, timezone
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlmodel import Session

from backend.db.models import AuditEvent
from backend.db.types import utcnow
from backend.errors import ValidationError
from backend.security import redact as _redact_module
from backend.security.redact import REDACTED, is_secret_key, redact

GENESIS_HASH = "0" * 64
CHAIN_LOCK_ID = 0x61756469745F6368  # "audit_ch": the advisory lock every appender takes on Postgres

_EVENT_KEYS = frozenset({"action", "subject_type", "subject_id", "data", "actor_user_id", "community_id"})
_LIMITS = {"action": 64, "subject_type": 32, "subject_id": 64}


# ------------------------------------------------------------------ hashing
def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return iso_utc(value) if value.tzinfo else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    return str(value)


def iso_utc(value: datetime) -> str:
    return value.astimezone(timezone.utc).isoformat(timespec="microseconds")


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_json_default)


def _json_safe(value: Any) -> Any:
    """The exact JSON value that will be stored, so what is hashed is what is read back."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, (str, int, float)):
        return value
    return _json_safe(json.loads(canonical_json(value)))


def event_hash(fields: dict[str, Any]) -> str:
    """sha256 over the canonical JSON of an event's content and its ``prev_hash``."""
    payload = {
        "seq": fields["seq"],
        "created_at": iso_utc(fields["created_at"]),
        "actor_user_id": fields["actor_user_id"],
        "community_id": fields["community_id"],
        "action": fields["action"],
        "subject_type": fields["subject_type"],
        "subject_id": fields["subject_id"],
        "data": fields["data"],
        "prev_hash": fields["prev_hash"],
    }
    return hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()


# ------------------------------------------------------------------ appending
class _Redactor:
    """``redact_data`` with memory: the audit log sees the same keys and short values over and over
    (a fan-out writes thousands of events; redacting each string anew took a third of the audit time).

    Exactly ``redact_data``'s result, built from the same ``is_secret_key`` and ``redact``: those are
    pure functions of their input and of the process's registered secrets, so the caches are dropped
    whenever ``register_secret`` replaces the registered tuple (read, never written, here); only
    short strings are kept.
    """

    MAX_CACHED = 20_000

    def __init__(self) -> None:
        self._registered: Any = None
        self._keys: dict[str, bool] = {}
        self._texts: dict[str, str] = {}

    def __call__(self, obj: Any) -> Any:
        registered = _redact_module._registered
        if registered is not self._registered or len(self._texts) > self.MAX_CACHED:
            self._registered, self._keys, self._texts = registered, {}, {}
        return self._walk(obj)

    def _walk(self, obj: Any) -> Any:
        if isinstance(obj, dict):
            return {k: (REDACTED if v is not None and self._secret_key(k) else self._walk(v)) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return [self._walk(v) for v in obj]
        if isinstance(obj, str):
            if len(obj) > 200:
                return redact(obj)
            done = self._texts.get(obj)
            if done is None:
                done = self._texts[obj] = redact(obj)
            return done
        return obj

    def _secret_key(self, name: Any) -> bool:
        if not isinstance(name, str):
            return is_secret_key(name)
        found = self._keys.get(name)
        if found is None:
            found = self._keys[name] = is_secret_key(name)
        return found


_redact_data = _Redactor()


def _prepare(event: dict[str, Any]) -> dict[str, Any]:
    unknown = set(event) - _EVENT_KEYS
    if unknown:
        raise ValidationError(f"unknown audit event keys: {', '.join(sorted(unknown))}", field=sorted(unknown)[0])
    action = event.get("action")
    if not action or not isinstance(action, str):
        raise ValidationError("an audit event needs an action", field="action")
    subject_id = event.get("subject_id")
    row = {
        "action": action,
        "subject_type": event.get("subject_type"),
        "subject_id": None if subject_id is None else str(subject_id),
        "actor_user_id": event.get("actor_user_id"),
        "community_id": event.get("community_id"),
        "data": _json_safe(_redact_data(event.get("data") or {})),
    }
    for name, limit in _LIMITS.items():
        if row[name] is not None and len(row[name]) > limit:
            raise ValidationError(f"audit {name} is longer than {limit} characters", field=name)
    return row


# Built once: constructing a statement costs more Python time than its loopback round trip.
_PG_LOCK = sa.text("SELECT pg_advisory_xact_lock(:k)")
_SQLITE_LOCK = sa.text("UPDATE audit_events SET seq = seq WHERE 0")
_TAIL = sa.select(AuditEvent.seq, AuditEvent.hash).order_by(AuditEvent.seq.desc()).limit(1)
_INSERT = sa.insert(AuditEvent.__table__)


def _lock_chain(conn: sa.Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(_PG_LOCK, {"k": CHAIN_LOCK_ID})
    else:  # SQLite: any write statement takes the database write lock for the rest of the transaction
        conn.execute(_SQLITE_LOCK)


def _tail(conn: sa.Connection) -> tuple[int, str]:
    row = conn.execute(_TAIL).first()
    return (row.seq, row.hash) if row else (0, GENESIS_HASH)


def append_many(session: Session, events: list[dict[str, Any]], *,
                lock_taken: bool = False) -> tuple[int, int] | None:
    """Append ``events`` in order without reading them back; returns their (first, last) ``seq``.

    Three statements however many events (lock, tail, one INSERT), usually two
    on Postgres (see ``_append_postgres``).  ``lock_taken``: the caller's
    transaction already holds the chain's lock (``pg_advisory_xact_lock(CHAIN_LOCK_ID)``,
    taken by an earlier statement, never by the one that reads the tail).
    """
    if not events:
        return None
    prepared = [_prepare(event) for event in events]  # validate before taking the lock
    conn = session.connection()
    if not lock_taken:
        _lock_chain(conn)
    now = utcnow()
    from backend.execution.bulk import supported

    if supported(conn):
        return _append_postgres(conn, prepared, now)
    seq, prev_hash = _tail(conn)
    first = _chain(prepared, seq, prev_hash, now)
    conn.execute(_INSERT, prepared)
    return first, prepared[-1]["seq"]


def _chain(rows: list[dict[str, Any]], seq: int, prev_hash: str, now) -> int:
    """Number and hash ``rows`` after the event (seq, prev_hash); returns the first new seq."""
    first = seq + 1
    for row in rows:
        seq += 1
        row["seq"], row["created_at"], row["prev_hash"] = seq, now, prev_hash
        row["hash"] = prev_hash = event_hash(row)
    return first


# The tail this process appended last, per engine: usually still the tail when it appends again, which
# spares reading it (see ``_append_postgres``).  Only a hint: every use is checked by the database.
_last_tail: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_TAIL_IS = ("EXISTS (SELECT 1 FROM audit_events WHERE seq = %(tail_seq)s AND hash = %(tail_hash)s) "
            "AND NOT EXISTS (SELECT 1 FROM audit_events WHERE seq > %(tail_seq)s)")
_EMPTY = "NOT EXISTS (SELECT 1 FROM audit_events)"


TAIL_SQL = "SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1"  # the tail, for a ``pipeline`` read
LOCK_SQL = "pg_advisory_xact_lock(%(audit_lock)s)"                       # the lock, in a SELECT list


def chained_rows(events: list[dict[str, Any]], tail: tuple[int, str] | None) -> list[dict[str, Any]]:
    """``events`` as audit rows chained after ``tail`` ((seq, hash) read under the chain's lock, None for
    an empty chain), for the caller to insert before its transaction commits; then ``remember_tail``."""
    rows = [_prepare(event) for event in events]
    _chain(rows, *(tail or (0, GENESIS_HASH)), utcnow())
    return rows


def remember_tail(conn: sa.Connection, rows: list[dict[str, Any]]) -> None:
    _last_tail[conn.engine] = (rows[-1]["seq"], rows[-1]["hash"])


def _append_postgres(conn: sa.Connection, rows: list[dict[str, Any]], now) -> tuple[int, int]:
    """One INSERT for all the events, usually without reading the tail first.

    With the chain's lock held, the events are chained after the tail this
    process wrote last and inserted by a statement that adds them only if that
    is still the tail (its snapshot is taken after the lock, so it sees every
    committed append).  If another process appended since, or that transaction
    rolled back, nothing is inserted: the tail is read and the insert redone.
    """
    from backend.execution.bulk import bulk_insert, insert_where  # one statement however many events

    hint = _last_tail.get(conn.engine)
    if hint is not None:
        seq, prev_hash = hint
        first = _chain(rows, seq, prev_hash, now)
        guard = (_TAIL_IS, {"tail_seq": seq, "tail_hash": prev_hash}) if seq else (_EMPTY, {})
        if insert_where(conn, AuditEvent.__table__, rows, *guard) == len(rows):
            _last_tail[conn.engine] = (rows[-1]["seq"], rows[-1]["hash"])
            return first, rows[-1]["seq"]
    first = _chain(rows, *_tail(conn), now)
    bulk_insert(conn, AuditEvent.__table__, rows)
    _last_tail[conn.engine] = (rows[-1]["seq"], rows[-1]["hash"])
    return first, rows[-1]["seq"]


def record_many(session: Session, events: list[dict[str, Any]]) -> list[AuditEvent]:
    """Append ``events`` (dicts of ``record``'s keyword arguments plus ``action``) in order.

    Returns the stored rows as ORM objects (read back in one SELECT); callers
    that do not need them use ``append_many``.
    """
    span = append_many(session, events)
    if span is None:
        return []
    query = (
        sa.select(AuditEvent)
        .where(AuditEvent.seq.between(*span))
        .order_by(AuditEvent.seq)
        .execution_options(populate_existing=True)
    )
    return list(session.scalars(query))


def record(
    session: Session,
    action: str,
    *,
    subject_type: str | None = None,
    subject_id: str | int | None = None,
    data: dict | None = None,
    actor_user_id: int | None = None,
    community_id: int | None = None,
) -> AuditEvent:
    """Append one event in the caller's transaction (does not commit)."""
    return record_many(session, [{
        "action": action, "subject_type": subject_type, "subject_id": subject_id, "data": data,
        "actor_user_id": actor_user_id, "community_id": community_id,
    }])[0]
