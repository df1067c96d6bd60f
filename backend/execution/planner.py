"""Order intents in memory, then written in a few bulk INSERTs.

A plan links intents to each other (a take-profit belongs to its entry and
waits for it; a reversing entry waits for the close before it).  ``write``
inserts them in dependency waves (an intent goes in once what it points to
has an id), one ``INSERT ... ON CONFLICT (client_order_id) DO NOTHING``
per wave, so a fan-out to a thousand followers is three statements however
many legs each follower has, and writing the same plan twice creates nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlmodel import Session, select

from backend.db.models import Order
from backend.execution.ids import IdPool
from backend.execution.journal import Journal
from backend.execution.sqlutil import insert_ignore


@dataclass(eq=False)
class Intent:
    fields: dict[str, Any]
    parent: Intent | None = None
    wait_for: Intent | None = None
    id: int | None = None
    row: dict[str, Any] | None = None
    inserted: bool = False

    @property
    def client_order_id(self) -> str:
        return self.fields["client_order_id"]

    def summary(self) -> dict[str, Any]:
        f = self.fields
        return {"order_id": self.id, "client_order_id": f["client_order_id"], "signal_id": f["signal_id"],
                "leg": f["leg"], "symbol": f["symbol"], "side": f["side"], "quantity": str(f["quantity"]),
                "order_type": f["order_type"], "limit_price": _s(f["limit_price"]), "stop_price": _s(f["stop_price"])}

    @property
    def ready_now(self) -> bool:
        """Can be submitted right after the commit (waits for nothing)."""
        return self.wait_for is None and self.fields.get("wait_for_order_id") is None


def order_fields(*, client_order_id: str, user_id: int, broker_account_id: int, symbol: str, side: str,
                 quantity: Decimal, leg: str, now: datetime, signal_id: int | None = None,
                 decision_id: int | None = None, asset_class: str = "stock", order_type: str = "market",
                 time_in_force: str = "day", limit_price: Decimal | None = None,
                 stop_price: Decimal | None = None, reduce_only: bool = False, oco_group: str | None = None,
                 option_right: str | None = None, strike: Decimal | None = None, expiry: Any = None,
                 parent_order_id: int | None = None, wait_for_order_id: int | None = None) -> dict[str, Any]:
    return {
        "client_order_id": client_order_id, "user_id": user_id, "broker_account_id": broker_account_id,
        "signal_id": signal_id, "decision_id": decision_id, "parent_order_id": parent_order_id, "leg": leg,
        "oco_group": oco_group, "symbol": symbol, "asset_class": asset_class, "side": side,
        "order_type": order_type, "time_in_force": time_in_force, "quantity": quantity,
        "limit_price": limit_price, "stop_price": stop_price, "reduce_only": reduce_only,
        "option_right": option_right, "strike": strike, "expiry": expiry, "status": "new",
        "filled_quantity": Decimal(0), "fees": Decimal(0), "attempts": 0,
        "wait_for_order_id": wait_for_order_id, "created_at": now, "updated_at": now,
    }


@dataclass
class Plan:
    """New orders to write, plus the venue cancels and amendments to send after the commit."""

    intents: list[Intent] = field(default_factory=list)
    cancel_order_ids: set[int] = field(default_factory=set)
    replace: dict[int, dict[str, Any]] = field(default_factory=dict)  # order id -> new quantity / prices

    def add(self, fields: dict[str, Any], *, parent: Intent | None = None, wait_for: Intent | None = None) -> Intent:
        intent = Intent(fields, parent, wait_for)
        self.intents.append(intent)
        return intent

    def extend(self, other: Plan) -> None:
        self.intents.extend(other.intents)
        self.cancel_order_ids |= other.cancel_order_ids
        for order_id, changes in other.replace.items():
            self.replace.setdefault(order_id, {}).update(changes)

    def write(self, session: Session, journal: Journal, *, audit: bool = True, ids: IdPool | None = None) -> list[int]:
        """Insert every intent; returns the ids of those that can be submitted at once.

        ``audit=False``: the caller records the intents in its own audit events (the fan-out
        puts them in each follower's decision event: one event per follower, not one per leg).
        ``ids``: ids drawn ahead (``bulk.IdPool``) for intents whose client order ids cannot exist
        yet (a fan-out's: they derive from a signal that is fresh or locked ``received``); the
        rows then join the journal's single write instead of one INSERT per dependency level.
        """
        drawn = ids.take(Order.__tablename__, len(self.intents)) if ids is not None and self.intents else None
        if drawn is not None:
            self._write_with(drawn, journal, audit)
            return [i.id for i in self.intents if i.ready_now]
        pending = list(self.intents)
        while pending:
            wave = [i for i in pending if (i.parent is None or i.parent.id is not None)
                    and (i.wait_for is None or i.wait_for.id is not None)]
            if not wave:
                raise RuntimeError("order plan has a dependency cycle")
            rows = []
            for intent in wave:
                row = dict(intent.fields)
                if intent.parent is not None:
                    row["parent_order_id"] = intent.parent.id
                if intent.wait_for is not None:
                    row["wait_for_order_id"] = intent.wait_for.id
                intent.row = row
                rows.append(row)
            ids = dict((cid, oid) for oid, cid in insert_ignore(
                session, Order, rows, conflict=("client_order_id",), returning=("id", "client_order_id")))
            inserted = set(ids)
            missing = [i.client_order_id for i in wave if i.client_order_id not in ids]
            if missing:  # written before (a concurrent worker): reuse, never duplicate
                ids.update({cid: oid for oid, cid in session.execute(
                    select(Order.id, Order.client_order_id).where(Order.client_order_id.in_(missing))).all()})
            for intent in wave:
                intent.id = ids[intent.client_order_id]
                intent.inserted = intent.client_order_id in inserted
                if intent.client_order_id not in inserted:
                    intent.row = None  # written by someone else: its row may differ
                    continue
                if not audit:
                    continue
                journal.audit("order.created", subject_type="order", subject_id=intent.id,
                              actor_user_id=intent.fields["user_id"], data=intent.summary())
            pending = [i for i in pending if i.id is None]
        return [i.id for i in self.intents if i.ready_now]

    def _write_with(self, drawn: list[int], journal: Journal, audit: bool) -> None:
        for intent, order_id in zip(self.intents, drawn):
            intent.id, intent.inserted = order_id, True
        rows = []
        for intent in self.intents:
            row = dict(intent.fields, id=intent.id)
            if intent.parent is not None:
                row["parent_order_id"] = intent.parent.id
            if intent.wait_for is not None:
                row["wait_for_order_id"] = intent.wait_for.id
            intent.row = row
            rows.append(row)
            if audit:
                journal.audit("order.created", subject_type="order", subject_id=intent.id,
                              actor_user_id=intent.fields["user_id"], data=intent.summary())
        journal.writes.insert(Order.__table__, rows)

    def orders(self) -> list[SimpleNamespace]:
        """The written intents as read-only order-like values (no query, no ORM object), for the
        submission that follows the commit."""
        return [SimpleNamespace(broker_order_id=None, next_attempt_at=None, **{**i.row, "id": i.id})
                for i in self.intents if i.id is not None and i.row is not None]


def _s(value: Decimal | None) -> str | None:
    return None if value is None else str(value)
