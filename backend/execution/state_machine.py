"""The order state machine: the one place an order's status changes.

    new -> submitted -> partially_filled -> filled
      |        |               |
      |        +-> cancelled / rejected / expired
      +-> cancelled / rejected / failed      (never reached the venue, or refused by it)

``transition`` enforces the table below and writes, for every change, an
``order_events`` row, an audit event and a bus event (via the ``Journal``).
``partially_filled -> partially_filled`` is allowed (another partial fill);
any other repeat of the current status is a no-op, which is what makes
applying the same venue snapshot twice harmless.

``record_snapshot`` applies the venue's view of an order: the ack (new ->
submitted), new fills (inserted once, keyed by the venue's fill id) and the
resulting status.  The fills it returns are booked into positions by the
caller, in the same transaction.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlmodel import Session

from backend.brokers.base import OrderSnapshot
from backend.db.models import Fill, Notification, Order, OrderEvent, OrderStatus
from backend.errors import TradeExecutorError
from backend.execution.journal import Journal

log = logging.getLogger(__name__)

NEW, SUBMITTED, PARTIAL, FILLED = "new", "submitted", "partially_filled", "filled"
CANCELLED, REJECTED, EXPIRED, FAILED = "cancelled", "rejected", "expired", "failed"

TRANSITIONS: dict[str, frozenset[str]] = {
    NEW: frozenset({SUBMITTED, CANCELLED, REJECTED, FAILED}),
    SUBMITTED: frozenset({PARTIAL, FILLED, CANCELLED, REJECTED, EXPIRED}),
    PARTIAL: frozenset({PARTIAL, FILLED, CANCELLED, EXPIRED}),
}
FINAL = frozenset(s.value for s in OrderStatus if s.is_final)
NOTIFY = frozenset({PARTIAL, FILLED, REJECTED, FAILED})
WORKING = frozenset({SUBMITTED, PARTIAL})
OPEN = frozenset({NEW, SUBMITTED, PARTIAL})


class IllegalTransition(TradeExecutorError):
    code = "illegal_transition"


def can_transition(current: str, to_status: str) -> bool:
    return to_status in TRANSITIONS.get(current, frozenset())


def transition(session: Session, order: Order, to_status: str, journal: Journal, *, now: datetime,
               message: str | None = None, data: dict[str, Any] | None = None) -> bool:
    """Move ``order`` to ``to_status``; False if it already was there (no-op)."""
    current = order.status
    if to_status == current and to_status != PARTIAL:
        return False
    if not can_transition(current, to_status):
        raise IllegalTransition(f"Order {order.client_order_id} can't go from {current} to {to_status}.")
    order.status = to_status
    order.updated_at = now
    if to_status == SUBMITTED:
        order.submitted_at = now
    if to_status in FINAL:
        order.closed_at = now
    details = {"client_order_id": order.client_order_id, "from": current, "to": to_status, **(data or {})}
    journal.insert(OrderEvent, {"order_id": order.id, "from_status": current, "to_status": to_status,
                                "message": message[:500] if message else None, "data": details, "created_at": now})
    journal.audit("order.placed" if to_status == SUBMITTED else "order.status", subject_type="order",
                  subject_id=order.id, actor_user_id=order.user_id, data={**details, "message": message})
    journal.push(order.user_id, order_event(order), key=order.id)
    if to_status in NOTIFY and not (to_status == PARTIAL and current == PARTIAL):
        _notify(journal, order, to_status, message, now)
    return True


def _notify(journal: Journal, order: Order, status: str, message: str | None, now: datetime) -> None:
    """A notification row (the bot DMs pending ones) for what a trader must hear about."""
    what = f"{order.side} {_n(order.quantity)} {order.symbol}"
    if status in (FILLED, PARTIAL):
        verb = "Bought" if order.side == "buy" else "Sold"
        qty = _n(order.filled_quantity)
        title = f"{verb} {qty} {order.symbol} at {_n(order.avg_fill_price)}"
        if status == PARTIAL:
            title = f"Partly filled: {title} ({qty} of {_n(order.quantity)})"
        body = f"{order.leg} order {order.client_order_id}."
    else:
        title = f"Order {status}: {what}"
        body = order.error_message or message or ""
    journal.insert(Notification, {"user_id": order.user_id, "kind": f"order.{status}", "title": title[:200],
                                  "body": body, "data": {"order_id": order.id, "client_order_id": order.client_order_id,
                                                         "signal_id": order.signal_id},
                                  "created_at": now, "read_at": None, "dm_status": "pending"})


def _n(value: Decimal | None) -> str:
    if value is None:
        return "?"
    text = format(value.normalize(), "f")
    return text


@dataclass(eq=False)
class FillRow:
    """A new fill as plain values (the attributes of ``Fill``); ``Settlement`` inserts many in one statement."""

    order_id: int
    broker_fill_id: str
    quantity: Decimal
    price: Decimal
    fee: Decimal
    filled_at: datetime
    id: int | None = None

    def values(self) -> dict[str, Any]:
        return {"order_id": self.order_id, "broker_fill_id": self.broker_fill_id, "quantity": self.quantity,
                "price": self.price, "fee": self.fee, "filled_at": self.filled_at}


def record_snapshot(session: Session, order: Order, snap: OrderSnapshot, journal: Journal, *, now: datetime,
                    known_fill_ids: set[str], pending: list | None = None) -> list:
    """Apply the venue's view of ``order``; returns the fills not seen before.

    The new fills are added to the session as ``Fill`` objects (not flushed),
    or, when the caller passes a ``pending`` list, appended to it as
    ``FillRow`` values for the caller to insert (``Settlement`` does, in bulk).
    """
    if snap.broker_order_id and not order.broker_order_id:
        order.broker_order_id = snap.broker_order_id[:64]
    if snap.status == REJECTED:
        if order.status in (NEW, SUBMITTED):
            order.error_code = "order_rejected"
            order.error_message = (snap.reject_reason or "The broker rejected the order.")[:500]
            transition(session, order, REJECTED, journal, now=now, message=order.error_message)
        return []
    if order.status == NEW:
        transition(session, order, SUBMITTED, journal, now=now, message="Accepted by the broker.",
                   data={"broker_order_id": order.broker_order_id})
    fills = _new_fills(order, snap, known_fill_ids, now, Fill if pending is None else FillRow)
    if pending is None:
        for fill in fills:
            session.add(fill)
    else:
        pending.extend(fills)
    if fills:
        total = order.filled_quantity + sum((f.quantity for f in fills), Decimal(0))
        cost = (order.avg_fill_price or Decimal(0)) * order.filled_quantity + sum((f.quantity * f.price for f in fills), Decimal(0))
        order.filled_quantity = total
        order.avg_fill_price = (cost / total).quantize(Decimal("1e-10")) if total else None
        order.fees += sum((f.fee for f in fills), Decimal(0))
    target = snap.status
    if target == PARTIAL and not fills:
        return fills
    if target in (SUBMITTED, "accepted"):
        return fills
    if target == FILLED and order.filled_quantity < order.quantity and not fills:
        target = PARTIAL if order.filled_quantity > 0 else order.status
    if target == order.status and target != PARTIAL:
        return fills
    if can_transition(order.status, target):
        fill_note = f"{order.filled_quantity} of {order.quantity} filled" if order.filled_quantity else None
        transition(session, order, target, journal, now=now, message=snap.reject_reason or fill_note,
                   data={"filled_quantity": str(order.filled_quantity),
                         "avg_fill_price": None if order.avg_fill_price is None else str(order.avg_fill_price)})
    else:
        log.warning("ignoring venue status %s for order %s in status %s", target, order.client_order_id, order.status)
    return fills


def _new_fills(order: Order, snap: OrderSnapshot, known: set[str], now: datetime, make=Fill) -> list:
    """Fills in ``snap`` not recorded yet; a venue that reports only totals gets one synthetic fill per increase.

    The synthetic fill carries the increase of the order's cumulative fee
    (``snap.fee``) over what the order has booked (``order.fees``), so a
    partial fill then the rest books each part's fee once, and re-reading a
    snapshot books neither a fill nor a fee again.  A fee that grows without
    the filled quantity growing waits for the next increase.
    """
    fills: list = []
    for vf in snap.fills:
        fid = vf.fill_id[:64]
        if fid in known:
            continue
        known.add(fid)
        fills.append(make(order_id=order.id, broker_fill_id=fid, quantity=vf.quantity, price=vf.price,
                          fee=vf.fee, filled_at=vf.filled_at))
    if not snap.fills and snap.filled_quantity > order.filled_quantity and snap.avg_fill_price is not None:
        fill = synthetic_fill(order, snap, now, make)
        if fill.broker_fill_id not in known:
            known.add(fill.broker_fill_id)
            fills.append(fill)
    return fills


def synthetic_fill(order: Order, snap: OrderSnapshot, now: datetime, make=Fill):
    """One fill for what ``snap``'s totals add to the order's (a venue that reports no trades, or
    trades that do not add up): quantity and price from the cumulative figures, the fee from the
    order's cumulative fee (``_fee_delta``), an id made of the order and its new filled total."""
    delta = snap.filled_quantity - order.filled_quantity
    prior = (order.avg_fill_price or Decimal(0)) * order.filled_quantity
    price = ((snap.avg_fill_price or Decimal(0)) * snap.filled_quantity - prior) / delta
    fid = f"{snap.broker_order_id or order.client_order_id}:{snap.filled_quantity}"[:64]
    return make(order_id=order.id, broker_fill_id=fid, quantity=delta, price=price.quantize(Decimal("1e-10")),
                fee=_fee_delta(order, snap), filled_at=now)


