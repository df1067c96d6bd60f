"""Writing a follower's trading state: ACTIVE / REDUCING / HALTED, who set it, until when.

The ``risk_profiles`` row holds the state the money path obeys.  Three
things change it, all through ``change_state`` so each change is audited,
told to the follower (the Notifications page and a Discord DM) and pushed to
an open dashboard in the same way:

* the loss rule (``backend.risk.loss_change``) at a signal, a fill or a new
  mark: HALTED or REDUCING *for the trading day* (``halted_on`` = that day);
* the follower's close-only switch (``close_only``): REDUCING with no end;
* a new trading day: ``lift_if_expired`` ends a day-long state, back to
  ACTIVE, or to REDUCING when the close-only switch is on.  The fan-out
  does it before deciding, and the scheduler's ``lift_expired_job`` does it
  for everyone, so a dashboard does not show yesterday's halt all morning.

``row`` is a ``RiskProfileRecord`` or a plain ``loading.ProfileRow``: only
attributes are set; the caller's unit of work writes them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from backend.db.models import Notification, RiskProfileRecord
from backend.db.types import utcnow
from backend.execution.journal import Journal
from backend.risk import TradingState, halt_expired, next_trading_day, trading_day

ACTIVE, REDUCING, HALTED = (s.value for s in TradingState)
KINDS = {HALTED: "risk.halted", REDUCING: "risk.reducing", ACTIVE: "risk.resumed"}
TITLES = {HALTED: "Trading halted", REDUCING: "Close-only mode", ACTIVE: "Trading resumed"}
CLOSE_ONLY_REASON = ("Close-only mode is on (your setting): no new positions are opened; closing, moving stops "
                     "and cancelling still work.")
NEW_DAY_REASON = "A new trading day began."


def notification_row(user_id: int, kind: str, title: str, body: str, now: datetime,
                     data: dict[str, Any]) -> dict[str, Any]:
    """A ``notifications`` row for ``Journal.insert``: shown in the inbox and sent as a DM (``notify``)."""
    return {"user_id": user_id, "kind": kind, "title": title[:200], "body": body, "data": data,
            "created_at": now, "read_at": None, "dm_status": "pending"}


def until_text(row: Any) -> str:
    if row.halted_on is None:
        return ""
    return f" It lifts at the start of {next_trading_day(row.halted_on):%A %d %B} ({row.market_tz})."


def change_state(journal: Journal, row: Any, to: str, reason: str | None, now: datetime, *,
                 for_the_day: bool, flatten: bool = False, notify: bool = True) -> str:
    """Set ``row``'s state, audit it, notify the follower; returns the state it had before.

    ``for_the_day``: the engine's own change, which lasts until the next
    trading day (``halted_on``); otherwise it lasts until changed again.
    """
    before = row.trading_state
    row.trading_state = to
    row.state_reason = reason[:500] if reason else None
    row.halted_on = trading_day(now, row.market_tz) if for_the_day and to != ACTIVE else None
    row.updated_at = now
    journal.audit("risk.state_changed", subject_type="user", subject_id=row.user_id, actor_user_id=row.user_id,
                  data={"from": before, "to": to, "reason": row.state_reason, "flatten": flatten,
                        "until": str(next_trading_day(row.halted_on)) if row.halted_on else None})
    if notify:
        body = (row.state_reason or "") + until_text(row)
        if flatten:
            body += " Your open positions are being closed."
        journal.insert(Notification, notification_row(row.user_id, KINDS[to], TITLES[to], body.strip(), now,
                                                      {"state": to, "from": before, "flatten": flatten}))
    journal.push(row.user_id, {"type": "risk.state_changed", "state": to, "reason": row.state_reason},
                 key="state")
    return before


def resting_state(row: Any) -> tuple[str, str | None]:
    """Where an account goes when a day-long state ends: ACTIVE, or REDUCING under the close-only switch."""
    return (REDUCING, CLOSE_ONLY_REASON) if getattr(row, "close_only", False) else (ACTIVE, None)


def lift_if_expired(journal: Journal, row: Any, now: datetime) -> bool:
    """End a day-long HALTED/REDUCING once a new trading day has begun; True when it did."""
    if row.trading_state == ACTIVE or row.halted_on is None or not halt_expired(row.halted_on, now, row.market_tz):
        return False
    to, reason = resting_state(row)
    change_state(journal, row, to, reason or NEW_DAY_REASON, now, for_the_day=False)
    if to == ACTIVE:
        row.state_reason = None
    return True


def lift_expired(engine: sa.Engine, *, now: datetime | None = None) -> int:
    """Lift every expired day-long state (the scheduler's job); returns how many were lifted."""
    now = now or utcnow()
    journal = Journal()
    with Session(engine, expire_on_commit=False) as session:
        stmt = select(RiskProfileRecord).where(RiskProfileRecord.trading_state != ACTIVE,
                                               RiskProfileRecord.halted_on.is_not(None)).order_by(RiskProfileRecord.id)
        if session.get_bind().dialect.name == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)  # a fan-out deciding for this follower lifts it itself
        lifted = sum(lift_if_expired(journal, row, now) for row in session.exec(stmt).all())
        journal.flush_audit(session)
        session.commit()
    journal.publish()
    return lifted
