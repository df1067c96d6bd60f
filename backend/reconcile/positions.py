"""Position repairs: make the product's book hold what the venue holds.

Runs after the order repairs, so a difference left here is one no order of
the product explains: the member traded at the venue by hand, a stop the
venue held under its own id fired, or a fill was lost for good.  The
product never invents an order for it; it corrects the position itself
(FIFO lots and the realised-P&L ledger, the same arithmetic as a fill),
writes an audit event ``reconcile.<kind>`` and tells the member.

The exit or entry price of a correction is the best the venue offers, in
this order: the venue's own fills that explain the difference exactly (the
foreign fills); its mark for the position; a quote; the position's last
price.  Which one was used is recorded with the repair.

A symbol is corrected only if neither side moved while it was being
looked at (two venue reads agree, and the product's row is unchanged when
locked), so a fill arriving mid-check is never mistaken for drift.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

import sqlalchemy as sa
from sqlmodel import Session, select

from backend.brokers.base import BrokerPosition
from backend.db.models import Notification, Order, Position, PositionLot, RealizedPnl
from backend.execution import intents as legs
from backend.execution.adapters import Adapters
from backend.execution.brackets import rebalance
from backend.execution.intents import contract_multiplier
from backend.execution.journal import Journal
from backend.execution.positions import Lot, fifo_apply, order_position_key, position_event, summarise
from backend.execution.settle import Followups, LazyReplaceable, record_intents
from backend.execution.sqlutil import locked
from backend.execution.state_machine import CANCELLED, WORKING, transition
from backend.reconcile.report import POSITION_ADJUSTED, POSITION_CLOSED, UNKNOWN_POSITION, Repair
from backend.reconcile.venue import ForeignFill, position_key

ZERO = Decimal(0)
OCC = re.compile(r"^[A-Z]{1,6}\d{6}[CP]\d{8}$")


@dataclass
class Drift:
    key: str
    symbol: str                   # the product's spelling when it has the position, else the venue's
    product_qty: Decimal
    venue: BrokerPosition | None
    price: Decimal | None = None
    price_source: str = "none"

    @property
    def venue_qty(self) -> Decimal:
        return self.venue.quantity if self.venue is not None else ZERO


def product_positions(engine: sa.Engine, account_id: int) -> dict[str, Position]:
    with Session(engine, expire_on_commit=False) as session:
        rows = session.exec(select(Position).where(Position.broker_account_id == account_id)).all()
    return {position_key(p.symbol): p for p in rows}


def find_drifts(product: dict[str, Position], before: dict[str, BrokerPosition],
                after: dict[str, BrokerPosition], notes: list[str]) -> list[Drift]:
    drifts = []
    for key in sorted(set(product) | set(before) | set(after)):
        held = product[key].quantity if key in product else ZERO
        first, second = before.get(key), after.get(key)
        venue_qty = second.quantity if second else ZERO
        if (first.quantity if first else ZERO) != venue_qty:
            notes.append(f"{key} changed at the broker while it was being checked; looked at again next run.")
            continue
        if held != venue_qty:
            symbol = product[key].symbol if key in product else re.sub(r"\s+", "", second.symbol)
            drifts.append(Drift(key, symbol, held, second))
    return drifts


def price_from_venue(drifts: list[Drift], foreign: list[ForeignFill]) -> list[Drift]:
    """Price each correction from the venue's fills, cost or mark (see the module docstring)."""
    by_key: dict[str, list[ForeignFill]] = {}
    for f in foreign:
        if f.symbol and f.side:
            by_key.setdefault(position_key(f.symbol), []).append(f)
    for d in drifts:
        delta = d.venue_qty - d.product_qty
        fills = by_key.get(d.key, [])
        if fills and sum((f.signed for f in fills), ZERO) == delta and len({f.side for f in fills}) == 1:
            size = sum((f.fill.quantity for f in fills), ZERO)
            d.price, d.price_source = (sum((f.fill.quantity * f.fill.price for f in fills), ZERO) / size
                                       ).quantize(Decimal("1e-10")), "venue_fills"
        elif d.product_qty == 0 and d.venue is not None and d.venue.avg_price > 0:
            d.price, d.price_source = d.venue.avg_price, "venue_cost"
        elif d.venue is not None and d.venue.market_price:
            d.price, d.price_source = d.venue.market_price, "venue_mark"
    return drifts


