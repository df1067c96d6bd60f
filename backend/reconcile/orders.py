"""Order repairs: missed fills, lost acknowledgements, orders the venue no longer has.

Everything goes through the execution engine's own settlement
(``backend.execution.settle.Settlement``): a fill found here is recorded by
the same state machine, booked into positions and the P&L ledger by the
same FIFO code, and releases or trims bracket legs exactly as a fill heard
live would.  On top of what the engine writes, each repair adds an order
event saying that reconciliation found it (the order's history explains
itself) and an audit event ``reconcile.<kind>``.

Rows are re-read under lock and re-compared, so a repair the execution
worker made in the meantime is not made twice.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from backend.brokers.base import OrderSnapshot, VenueFill
from backend.db.models import Fill, Notification, Order, OrderEvent
from backend.execution.adapters import Adapters
from backend.execution.journal import Journal
from backend.execution.settle import Followups, Settlement, differs
from backend.execution.sqlutil import locked
from backend.execution.state_machine import CANCELLED, OPEN, WORKING, synthetic_fill, transition
from backend.reconcile.report import MISSED_FILL, ORDER_MISSING, ORDER_STATUS, Repair
from backend.reconcile.venue import VenueView

ZERO = Decimal(0)
Q = Decimal("1e-10")


def _n(value: Decimal | None) -> str:
    return "?" if value is None else format(value.normalize(), "f")


class OrderRepairs:
    """One transaction of order repairs for one account."""

    def __init__(self, session: Session, journal: Journal, settlement: Settlement, account_id: int, now) -> None:
        self.session, self.journal, self.settlement = session, journal, settlement
        self.account_id, self.now = account_id, now
        self.repairs: list[Repair] = []

    def _record(self, order: Order, kind: str, before_status: str, message: str, data: dict[str, Any], *,
                event: bool = True) -> None:
        """The repair's audit event, report line and (unless a transition already wrote one) order event."""
        details = {"client_order_id": order.client_order_id, "symbol": order.symbol, "from": before_status,
                   "to": order.status, **data}
        if event:
            self.session.add(OrderEvent(order_id=order.id, from_status=before_status, to_status=order.status,
                                        message=f"Reconciliation: {message}"[:500],
                                        data={"reconcile": kind, **details}, created_at=self.now))
        self.journal.audit(f"reconcile.{kind}", subject_type="order", subject_id=order.id,
                           actor_user_id=order.user_id,
                           data={"broker_account_id": self.account_id, "message": message, **details})
        self.repairs.append(Repair(kind, self.account_id, order.client_order_id, message, details))

    def snapshot(self, order: Order, snap: OrderSnapshot) -> None:
        """The venue's view of an order the product still thinks open."""
        if order.status not in OPEN or not differs(order, snap):
            return
        before, filled_before, seen = order.status, order.filled_quantity, len(self.settlement.fills)
        self.settlement.apply(order, snap)
        new = [f for _, f in self.settlement.fills[seen:]]
        if not new and order.status == before:
            return  # nothing but a venue-side resize, which the engine applies as it always does
        if new:
            qty = sum((f.quantity for f in new), ZERO)
            message = (f"the broker had filled {_n(qty)} {order.symbol} (at {_n(order.avg_fill_price)} on average) "
                       f"that was not recorded; booked now.")
            kind = MISSED_FILL
        else:
            message = f"the broker reports this order {order.status}; recorded now."
            kind = ORDER_STATUS
        self._record(order, kind, before, message, {
            "filled_before": str(filled_before), "filled_after": str(order.filled_quantity),
            "fills": [f.broker_fill_id for f in new], "broker_order_id": order.broker_order_id})

    def missing(self, order: Order) -> None:
        """The venue no longer knows an order the product had sent: it is over, say so."""
        if order.status not in WORKING:
            return
        before = order.status
        message = "the broker no longer has this order, so it is marked cancelled."
        transition(self.session, order, CANCELLED, self.journal, now=self.now, message=f"Reconciliation: {message}")
        self.settlement.touch(order)
        self.session.add(Notification(
            user_id=order.user_id, kind="reconcile.order_missing", created_at=self.now, dm_status="pending",
            title=f"Your {order.leg} order on {order.symbol} is no longer at the broker"[:200],
            body=f"Order {order.client_order_id} ({order.side} {_n(order.quantity)} {order.symbol}) was not found "
                 "at the broker during reconciliation; it is now shown as cancelled.",
            data={"order_id": order.id}))
        self._record(order, ORDER_MISSING, before, message, {"filled": str(order.filled_quantity)}, event=False)

    def late(self, order: Order, snap: OrderSnapshot, unknown: list[VenueFill]) -> None:
        """Fills the venue made on an order the product had already closed (a cancel that raced a fill)."""
        delta = snap.filled_quantity - order.filled_quantity
        if delta <= 0:
            return
        known = set(self.session.exec(select(Fill.broker_fill_id).where(Fill.order_id == order.id)).all())
        fills = [f for f in unknown if f.fill_id[:64] not in known]
        if sum((f.quantity for f in fills), ZERO) == delta:
            rows = [Fill(order_id=order.id, broker_fill_id=f.fill_id[:64], quantity=f.quantity, price=f.price,
                         fee=f.fee, filled_at=f.filled_at) for f in fills]
        else:  # the venue's totals are the truth: one fill for the difference, priced from the averages
            rows = [synthetic_fill(order, snap, self.now)]
        before_filled = order.filled_quantity
        cost = (order.avg_fill_price or ZERO) * order.filled_quantity + sum((r.quantity * r.price for r in rows), ZERO)
        order.filled_quantity += delta
        order.avg_fill_price = (cost / order.filled_quantity).quantize(Q)
        order.fees += sum((r.fee for r in rows), ZERO)
        order.updated_at = self.now
        for row in rows:
            self.session.add(row)
        self.settlement.fills.extend((order, row) for row in rows)
        self.settlement.touch(order)
        message = (f"the broker filled {_n(delta)} {order.symbol} after this order was recorded {order.status}; "
                   "booked now.")
        self._record(order, MISSED_FILL, order.status, message, {
            "filled_before": str(before_filled), "filled_after": str(order.filled_quantity),
            "fills": [r.broker_fill_id for r in rows], "late": True})


def repair_orders(engine: sa.Engine, adapters: Adapters, account_id: int, view: VenueView,
                  now) -> tuple[list[Repair], Followups]:
    """Apply what the venue said; returns the repairs and the broker calls the engine wants next."""
    ids = set(view.snapshots) | view.missing | set(view.late)
    if not ids:
        return [], Followups()
    journal = Journal()
    with Session(engine, expire_on_commit=False) as session:
        orders = session.exec(locked(session, select(Order).where(Order.id.in_(ids)).order_by(Order.id))).all()
        settlement = Settlement(session, journal, adapters, now, orders)
        work = OrderRepairs(session, journal, settlement, account_id, now)
        for order in orders:
            if order.id in view.snapshots:
                work.snapshot(order, view.snapshots[order.id])
            elif order.id in view.missing:
                work.missing(order)
            elif order.id in view.late:
                work.late(order, *view.late[order.id])
        followups = settlement.finish()
        journal.flush_audit(session)
        session.commit()
    journal.publish()
    return work.repairs, followups
