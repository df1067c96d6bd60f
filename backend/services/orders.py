"""A trader's order history: filtered pages, one order's story, and a CSV export.

Every query is scoped by ``orders.user_id`` in SQL, so a caller can only read
its own orders; an order id of someone else is reported as not found (not as
"forbidden", which would confirm that the id exists).  Pages use keyset-free
LIMIT/OFFSET over ``(created_at, id)`` with one extra row to know whether a
next page exists (no COUNT(*) over 100,000 rows on every click); filters hit the
indexed ``symbol`` and ``status`` columns.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

from sqlmodel import Session, select

from backend.db.models import (
    BrokerAccount, Fill, Order, OrderEvent, RiskDecisionRecord, Signal, SignalSource, User,
)
from backend.errors import NotFound, ValidationError

PAGE_SIZE = 50
CSV_MAX_ROWS = 10_000
CSV_COLUMNS = ["id", "created_at", "account", "source", "symbol", "side", "type", "quantity", "filled_quantity",
               "avg_fill_price", "fees", "status", "leg", "error"]


@dataclass(frozen=True)
class OrderFilter:
    symbol: str = ""
    status: str = ""
    source_id: int | None = None
    date_from: date | None = None
    date_to: date | None = None  # inclusive


def parse_day(text: str, field: str) -> date | None:
    """``YYYY-MM-DD`` or empty; anything else is a field error."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValidationError("Use a date like 2026-01-31.", field=field) from None


def _query(user_id: int, f: OrderFilter):
    query = (select(Order, BrokerAccount.label, SignalSource.name)
             .join(BrokerAccount, BrokerAccount.id == Order.broker_account_id)
             .outerjoin(Signal, Signal.id == Order.signal_id)
             .outerjoin(SignalSource, SignalSource.id == Signal.source_id)
             .where(Order.user_id == user_id))
    if f.symbol.strip():
        query = query.where(Order.symbol == f.symbol.strip().upper())
    if f.status:
        query = query.where(Order.status == f.status)
    if f.source_id:
        query = query.where(Signal.source_id == f.source_id)
    if f.date_from:
        query = query.where(Order.created_at >= datetime.combine(f.date_from, time(0), tzinfo=timezone.utc))
    if f.date_to:
        end = datetime.combine(f.date_to + timedelta(days=1), time(0), tzinfo=timezone.utc)
        query = query.where(Order.created_at < end)
    return query.order_by(Order.created_at.desc(), Order.id.desc())


def _row(o: Order, account: str, source: str | None) -> dict[str, Any]:
    return {"id": o.id, "created_at": o.created_at, "account": account, "source": source, "symbol": o.symbol,
            "side": o.side, "type": o.order_type, "quantity": o.quantity, "filled_quantity": o.filled_quantity,
            "avg_fill_price": o.avg_fill_price, "fees": o.fees, "status": o.status, "leg": o.leg,
            "error": o.error_message}


def list_orders(session: Session, user_id: int, f: OrderFilter, *, page: int = 0,
                page_size: int = PAGE_SIZE) -> tuple[list[dict[str, Any]], bool]:
    """(rows of this page, whether another page follows)."""
    page = max(int(page), 0)
    rows = session.exec(_query(user_id, f).offset(page * page_size).limit(page_size + 1)).all()
    return [_row(*r) for r in rows[:page_size]], len(rows) > page_size


def export_csv(session: Session, user_id: int, f: OrderFilter, *, max_rows: int = CSV_MAX_ROWS) -> str:
    """The filtered list as CSV text (newest first), at most ``max_rows`` rows."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    for r in session.exec(_query(user_id, f).limit(max_rows)).all():
        row = _row(*r)
        row["created_at"] = row["created_at"].isoformat()
        writer.writerow({k: "" if v is None else str(v) for k, v in row.items()})
    return out.getvalue()


def followed_sources(session: Session, user_id: int) -> list[tuple[int, str]]:
    """Sources that produced at least one of the user's orders (the provider filter's choices)."""
    rows = session.exec(select(SignalSource.id, SignalSource.name).distinct()
                        .join(Signal, Signal.source_id == SignalSource.id)
                        .join(Order, Order.signal_id == Signal.id)
                        .where(Order.user_id == user_id).order_by(SignalSource.name)).all()
    return [(i, n) for i, n in rows]


def order_story(session: Session, user_id: int, order_id: int) -> dict[str, Any]:
    """Everything that happened to one order: signal, risk decision, state changes, fills and fees."""
    order = session.get(Order, order_id)
    if order is None or order.user_id != user_id:
        raise NotFound("That order does not exist.")
    story: dict[str, Any] = {"order": _row(order, session.get(BrokerAccount, order.broker_account_id).label, None),
                             "signal": None, "decision": None}
    if order.signal_id:
        sig = session.get(Signal, order.signal_id)
        if sig is not None:
            src = session.get(SignalSource, sig.source_id)
            provider = session.get(User, src.provider_id) if src else None
            story["signal"] = {"raw_text": sig.raw_text, "status": sig.status, "reason": sig.status_reason,
                               "source": src.name if src else None,
                               "provider": (provider.display_name or provider.username) if provider else None,
                               "received_at": sig.received_at}
            story["order"]["source"] = src.name if src else None
    decision = session.get(RiskDecisionRecord, order.decision_id) if order.decision_id else None
    if decision is None and order.signal_id:
        decision = session.exec(select(RiskDecisionRecord).where(RiskDecisionRecord.signal_id == order.signal_id,
                                                                 RiskDecisionRecord.follower_id == user_id)).first()
    if decision is not None and decision.follower_id == user_id:
        story["decision"] = {"approved": decision.approved, "quantity": decision.quantity,
                             "reasons": [_reason_text(r) for r in decision.reasons or []]}
    story["events"] = [{"at": e.created_at, "from": e.from_status, "to": e.to_status, "message": e.message}
                       for e in session.exec(select(OrderEvent).where(OrderEvent.order_id == order.id)
                                             .order_by(OrderEvent.created_at, OrderEvent.id)).all()]
    fills = session.exec(select(Fill).where(Fill.order_id == order.id).order_by(Fill.filled_at, Fill.id)).all()
    story["fills"] = [{"at": f.filled_at, "quantity": f.quantity, "price": f.price, "fee": f.fee} for f in fills]
    story["total_fees"] = sum((f.fee for f in fills), Decimal(0))
    return story


def _reason_text(reason: Any) -> str:
    if isinstance(reason, dict):
        text = reason.get("message") or reason.get("reason") or reason.get("text")
        code = reason.get("code") or reason.get("rule")
        if text and code:
            return f"{text} ({code})"
        return str(text or code or reason)
    return str(reason)