def price_fallback(drifts: list[Drift], product: dict[str, Position]) -> None:
    """Last resort: the product's own last price of the position."""
    for d in drifts:
        if d.price is None and d.key in product and product[d.key].last_price:
            d.price, d.price_source = product[d.key].last_price, "last_price"


def adjust(session: Session, pos: Position, target: Decimal, price: Decimal, journal: Journal, now,
           mark: Decimal | None = None) -> Decimal:
    """Move ``pos`` to ``target`` as one fill at ``price`` would (FIFO); returns the P&L realised.

    The lots are read and written here as ORM rows; only the engine's pure FIFO
    arithmetic (``fifo_apply``, ``summarise``) is shared, so a fill and a
    correction can never compute P&L differently.  ``mark``: the venue's
    current price, kept as the position's last price (unrealised P&L).
    """
    rows = session.exec(select(PositionLot).where(PositionLot.position_id == pos.id).order_by(PositionLot.id)).all()
    lots = [Lot(r.quantity, r.price) for r in rows]
    stored = {id(lot): row for lot, row in zip(lots, rows)}
    was_flat = pos.quantity == 0
    closed, gross, _ = fifo_apply(lots, target - pos.quantity, price)
    amount = gross * contract_multiplier(pos.asset_class)
    if closed > 0:
        session.add(RealizedPnl(user_id=pos.user_id, broker_account_id=pos.broker_account_id, fill_id=None,
                                symbol=pos.symbol, amount=amount, realized_at=now))
        pos.realized_pnl += amount
    pos.quantity, pos.avg_price = summarise(lots)
    pos.last_price, pos.updated_at = mark or price, now
    if was_flat and pos.quantity != 0:
        pos.opened_at = now
    if pos.quantity == 0:
        pos.stop_loss, pos.take_profits = None, []
    for lot in lots:
        row = stored.get(id(lot))
        if row is None:
            if lot.quantity != 0:
                session.add(PositionLot(position_id=pos.id, quantity=lot.quantity, price=lot.price, opened_at=now))
        elif lot.quantity == 0:
            session.delete(row)
        elif lot.quantity != row.quantity:
            row.quantity = lot.quantity
    journal.push(pos.user_id, position_event(pos), key=pos.id)
    return amount if closed > 0 else ZERO


def _n(value: Decimal | None) -> str:
    return "?" if value is None else format(value.normalize(), "f")


def _asset_class(symbol: str, asset_classes: frozenset[str]) -> str:
    if OCC.match(symbol):
        return "option"
    return "crypto" if asset_classes == frozenset({"crypto"}) else "stock"


