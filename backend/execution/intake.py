"""Signals in: every message stored exactly once, and only fresh signals traded.

``ingest`` writes one ``signals`` row per (source, source message id) with
``INSERT ... ON CONFLICT DO NOTHING``: a redelivered Discord message or a
retried webhook finds the row already there and does nothing more (the
caller gets ``created=False``).  Every message is kept, so a channel's
history is complete, but only ``received`` ones are traded:

* ``ignored``: chatter (the parser said "not a signal"), or a paused source;
* ``stale``: older than the source's ``max_lag_seconds`` when it arrived
  (trading a 10-minute-old "buy" at today's price is a different trade);
  the auto-trading followers get a notification saying why;
* ``rejected``: the source exceeded its ``max_signals_per_minute`` (a
  runaway bot or a compromised account), or the parser failed.

Edits (``ingest_edit``) are recorded as ``signal_revisions``; an edited
signal NEVER trades a second time, even when its content changed: a
provider who wants a change posts a modify message ("move stop to 180").
Deletions are recorded (``deleted_at``); a signal deleted before its
fan-out ran is not traded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from backend.db.models import Follow, Notification, Signal, SignalRevision, SignalSource, SignalStatus
from backend.db.types import utcnow
from backend.execution.journal import Journal
from backend.execution.sqlutil import insert_ignore

log = logging.getLogger(__name__)

RECEIVED, DISPATCHED = SignalStatus.RECEIVED.value, SignalStatus.DISPATCHED.value

# The catch-up cursor moves forward only: snowflakes compared as numbers (length, then digits), in SQL, so
# that no writer can move it back.  Built once (``Journal.late`` sends it as driver SQL on Postgres).
_SOURCES = SignalSource.__table__
_CURSOR, _NEW = _SOURCES.c.last_message_id, sa.bindparam("cursor", type_=sa.String)
CURSOR_ADVANCE = (
    sa.update(_SOURCES)
    .where(_SOURCES.c.id == sa.bindparam("source_id", type_=sa.Integer),
           sa.or_(_CURSOR.is_(None), sa.func.length(_CURSOR) < sa.func.length(_NEW),
                  sa.and_(sa.func.length(_CURSOR) == sa.func.length(_NEW), _CURSOR < _NEW)))
    .values(last_message_id=_NEW)
)


def cursor_params(source_id: int, message_id: int | str) -> dict[str, Any]:
    """``CURSOR_ADVANCE``'s parameters: move ``source_id``'s cursor to ``message_id`` unless at or past it."""
    return {"source_id": source_id, "cursor": str(message_id)}
IGNORED, STALE, REJECTED = SignalStatus.IGNORED.value, SignalStatus.STALE.value, SignalStatus.REJECTED.value


@dataclass(frozen=True)
class Intake:
    signal_id: int
    status: str
    created: bool
    reason: str | None = None
    parsed: Any = None  # the parsed signal of a newly stored message
    ids: Any = None     # ``ids.IdPool`` drawn with the insert (``loading.read``), for its fan-out


def parse(text: str, now: datetime) -> tuple[Any | None, str | None]:
    """(parsed signal or None, error) - the parser promises not to raise; we do not bet money on it."""
    from backend.signals import parse_signal

    try:
        return parse_signal(text, now=now), None
    except Exception as exc:  # noqa: BLE001
        log.exception("signal parser failed")
        return None, f"The message could not be read ({type(exc).__name__})."


def _status(session: Session, source: SignalSource, parsed: Any, error: str | None,
            sent_at: datetime | None, now: datetime, stored: int | None = None) -> tuple[str, str | None]:
    """``stored``: this message's own row, inserted already (not counted against the rate limit)."""
    if error:
        return REJECTED, error
    if not source.active:
        return IGNORED, "The source is paused."
    if parsed is None:
        return IGNORED, "Not a trading signal."
    lag = (now - sent_at).total_seconds() if sent_at else 0.0
    if lag > source.max_lag_seconds:
        return STALE, (f"The signal arrived {lag:.0f} s after it was sent; signals older than "
                       f"{source.max_lag_seconds} s are not traded.")
    limit = source.max_signals_per_minute
    if limit:
        recent = session.execute(select(sa.func.count()).select_from(Signal).where(
            Signal.source_id == source.id, Signal.received_at >= now - timedelta(seconds=60),
            Signal.status.in_((RECEIVED, DISPATCHED)), Signal.id != (stored or 0))).scalar_one()
        if recent >= limit:
            return REJECTED, (f"{source.name} sent more than {limit} signals in a minute; this one was not "
                              "traded (runaway protection).")
    return RECEIVED, None


def signal_row(source_id: int | None, *, source_message_id: str, text: str, parsed: Any, sent_at: datetime | None,
               author_id: str | None, now: datetime, status: str = RECEIVED, reason: str | None = None) -> dict:
    """The ``signals`` row of a message (``source_id`` None: filled in by the statement that stores it)."""
    return {
        "source_id": source_id, "source_message_id": str(source_message_id)[:64],
        "author_id": None if author_id is None else str(author_id)[:32], "raw_text": text,
        "parsed": parsed.to_dict() if parsed is not None else None,
        "action": getattr(parsed, "action", None), "symbol": getattr(parsed, "symbol", None),
        "status": status, "status_reason": reason, "sent_at": sent_at, "received_at": now, "revision": 1,
    }


