"""Recording what the venue said, and everything that follows from it, in one transaction.

Every path that hears from a broker (submission acks, cancel confirmations,
status polls) ends here: ``Settlement`` applies venue snapshots through the
state machine, books the new fills into positions, releases the orders that
were waiting for a finished one (bracket children, the entry of a
close-then-reverse, a replacement), trims protection that outgrew the
position, checks the daily loss limit of the followers whose P&L the fills
moved (``loss_guard``: a stop fill that breaks it halts and, if asked,
flattens in this same transaction), and records the cancels and amendments
still to send as ``pending_cancel`` / ``pending_replace`` order events so
that a crash before they are sent does not forget them.

The result says what to do next (submit these, cancel those), which the
caller does after the commit: the broker is never called inside a
transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlmodel import Session, select

from backend.brokers.base import OrderSnapshot
from backend.db.models import BrokerAccount, Fill, Order, OrderEvent
from backend.execution.adapters import Adapters, accounts_that_replace
from backend.execution import loss_guard
from backend.execution.brackets import rebalance, release_waiting
from backend.execution.journal import Journal
from backend.execution.positions import Preloaded, apply_fills
from backend.execution.rows import ORDERS, OrderRow, open_orders_of, queue_write_back
from backend.execution.sqlutil import insert_rows
from backend.execution.state_machine import FINAL, NEW, OPEN, FillRow, record_snapshot

# A ``pipeline`` read that draws ``n`` ids from the fills' sequence (Postgres), so the fills can be written
# with the other rows of the transaction in one statement.  Unused ids leave gaps, which is harmless.
FILL_IDS = "SELECT nextval(pg_get_serial_sequence('fills', 'id')) FROM generate_series(1, %(n)s)"

PENDING_CANCEL = "pending_cancel"
PENDING_REPLACE = "pending_replace"


@dataclass
class Followups:
    """Broker calls to make after a commit."""

    submit_ids: set[int] = field(default_factory=set)
    cancel_ids: set[int] = field(default_factory=set)
    replace: dict[int, dict[str, Any]] = field(default_factory=dict)

    def merge(self, other: Followups) -> None:
        self.submit_ids |= other.submit_ids
        self.cancel_ids |= other.cancel_ids
        for order_id, changes in other.replace.items():
            self.replace.setdefault(order_id, {}).update(changes)

    def __bool__(self) -> bool:
        return bool(self.submit_ids or self.cancel_ids or self.replace)


def known_fill_ids(session: Session, orders: Iterable[Order]) -> dict[int, set[str]]:
    """Fill ids recorded per order; an order still ``new`` has none (its fills come with its ack)."""
    out: dict[int, set[str]] = {o.id: set() for o in orders}
    ids = [o.id for o in orders if o.status != NEW or o.filled_quantity > 0]
    if ids:
        for order_id, fill_id in session.execute(select(Fill.order_id, Fill.broker_fill_id)
                                                 .where(Fill.order_id.in_(ids))).all():
            out[order_id].add(fill_id)
    return out


def differs(order: Order, snap: OrderSnapshot) -> bool:
    """Whether a polled snapshot says anything new (most polls of a resting order do not)."""
    return (snap.status != order.status or snap.filled_quantity != order.filled_quantity
            or (snap.quantity > 0 and snap.quantity != order.quantity))


class Settlement:
    """Collects snapshots for locked orders, then ``finish`` books the consequences.

    ``orders`` are ORM ``Order`` objects (the ORM writes them at commit) or,
    on the hot path, ``rows.OrderRow`` values with ``candidates``: the open
    orders of their accounts, locked and loaded in the same statement; then
    ``finish`` writes every changed row back itself.
    """

    def __init__(self, session: Session, journal: Journal, adapters: Adapters, now: datetime,
                 orders: Iterable[Order], *, candidates: Iterable[OrderRow] | None = None,
                 positions: Preloaded | None = None, fill_ids: Iterable[int] = (),
                 watched: loss_guard.Watched | None = None) -> None:
        self.session, self.journal, self.adapters, self.now = session, journal, adapters, now
        self._positions = positions  # read and locked by the caller (``positions.pipelined_read``)
        self._watched = watched  # loss-limited profiles the caller read (``loss_guard.pipelined_read``)
        self._fill_ids = list(fill_ids)  # ids the caller drew from the fills' sequence (``FILL_IDS``)
        self.orders = {o.id: o for o in orders}
        self.rows: dict[int, OrderRow] | None = None
        if candidates is not None:
            self.rows = {o.id: o for o in candidates}
            self.rows.update({i: o for i, o in self.orders.items() if isinstance(o, OrderRow)})
        self._known = known_fill_ids(session, list(self.orders.values()))
        self.fills: list[tuple[Order, Any]] = []
        self._pending: list[FillRow] = []
        self.touched: set[int] = set()

    def apply(self, order: Order, snap: OrderSnapshot) -> None:
        if snap.quantity > 0 and snap.quantity != order.quantity and order.status in OPEN:
            order.quantity = snap.quantity  # the venue resized it (a bracket leg after a partial entry, a TP fill)
        new = record_snapshot(self.session, order, snap, self.journal, now=self.now,
                              known_fill_ids=self._known[order.id], pending=self._pending)
        self.fills.extend((order, f) for f in new)
        self.touched.add(order.id)

    def touch(self, order: Order) -> None:
        self.touched.add(order.id)

    def _insert_fills(self) -> None:
        """Give the new fills their ids (the P&L rows and the audit point at them).

        With ids drawn beforehand (``FILL_IDS``) the rows join the journal's other
        writes; otherwise they are inserted now, one statement, ids returned.
        """
        if any(f.id is None and not isinstance(f, FillRow) for _, f in self.fills):
            self.session.flush()  # ORM Fill objects a caller added itself
        pending, self._pending = [f for f in self._pending if f.id is None], []
        if not pending:
            return
        if len(self._fill_ids) >= len(pending):
            for fill, fill_id in zip(pending, self._fill_ids):
                fill.id = fill_id
            self._fill_ids = self._fill_ids[len(pending):]
            self.journal.writes.insert(Fill.__table__, [{"id": f.id, **f.values()} for f in pending])
            return
        ids = insert_rows(self.session.connection(), Fill, [f.values() for f in pending], returning=("id",))
        for fill, row in zip(pending, ids, strict=True):
            fill.id = row.id

    def _open_rows(self, account_ids: set[int]) -> list[Order]:
        if self.rows is None:
            return self.session.exec(select(Order).where(Order.broker_account_id.in_(account_ids),
                                                         Order.status.in_(tuple(OPEN))).order_by(Order.id)).all()
        loaded = {o.broker_account_id for o in self.rows.values()}
        missing = account_ids - loaded
        if missing:  # accounts the caller did not preload (rare): read them, keep the rows already held
            for row in open_orders_of(self.session.connection(), missing, OPEN):
                self.rows.setdefault(row.id, row)
        return sorted((o for o in self.rows.values() if o.broker_account_id in account_ids and o.status in OPEN),
                      key=lambda o: o.id)

    def finish(self, venue_cancels: Iterable[int] = ()) -> Followups:
        session = self.session
        self._insert_fills()
        cancels: set[int] = set(venue_cancels)
        booked: list[dict] = []
        positions = apply_fills(session, self.fills, self.journal, self.now, writes=self.journal.writes,
                                preloaded=self._positions, booked=booked)
        finished = [self.orders[i] for i in self.touched if i in self.orders and self.orders[i].status in FINAL]
        account_ids = {o.broker_account_id for o in finished} | {p.broker_account_id for p in positions.values()}
        if not account_ids:
            followups = Followups(set(), cancels)
        else:
            open_rows = self._open_rows(account_ids)
            ready = release_waiting(session, finished, self.journal, now=self.now, venue_cancels=cancels,
                                    candidates=open_rows, positions=positions)
            plan = rebalance(session, positions.values(), self.journal, now=self.now, venue_cancels=cancels,
                             replaceable=LazyReplaceable(session, self.adapters), candidates=open_rows,
                             known=self.rows if self.rows is not None else self.orders)
            plan.write(session, self.journal)
            followups = Followups(set(ready), cancels, plan.replace)
        if positions:
            guard = loss_guard.after_fills(session, self.journal, positions.values(), booked, self.now,
                                           open_orders=self._open_rows, venue_cancels=cancels,
                                           known=self._watched)
            followups.submit_ids.update(guard.submit_ids)
        record_intents(session, followups, self.now, known=self.rows, journal=self.journal)
        if self.rows is not None:  # written with the journal's other rows at ``flush_audit``
            queue_write_back(self.journal.writes, ORDERS, self.rows.values())
        return followups


class LazyReplaceable:
    """``account_id in replaceable``: reads the account (and asks its adapter) only when a change is due."""

    def __init__(self, session: Session, adapters: Adapters) -> None:
        self.session, self.adapters = session, adapters
        self._known: dict[int, bool] = {}

    def __contains__(self, account_id: int) -> bool:
        if account_id not in self._known:
            account = self.session.get(BrokerAccount, account_id)
            self._known[account_id] = bool(account and account_id in accounts_that_replace(self.adapters, [account]))
        return self._known[account_id]


def record_intents(session: Session, followups: Followups, now: datetime, *,
                   known: dict[int, Any] | None = None, journal: Journal | None = None) -> Followups:
    """Persist the cancels and amendments still to send, so ``recover`` re-sends them after a crash.

    ``known``: orders held in memory as rows (their statuses are newer than the
    database's); ``journal``: queue the order events there instead of the session.
    """
    mark_pending_cancels(session, followups.cancel_ids, now, known=known, journal=journal)
    mark_pending_replaces(session, followups.replace, now, known=known, journal=journal)
    return followups


def _statuses(session: Session, ids: list[int], known: dict[int, Any] | None) -> dict[int, str]:
    known = known or {}
    out = {i: known[i].status for i in ids if i in known}
    rest = [i for i in ids if i not in out]
    if rest:
        out.update(session.execute(select(Order.id, Order.status).where(Order.id.in_(rest))).all())
    return out


def _add_events(session: Session, journal: Journal | None, rows: list[dict[str, Any]]) -> None:
    if journal is not None:
        for row in rows:
            journal.insert(OrderEvent, row)
    else:
        session.add_all([OrderEvent(**row) for row in rows])


def mark_pending_replaces(session: Session, changes: dict[int, dict[str, Any]], now: datetime, *,
                          known: dict[int, Any] | None = None, journal: Journal | None = None) -> None:
    if not changes:
        return
    statuses = _statuses(session, list(changes), known)
    _add_events(session, journal, [
        {"order_id": i, "from_status": statuses.get(i), "to_status": PENDING_REPLACE,
         "message": "Change requested at the broker.", "created_at": now, "data": {k: str(v) for k, v in c.items()}}
        for i, c in changes.items() if statuses.get(i) in OPEN])


def pending_replaces(session: Session) -> dict[int, dict[str, Any]]:
    """The latest requested change of each open order that does not show it yet."""
    stmt = (select(OrderEvent, Order).join(Order, Order.id == OrderEvent.order_id)
            .where(OrderEvent.to_status == PENDING_REPLACE, Order.status.in_(tuple(OPEN))).order_by(OrderEvent.id))
    latest: dict[int, tuple[dict[str, Any], Order]] = {}
    for event, order in session.exec(stmt).all():
        latest[order.id] = ({k: Decimal(v) for k, v in event.data.items()}, order)
    return {oid: c for oid, (c, order) in latest.items() if any(getattr(order, k) != v for k, v in c.items())}


def mark_pending_cancels(session: Session, order_ids: Iterable[int], now: datetime, *,
                         known: dict[int, Any] | None = None, journal: Journal | None = None) -> None:
    """Record the intent to cancel at the venue (``recover`` re-sends it after a crash)."""
    ids = sorted(set(order_ids))
    if not ids:
        return
    statuses = _statuses(session, ids, known)
    _add_events(session, journal, [
        {"order_id": i, "from_status": statuses.get(i), "to_status": PENDING_CANCEL,
         "message": "Cancel requested at the broker.", "created_at": now, "data": {}}
        for i in ids if statuses.get(i) in OPEN])


def pending_cancel_ids(session: Session) -> list[int]:
    """Open orders with a cancel requested and not yet confirmed."""
    stmt = (select(OrderEvent.order_id).join(Order, Order.id == OrderEvent.order_id)
            .where(OrderEvent.to_status == PENDING_CANCEL, Order.status.in_(tuple(OPEN))).distinct())
    return sorted(session.exec(stmt).all())
