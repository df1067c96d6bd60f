"""Reading both sides: the product's open orders, and what the venue says about them.

Only broker calls and reads happen here, outside any transaction; the
repairs (``orders``, ``positions``) are then written in short transactions
that re-check every row under lock, the way the execution engine does.

Which product orders are compared: those ``submitted`` / ``partially_filled``,
and ``new`` ones older than ``MIN_AGE`` that wait for nothing (a worker that
died after the venue acknowledged them).  The venue's fills since the last
check are sorted three ways: fills of orders being compared (they give a
snapshot its real fill ids), fills the product lacks on orders it already
closed ("late" fills), and fills of orders the product never placed
("foreign": the member trading by hand, or a bracket leg the venue holds
under its own id), which only serve to price position corrections.
"""

from __future__ import annotations

import dataclasses
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa
from sqlmodel import Session, select

from backend.brokers.base import BrokerAdapter, BrokerPosition, OrderSnapshot, VenueFill
from backend.db.models import Fill, Order
from backend.errors import OrderNotFound, TradeExecutorError
from backend.execution import intents as legs
from backend.execution.state_machine import FINAL, NEW, OPEN, WORKING

MIN_AGE = timedelta(minutes=1)
ZERO = Decimal(0)
_NOT_ALNUM = re.compile(r"[^A-Z0-9]")


def position_key(symbol: str) -> str:
    """One spelling per instrument across venues: ``BTC/USDT`` = ``BTCUSDT``, ``AAPL  250620C...`` = OCC."""
    return _NOT_ALNUM.sub("", symbol.upper())


@dataclass
class ForeignFill:
    client_order_id: str
    fill: VenueFill
    symbol: str | None = None
    side: str | None = None

    @property
    def signed(self) -> Decimal:
        return self.fill.quantity if self.side == "buy" else -self.fill.quantity


@dataclass
class VenueView:
    positions: dict[str, BrokerPosition] = field(default_factory=dict)
    snapshots: dict[int, OrderSnapshot] = field(default_factory=dict)        # order id -> venue view
    missing: set[int] = field(default_factory=set)                           # order ids the venue no longer has
    unverifiable: set[int] = field(default_factory=set)                      # native bracket legs under venue ids
    late: dict[int, tuple[OrderSnapshot, list[VenueFill]]] = field(default_factory=dict)
    foreign: list[ForeignFill] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def positions_by_key(positions: list[BrokerPosition]) -> dict[str, BrokerPosition]:
    return {position_key(p.symbol): p for p in positions if p.quantity != 0}


def orders_to_check(engine: sa.Engine, account_id: int, now: datetime) -> list[Order]:
    """The account's working orders, plus ``new`` ones old enough that the venue may have them."""
    with Session(engine, expire_on_commit=False) as session:
        rows = session.exec(select(Order).where(Order.broker_account_id == account_id, Order.status.in_(tuple(OPEN)))
                            .order_by(Order.id)).all()
        waits = {o.wait_for_order_id for o in rows if o.wait_for_order_id}
        waited = dict(session.execute(select(Order.id, Order.status).where(Order.id.in_(waits))).all()) if waits else {}
    out = []
    for order in rows:
        if order.status in WORKING:
            out.append(order)
        elif order.status == NEW and order.created_at <= now - MIN_AGE and (
                order.wait_for_order_id is None or waited.get(order.wait_for_order_id) in FINAL):
            out.append(order)
    return out


def _native_leg(order: Order) -> bool:
    """A stop / take-profit the venue holds inside its entry's bracket, possibly under an id of its own."""
    return legs.is_child(order.leg) and order.parent_order_id is not None and not order.broker_order_id


def _with_fills(order: Order, snap: OrderSnapshot, unknown: list[VenueFill]) -> OrderSnapshot:
    """Give a totals-only snapshot the venue's real fills when they account exactly for what is new."""
    delta = snap.filled_quantity - order.filled_quantity
    if snap.fills or delta <= 0 or not unknown or sum((f.quantity for f in unknown), ZERO) != delta:
        return snap
    return dataclasses.replace(snap, fills=tuple(unknown))