def repair_positions(engine: sa.Engine, adapters: Adapters, account, drifts: list[Drift],
                     expected: dict[str, Decimal], unverifiable: set[int], asset_classes: frozenset[str],
                     now) -> tuple[list[Repair], Followups, list[str]]:
    """Correct each drift whose product row still holds ``expected[key]``; returns repairs, follow-ups, notes."""
    repairs: list[Repair] = []
    notes: list[str] = []
    if not drifts:
        return repairs, Followups(), notes
    journal = Journal()
    with Session(engine, expire_on_commit=False) as session:
        rows = session.exec(locked(session, select(Position).where(Position.broker_account_id == account.id))).all()
        current = {position_key(p.symbol): p for p in rows}
        touched: list[Position] = []
        for d in drifts:
            pos = current.get(d.key)
            if (pos.quantity if pos else ZERO) != expected.get(d.key, ZERO):
                notes.append(f"{d.symbol} changed in the product while it was being checked; "
                             "looked at again next run.")
                continue
            if d.price is None:
                notes.append(f"{d.symbol}: the broker holds {_n(d.venue_qty)} and the product {_n(d.product_qty)}, "
                             "but no price is known to correct it with; left for the next run.")
                continue
            if pos is None:  # never traded here: a flat row to correct (an engine fill creating it now would
                # collide on the unique (account, symbol) and fail this account's run, to be redone next time)
                pos = Position(user_id=account.user_id, broker_account_id=account.id, symbol=d.symbol,
                               asset_class=_asset_class(d.symbol, asset_classes), quantity=ZERO, avg_price=ZERO,
                               realized_pnl=ZERO, fees=ZERO, take_profits=[], updated_at=now)
                session.add(pos)
                session.flush()
            before = pos.quantity
            mark = d.venue.market_price if d.venue is not None else None
            realized = adjust(session, pos, d.venue_qty, d.price, journal, now, mark=mark)
            touched.append(pos)
            repairs.append(_report(session, journal, account, pos, d, before, realized, now))
        followups = _protect(session, journal, adapters, account.id, touched, unverifiable, now)
        journal.flush_audit(session)
        session.commit()
    journal.publish()
    return repairs, followups, notes


def _report(session: Session, journal: Journal, account, pos: Position, d: Drift, before: Decimal,
            realized: Decimal, now) -> Repair:
    if before == 0:
        kind = UNKNOWN_POSITION
        message = (f"the broker holds {_n(d.venue_qty)} {pos.symbol} that the product never opened; recorded at "
                   f"{_n(d.price)} ({d.price_source}) and flagged.")
        title = f"{pos.symbol}: a position at the broker that no signal opened"
    else:
        kind = POSITION_CLOSED if d.venue_qty == 0 else POSITION_ADJUSTED
        message = (f"the broker holds {_n(d.venue_qty)} {pos.symbol} where the product held {_n(before)}; corrected "
                   f"at {_n(d.price)} ({d.price_source}), realising {_n(realized)}.")
        title = f"{pos.symbol}: your position was corrected from the broker"
    data = {"broker_account_id": account.id, "symbol": pos.symbol, "before": _n(before), "after": _n(pos.quantity),
            "price": _n(d.price), "price_source": d.price_source, "realized": _n(realized), "flagged": before == 0}
    journal.audit(f"reconcile.{kind}", subject_type="position", subject_id=pos.id, actor_user_id=pos.user_id,
                  data={"message": message, **data})
    session.add(Notification(user_id=pos.user_id, kind=f"reconcile.{kind}", title=title[:200], created_at=now,
                             body=f"Reconciliation with {account.label}: {message}", data=data, dm_status="pending"))
    return Repair(kind, account.id, pos.symbol, message, data)


def _protect(session: Session, journal: Journal, adapters: Adapters, account_id: int, touched: list[Position],
             unverifiable: set[int], now) -> Followups:
    """Keep stops and take-profits within the corrected positions, as the engine does after a fill.

    Bracket legs the venue holds under its own ids cannot be cancelled by
    ours: once their position is flat they are closed here with an event.
    """
    if not touched:
        return Followups()
    flat = {p.symbol for p in touched if p.quantity == 0}
    rows = session.exec(locked(session, select(Order).where(Order.broker_account_id == account_id,
                                                            Order.status.in_(tuple(WORKING))))).all()
    candidates = []
    for order in rows:
        if order.id not in unverifiable:
            candidates.append(order)
        elif legs.is_child(order.leg) and order_position_key(order) in flat:
            transition(session, order, CANCELLED, journal, now=now,
                       message="Reconciliation: the position is flat at the broker; this bracket leg, held by the "
                               "broker under its own id, ended with it.")
    cancels: set[int] = set()
    plan = rebalance(session, touched, journal, now=now, venue_cancels=cancels,
                     replaceable=LazyReplaceable(session, adapters), candidates=candidates)
    plan.write(session, journal)
    return record_intents(session, Followups(set(), cancels, plan.replace), now)