def _fee_delta(order: Order, snap: OrderSnapshot) -> Decimal:
    """What the venue's cumulative order fee adds to the fees the order has booked (never negative)."""
    if snap.fee is None or snap.fee <= order.fees:
        if snap.fee is not None and snap.fee < order.fees:
            log.warning("order %s: the venue's cumulative fee %s is below the %s booked; nothing more booked",
                        order.client_order_id, snap.fee, order.fees)
        return Decimal(0)
    return snap.fee - order.fees


def fail(session: Session, order: Order, journal: Journal, *, now: datetime, code: str, message: str,
         status: str = FAILED) -> bool:
    """Record a permanent error: the order ends ``rejected`` or ``failed`` with a message for the trader."""
    order.error_code = code[:40]
    order.error_message = message[:500]
    if not can_transition(order.status, status):
        return False
    return transition(session, order, status, journal, now=now, message=message, data={"error_code": code})


def order_event(order: Order) -> dict[str, Any]:
    return {"type": "order.updated", "order": {
        "id": order.id, "client_order_id": order.client_order_id, "signal_id": order.signal_id,
        "broker_account_id": order.broker_account_id, "symbol": order.symbol, "side": order.side,
        "leg": order.leg, "order_type": order.order_type, "quantity": str(order.quantity),
        "status": order.status, "filled_quantity": str(order.filled_quantity),
        "avg_fill_price": None if order.avg_fill_price is None else str(order.avg_fill_price),
        "error_code": order.error_code, "error_message": order.error_message,
    }}