def ingest(session: Session, source: SignalSource, *, source_message_id: str, text: str,
           sent_at: datetime | None, journal: Journal, author_id: str | None = None,
           now: datetime | None = None, parsed: Any = None, parse_text: bool = True,
           error: str | None = None, stored: tuple[int | None, Any] | None = None) -> Intake:
    """Store a message once; ``parsed`` may be given (TradingView alerts are parsed by their own
    reader), or ``error`` saying why it could not be (stored as ``rejected``).

    ``stored``: the caller inserted the row already as ``received`` (``loading.read``, with the
    source, in one round trip): ``(its id, or None if the message was there before; the ids drawn
    for its fan-out)``.  Its final status is decided here and written with the journal's rows.
    """
    now = now or utcnow()
    if parsed is None and parse_text and error is None:
        parsed, error = parse(text, sent_at or now)
    signal_id, pool = stored if stored is not None else (None, None)
    status, reason = _status(session, source, parsed, error, sent_at, now, signal_id)
    row = signal_row(source.id, source_message_id=source_message_id, text=text, parsed=parsed, sent_at=sent_at,
                     author_id=author_id, now=now, status=status, reason=reason)
    if stored is None:
        inserted = insert_ignore(session, Signal, [row], conflict=("source_id", "source_message_id"),
                                 returning=("id",))
        signal_id = inserted[0].id if inserted else None
    elif signal_id is not None and (status, reason) != (RECEIVED, None):
        journal.update(Signal, [{"id": signal_id, "status": status, "status_reason": reason}])
        pool = None
    if signal_id is None:
        existing = session.execute(select(Signal.id, Signal.status, Signal.status_reason).where(
            Signal.source_id == source.id, Signal.source_message_id == row["source_message_id"])).one()
        return Intake(existing.id, existing.status, False, existing.status_reason)
    journal.audit("signal.received", subject_type="signal", subject_id=signal_id, community_id=source.community_id,
                  data={"source_id": source.id, "message_id": row["source_message_id"], "status": status,
                        "reason": reason, "action": row["action"], "symbol": row["symbol"]})
    if status == STALE:
        notify_followers(session, source, journal, kind="signal.stale", title=f"Signal from {source.name} not traded",
                         body=reason or "", data={"signal_id": signal_id}, now=now)
    return Intake(signal_id, status, True, reason, parsed, pool)


def ingest_edit(session: Session, source: SignalSource, *, source_message_id: str, text: str,
                journal: Journal, edited_at: datetime | None = None, now: datetime | None = None) -> Intake | None:
    """Record an edit; returns None when the original was never seen (nothing to attach it to)."""
    now = now or utcnow()
    signal = session.exec(select(Signal).where(Signal.source_id == source.id,
                                               Signal.source_message_id == str(source_message_id))).first()
    if signal is None:
        return None
    parsed, _error = parse(text, signal.sent_at or now)
    new = parsed.to_dict() if parsed is not None else None
    latest = signal.parsed
    if signal.revision > 1:
        prev = session.exec(select(SignalRevision).where(SignalRevision.signal_id == signal.id)
                            .order_by(SignalRevision.revision.desc())).first()
        latest = prev.parsed if prev else latest
    changed = new != latest
    signal.revision += 1
    signal.edited_at = edited_at or now
    session.add(SignalRevision(signal_id=signal.id, revision=signal.revision, raw_text=text, parsed=new,
                               changed=changed, received_at=now))
    journal.audit("signal.edited", subject_type="signal", subject_id=signal.id, community_id=source.community_id,
                  data={"revision": signal.revision, "changed": changed, "traded": False})
    if changed and signal.status == DISPATCHED:
        notify_followers(session, source, journal, kind="signal.edited",
                         title=f"{source.name} edited a signal",
                         body="The edit was recorded but not traded: an edited signal never trades twice. "
                              "Watch for a follow-up message from the provider.",
                         data={"signal_id": signal.id, "revision": signal.revision}, now=now)
    return Intake(signal.id, signal.status, False, "edit recorded, not traded")


def ingest_delete(session: Session, source: SignalSource, *, source_message_id: str, journal: Journal,
                  now: datetime | None = None) -> Intake | None:
    now = now or utcnow()
    signal = session.exec(select(Signal).where(Signal.source_id == source.id,
                                               Signal.source_message_id == str(source_message_id))).first()
    if signal is None:
        return None
    signal.deleted_at = now
    if signal.status == RECEIVED:  # deleted before anything was sent: do not trade it
        signal.status, signal.status_reason = IGNORED, "Deleted by the provider before it was traded."
    journal.audit("signal.deleted", subject_type="signal", subject_id=signal.id, community_id=source.community_id,
                  data={"status": signal.status})
    return Intake(signal.id, signal.status, False, signal.status_reason)


def notify_followers(session: Session, source: SignalSource, journal: Journal, *, kind: str, title: str,
                     body: str, data: dict[str, Any], now: datetime) -> int:
    """One notification per auto-trading follower of ``source`` (they would have traded)."""
    followers = session.exec(select(Follow.follower_id).where(Follow.source_id == source.id,
                                                             Follow.auto_trade.is_(True))).all()
    rows = [Notification(user_id=uid, kind=kind, title=title[:200], body=body, data=data, created_at=now,
                         dm_status="pending") for uid in followers]
    session.add_all(rows)
    session.flush()
    for note in rows:
        journal.push(note.user_id, {"type": "notification.created", "notification": {
            "id": note.id, "kind": kind, "title": note.title, "body": body}}, key=note.id)
    return len(rows)
