"""Driving the engine: dispatch one signal, run follow-ups, recover unfinished work.

The database is the queue.  A signal still ``received`` has not been fanned
out; an order still ``new`` has not been (successfully) sent; an order with
a ``pending_cancel`` / ``pending_replace`` event has a cancel or change not
yet confirmed; a ``submitted`` or ``partially_filled`` order is followed
until it ends.  ``recover`` does all of these, so a worker that starts after a crash (or a scheduler tick)
finishes whatever was interrupted, and the venue's idempotency on client
order ids guarantees a re-sent order is never doubled.

A signal or an entry that waited longer than its source's ``max_lag_seconds``
(no worker was running) is not traded late: it is marked stale / cancelled
with a notification; closes and stops are still sent.

``execute`` sends cancels and submissions and keeps going with what they
release (a bracket after its entry fills, the entry of a close-then-reverse
after its close) until nothing is left to do now.  Temporary errors are
retried after their backoff with the injectable ``sleep`` and ``clock``
(tests pass a fake pair so they never wait).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, select

from backend.db.models import Notification, Order, Signal, SignalSource
from backend.db.types import utcnow
from backend.execution.adapters import Adapters
from backend.execution.fanout import Dispatch, fan_out
from backend.execution.intake import RECEIVED
from backend.execution import intents as legs
from backend.execution.journal import Journal
from backend.execution.settle import Followups, Settlement, pending_cancel_ids, pending_replaces
from backend.execution.state_machine import CANCELLED, NEW, transition
from backend.execution.submit import Clock, Sleep, submit_orders
from backend.execution.tracking import cancel_orders, replace_orders, sync_orders

log = logging.getLogger(__name__)


@dataclass
class Report:
    signals: int = 0
    submitted: int = 0
    rounds: int = 0
    retries_pending: dict[int, datetime] = field(default_factory=dict)
    dispatches: list[Dispatch] = field(default_factory=list)


async def execute(engine: sa.Engine, adapters: Adapters, *, submit_ids=(), cancel_ids=(), replace=None,
                  sleep: Sleep = asyncio.sleep, clock: Clock = utcnow, inline_retries: bool = True,
                  max_rounds: int = 50, report: Report | None = None, known=(), accounts=None) -> Report:
    """``known``/``accounts``: orders and accounts just written by the caller (first submission only)."""
    report = report or Report()
    todo = Followups(set(submit_ids), set(cancel_ids), dict(replace or {}))
    retry_at: dict[int, datetime] = {}
    while report.rounds < max_rounds:
        report.rounds += 1
        if todo.cancel_ids:
            ids, todo.cancel_ids = todo.cancel_ids, set()
            todo.merge(await cancel_orders(engine, adapters, ids, clock=clock))
        if todo.replace:
            changes, todo.replace = todo.replace, {}
            todo.merge(await replace_orders(engine, adapters, changes, clock=clock))
        if todo.submit_ids:
            ids, todo.submit_ids = todo.submit_ids, set()
            result = await submit_orders(engine, adapters, ids, clock=clock, known=known, accounts=accounts)
            known, accounts = (), None  # later rounds read fresh rows
            report.submitted += result.sent
            todo.merge(result.followups)
            retry_at.update(result.retry_at)
            for done in ids - set(result.retry_at):
                retry_at.pop(done, None)
        if todo:
            continue
        if not (inline_retries and retry_at):
            break
        delay = (min(retry_at.values()) - clock()).total_seconds()
        await sleep(max(delay, 0.0))
        now = clock()
        todo.submit_ids = {i for i, at in retry_at.items() if at <= now}
        for i in todo.submit_ids:
            retry_at.pop(i)
    report.retries_pending = retry_at
    return report


async def dispatch_signal(engine: sa.Engine, adapters: Adapters, signal_id: int, *, now: datetime | None = None,
                          sleep: Sleep = asyncio.sleep, clock: Clock = utcnow) -> Report:
    """Fan out one stored signal and send its orders."""
    dispatch = await fan_out(engine, signal_id, adapters=adapters, now=now)
    return await execute_dispatch(engine, adapters, dispatch, sleep=sleep, clock=clock)


async def execute_dispatch(engine: sa.Engine, adapters: Adapters, dispatch: Dispatch, *, sleep: Sleep = asyncio.sleep,
                           clock: Clock = utcnow) -> Report:
    """Send what a fan-out planned."""
    report = Report(signals=1, dispatches=[dispatch])
    return await execute(engine, adapters, submit_ids=dispatch.submit_ids, cancel_ids=dispatch.cancel_ids,
                         replace=dispatch.replace, sleep=sleep, clock=clock, report=report,
                         known=dispatch.orders, accounts=dispatch.accounts)


def expire_late_entries(engine: sa.Engine, adapters: Adapters, now: datetime) -> int:
    """Cancel entries that were never sent and whose signal is now older than its source's max lag.

    They were decided in time, but the process died before sending them; a
    late entry is a different trade, so it is dropped (with a notification),
    exactly as a late signal would be.  Closes and stops are still sent:
    reducing risk is never too late.
    """
    journal = Journal()
    with Session(engine, expire_on_commit=False) as session:
        rows = session.exec(select(Order, Signal.sent_at, SignalSource.max_lag_seconds)
                            .join(Signal, Signal.id == Order.signal_id)
                            .join(SignalSource, SignalSource.id == Signal.source_id)
                            .where(Order.status == NEW, Order.attempts == 0, Order.leg == legs.ENTRY)).all()
        late = [o for o, sent_at, lag in rows if sent_at is not None and (now - sent_at).total_seconds() > lag]
        for order in late:
            message = "Not sent in time (the engine was interrupted); a late entry is a different trade."
            transition(session, order, CANCELLED, journal, now=now, message=message)
            journal.insert(Notification, {"user_id": order.user_id, "kind": "order.expired_unsent",
                                          "title": f"{order.side.title()} {order.symbol} not sent", "body": message,
                                          "data": {"order_id": order.id}, "created_at": now, "read_at": None,
                                          "dm_status": "pending"})
        if late:  # their bracket children go with them
            settlement = Settlement(session, journal, adapters, now, late)
            for order in late:
                settlement.touch(order)
            settlement.finish()
        journal.flush_audit(session)
        session.commit()
    journal.publish()
    return len(late)


async def recover(engine: sa.Engine, adapters: Adapters, *, sleep: Sleep = asyncio.sleep, clock: Clock = utcnow,
                  inline_retries: bool = True, sync: bool = True) -> Report:
    """Finish interrupted work: fan out ``received`` signals, send ``new`` orders, confirm
    pending cancels, and re-read the status of working orders at their venues."""
    report = Report()
    with Session(engine) as session:
        signal_ids = session.exec(select(Signal.id).where(Signal.status == RECEIVED).order_by(Signal.id)).all()
    submit: set[int] = set()
    cancel: set[int] = set()
    replace: dict[int, dict] = {}
    for signal_id in signal_ids:
        try:
            dispatch = await fan_out(engine, signal_id, adapters=adapters, now=clock())
        except Exception:  # noqa: BLE001 - one bad signal must not block the queue behind it
            log.exception("fan-out of signal %s failed", signal_id)
            continue
        report.signals += 1
        report.dispatches.append(dispatch)
        submit |= set(dispatch.submit_ids)
        cancel |= set(dispatch.cancel_ids)
        replace.update(dispatch.replace)
    now = clock()
    expire_late_entries(engine, adapters, now)
    with Session(engine) as session:
        submit |= set(session.exec(select(Order.id).where(
            Order.status == NEW, sa.or_(Order.next_attempt_at.is_(None), Order.next_attempt_at <= now))).all())
        cancel |= set(pending_cancel_ids(session))
        replace = {**pending_replaces(session), **replace}
    if sync:
        followups = await sync_orders(engine, adapters, clock=clock)
        submit |= followups.submit_ids
        cancel |= followups.cancel_ids
        replace.update(followups.replace)
    return await execute(engine, adapters, submit_ids=submit, cancel_ids=cancel, replace=replace, sleep=sleep,
                         clock=clock, inline_retries=inline_retries, report=report)
