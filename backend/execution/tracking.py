"""Cancelling at the venue and following resting orders until they end.

``cancel_orders`` cancels locally what the venue never saw and asks the
venue for the rest; a cancel that races a fill records the fill (the venue's
answer is the truth).  ``replace_orders`` amends working orders in place
where the venue supports it (a refused change is reported to the trader).  ``sync_orders`` polls the working orders of each
account (``open_orders`` once, then ``order_status`` for those that left the
open list) and records what changed: that is how fills of limit orders,
stops and take-profits reach positions, and how a restarted worker learns
what happened to orders it had submitted before it died.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from decimal import Decimal

from sqlmodel import Session, select

from backend.brokers.base import OrderSnapshot
from backend.db.models import BrokerAccount, Notification, Order, OrderEvent, Position
from backend.db.types import utcnow
from backend.errors import OrderNotFound, TradeExecutorError
from backend.execution.adapters import Adapters, venue_key
from backend.execution.journal import Journal
from backend.execution.loss_guard import after_marks
from backend.execution.positions import mark_prices
from backend.execution.settle import Followups, Settlement, differs
from backend.execution.sqlutil import locked
from backend.execution.state_machine import CANCELLED, NEW, OPEN, WORKING, transition

log = logging.getLogger(__name__)


def _accounts(session: Session, orders: Iterable[Order]) -> dict[int, BrokerAccount]:
    ids = {o.broker_account_id for o in orders}
    return {a.id: a for a in session.exec(select(BrokerAccount).where(BrokerAccount.id.in_(ids)))} if ids else {}


def _never_sent(order: Order) -> bool:
    return order.status == NEW and order.attempts == 0 and not order.broker_order_id


async def _ask_venues(engine, adapters: Adapters, ids: set[int],
                      call) -> dict[int, OrderSnapshot | Exception | None]:
    """``call(adapter, order)`` for each open order in ``ids``, outside any transaction.

    The answer per order id is the venue's snapshot, the exception it raised
    (recorded by the caller), or None for an order that never reached a venue.
    """
    with Session(engine, expire_on_commit=False) as session:
        orders = session.exec(select(Order).where(Order.id.in_(list(ids)), Order.status.in_(tuple(OPEN)))).all()
        accounts = _accounts(session, orders)
    answers: dict[int, OrderSnapshot | Exception | None] = {}
    for order in orders:
        if _never_sent(order):
            answers[order.id] = None
            continue
        try:
            answers[order.id] = await call(adapters.get(accounts[order.broker_account_id]), order)
        except Exception as exc:  # noqa: BLE001 - recorded by the caller
            answers[order.id] = exc
    return answers


async def cancel_orders(engine, adapters: Adapters, ids: Iterable[int], *, clock=utcnow) -> Followups:
    answers = await _ask_venues(engine, adapters, set(ids),
                                lambda adapter, order: adapter.cancel_order(order.client_order_id))
    if not answers:
        return Followups()
    now = clock()
    journal = Journal()
    with Session(engine, expire_on_commit=False) as session:
        locked_orders = session.exec(locked(session, select(Order).where(Order.id.in_(list(answers))))).all()
        settlement = Settlement(session, journal, adapters, now, locked_orders)
        for order in locked_orders:
            answer = answers[order.id]
            if order.status not in OPEN:
                continue
            if isinstance(answer, OrderSnapshot):
                settlement.apply(order, answer)
            elif answer is None or (isinstance(answer, OrderNotFound) and order.status == NEW):
                transition(session, order, CANCELLED, journal, now=now, message="Cancelled before reaching the broker.")
                settlement.touch(order)
            else:
                log.warning("cancel of %s failed: %s", order.client_order_id, answer)
                journal.audit("order.cancel_failed", subject_type="order", subject_id=order.id,
                              actor_user_id=order.user_id, data={"error": str(answer)[:300]})
        followups = settlement.finish()
        journal.flush_audit(session)
        session.commit()
    journal.publish()
    return followups


async def sync_orders(engine, adapters: Adapters, *, account_ids: Iterable[int] | None = None,
                      clock=utcnow) -> Followups:
    """Poll every working order (optionally of some accounts) and record what changed."""
    with Session(engine, expire_on_commit=False) as session:
        stmt = select(Order).where(Order.status.in_(tuple(WORKING)))
        if account_ids is not None:
            stmt = stmt.where(Order.broker_account_id.in_(list(set(account_ids))))
        orders = session.exec(stmt.order_by(Order.id)).all()
        accounts = _accounts(session, orders)
    by_account: dict[int, list[Order]] = defaultdict(list)
    for order in orders:
        by_account[order.broker_account_id].append(order)
    snaps: dict[int, OrderSnapshot] = {}
    for account_id, group in by_account.items():
        try:
            adapter = adapters.get(accounts[account_id])
            listed = {s.client_order_id: s for s in await adapter.open_orders()}
            for order in group:
                snap = listed.get(order.client_order_id)
                if snap is None:
                    try:
                        snap = await adapter.order_status(order.client_order_id)
                    except OrderNotFound:
                        log.warning("venue does not know working order %s", order.client_order_id)
                        continue
                if differs(order, snap):
                    snaps[order.id] = snap
        except TradeExecutorError as exc:
            log.warning("could not poll account %s: %s", account_id, exc)
    if not snaps:
        return Followups()
    return _record(engine, adapters, snaps, clock())


def _record(engine, adapters: Adapters, snaps: dict[int, OrderSnapshot], now) -> Followups:
    journal = Journal()
    with Session(engine, expire_on_commit=False) as session:
        orders = session.exec(locked(session, select(Order).where(Order.id.in_(list(snaps))).order_by(Order.id))).all()
        settlement = Settlement(session, journal, adapters, now, orders)
        for order in orders:
            if order.status in OPEN and differs(order, snaps[order.id]):
                settlement.apply(order, snaps[order.id])
        followups = settlement.finish()
        journal.flush_audit(session)
        session.commit()
    journal.publish()
    return followups


async def replace_orders(engine, adapters: Adapters, changes: dict[int, dict], *, clock=utcnow) -> Followups:
    """Amend working orders in place at their venues (new quantity / stop / limit)."""
    answers = await _ask_venues(engine, adapters, set(changes),
                                lambda adapter, order: adapter.replace_order(order.client_order_id,
                                                                             **changes[order.id]))
    if not answers:
        return Followups()
    now = clock()
    journal = Journal()
    with Session(engine, expire_on_commit=False) as session:
        locked_orders = session.exec(locked(session, select(Order).where(Order.id.in_(list(answers))))).all()
        settlement = Settlement(session, journal, adapters, now, locked_orders)
        for order in locked_orders:
            answer, wanted = answers[order.id], changes[order.id]
            if order.status not in OPEN:
                continue
            if isinstance(answer, Exception):
                _replace_failed(session, journal, order, answer, now)
                continue
            before = {k: _s(getattr(order, k)) for k in wanted}
            for name in ("stop_price", "limit_price"):
                if name in wanted:
                    setattr(order, name, wanted[name])
            if answer is None and "quantity" in wanted:
                order.quantity = wanted["quantity"]
            if isinstance(answer, OrderSnapshot):
                settlement.apply(order, answer)
            order.updated_at = now
            data = {"before": before, "after": {k: _s(v) for k, v in wanted.items()}}
            session.add(OrderEvent(order_id=order.id, from_status=order.status, to_status=order.status,
                                   message="Changed at the broker.", data=data, created_at=now))
            journal.audit("order.replaced", subject_type="order", subject_id=order.id, actor_user_id=order.user_id,
                          data=data)
        followups = settlement.finish()
        journal.flush_audit(session)
        session.commit()
    journal.publish()
    return followups


def _replace_failed(session: Session, journal: Journal, order: Order, exc: Exception, now) -> None:
    message = getattr(exc, "message", None) or type(exc).__name__
    log.warning("replace of %s failed: %s", order.client_order_id, message)
    journal.audit("order.replace_failed", subject_type="order", subject_id=order.id, actor_user_id=order.user_id,
                  data={"error": message[:300]})
    session.add(Notification(user_id=order.user_id, kind="order.replace_failed", created_at=now, dm_status="pending",
                             title=f"Could not change your {order.leg} order on {order.symbol}"[:200],
                             body=f"The broker refused the change: {message}", data={"order_id": order.id}))


def _s(value) -> str | None:
    return None if value is None else str(value)


async def refresh_marks(engine, adapters: Adapters, *, clock=utcnow) -> int:
    """Set ``last_price`` of open positions from their venues' quotes (unrealised P&L follows).

    One quote per venue and symbol, however many accounts hold it; venues
    without cheap quotes (``quote`` returns None) are left as they are.
    """
    with Session(engine, expire_on_commit=False) as session:
        held = session.exec(select(Position.broker_account_id, Position.symbol).where(Position.quantity != 0)).all()
        accounts = {a.id: a for a in session.exec(select(BrokerAccount).where(
            BrokerAccount.id.in_({a for a, _ in held})))} if held else {}
    prices: dict[tuple, Decimal] = {}
    by_symbol: dict[str, dict[tuple, Decimal]] = defaultdict(dict)
    for account_id, symbol in held:
        account = accounts.get(account_id)
        if account is None:
            continue
        key = (venue_key(account), symbol)
        if key not in prices:
            try:
                prices[key] = await adapters.get(account).quote(symbol)
            except TradeExecutorError:
                prices[key] = None
        if prices[key] is not None:
            by_symbol[symbol][account_id] = prices[key]
    if not by_symbol:
        return 0
    journal = Journal()
    with Session(engine) as session:
        now = clock()
        count = mark_prices(session, by_symbol, now)
        after_marks(session, journal, {a for marks in by_symbol.values() for a in marks}, now)  # daily loss limit
        journal.flush_audit(session)
        session.commit()
    journal.publish()
    return count