async def gather(engine: sa.Engine, adapter: BrokerAdapter, account_id: int, checked: list[Order],
                 since: datetime, now: datetime) -> VenueView:
    view = VenueView(positions=positions_by_key(await adapter.positions()))
    listed = {s.client_order_id: s for s in await adapter.open_orders()}
    fills = await adapter.fills_since(since)
    by_cid: dict[str, list[VenueFill]] = defaultdict(list)
    for cid, fill in fills:
        by_cid[cid].append(fill)
    ours, recorded = _product_orders(engine, account_id, set(by_cid))
    checked_ids = {o.id for o in checked}
    for order in checked:
        snap = listed.get(order.client_order_id)
        if snap is None:
            try:
                snap = await adapter.order_status(order.client_order_id)
            except OrderNotFound:
                _classify_missing(view, order, now)
                continue
            except TradeExecutorError as exc:
                view.errors.append(f"{order.client_order_id}: {exc.message}")
                continue
        seen = recorded.get(order.id, set())
        unknown = [f for f in by_cid.get(order.client_order_id, ()) if f.fill_id[:64] not in seen]
        view.snapshots[order.id] = _with_fills(order, snap, unknown)
    for cid, venue_fills in by_cid.items():
        order = ours.get(cid)
        if order is None:
            view.foreign += await _foreign(adapter, cid, venue_fills)
        elif order.id not in checked_ids and order.status in FINAL:
            unknown = [f for f in venue_fills if f.fill_id[:64] not in recorded.get(order.id, set())]
            if unknown:
                await _late(view, adapter, order, unknown)
    return view


def _classify_missing(view: VenueView, order: Order, now: datetime) -> None:
    if order.status == NEW:
        return  # never reached the venue: the execution worker sends it (idempotently)
    if _native_leg(order):
        view.unverifiable.add(order.id)
        view.notes.append(f"{order.client_order_id} ({order.leg}) is held by the broker inside its bracket under "
                          "an id of its own; it is followed through the position instead.")
        return
    if (order.submitted_at or order.updated_at) > now - MIN_AGE:
        view.notes.append(f"{order.client_order_id} is not visible at the broker yet (sent less than a minute ago).")
        return
    view.missing.add(order.id)


async def _late(view: VenueView, adapter: BrokerAdapter, order: Order, unknown: list[VenueFill]) -> None:
    try:
        snap = await adapter.order_status(order.client_order_id)
    except TradeExecutorError as exc:
        view.errors.append(f"{order.client_order_id}: {exc.message}")
        return
    if snap.filled_quantity > order.filled_quantity:
        view.late[order.id] = (snap, unknown)


async def _foreign(adapter: BrokerAdapter, cid: str, fills: list[VenueFill]) -> list[ForeignFill]:
    """Fills of an order the product did not place; its symbol and side are asked for, best effort."""
    try:
        snap = await adapter.order_status(cid)
        symbol, side = snap.symbol, snap.side
    except TradeExecutorError:
        symbol = side = None
    return [ForeignFill(cid, f, symbol, side) for f in fills]


def _product_orders(engine: sa.Engine, account_id: int, cids: set[str]) -> tuple[dict[str, Order], dict[int, set[str]]]:
    """The account's orders among ``cids`` and the venue fill ids already recorded for them."""
    if not cids:
        return {}, {}
    with Session(engine, expire_on_commit=False) as session:
        orders = session.exec(select(Order).where(Order.broker_account_id == account_id,
                                                  Order.client_order_id.in_(list(cids)))).all()
        ids = [o.id for o in orders]
        fills: dict[int, set[str]] = defaultdict(set)
        if ids:
            for order_id, fill_id in session.execute(select(Fill.order_id, Fill.broker_fill_id)
                                                     .where(Fill.order_id.in_(ids))).all():
                fills[order_id].add(fill_id)
    return {o.client_order_id: o for o in orders}, fills
