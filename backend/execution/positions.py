"""Positions from fills: FIFO lots, realised P&L ledger, unrealised P&L.

A position is the signed sum of its open lots (negative = short).  A fill
first closes the oldest opposite lots (FIFO), booking ``(exit - entry) x
quantity`` for a long lot and ``(entry - exit) x quantity`` for a short one,
times the contract multiplier; whatever is left opens a new lot on the
fill's side, which is how a position flips through zero.

Fees are realised when paid: each fill's fee is subtracted in the same
``realized_pnl`` row as its P&L (an opening fill with a fee books a row of
``-fee``), so the daily-loss limit and the reports, which sum that ledger,
see what the account really lost.  ``positions.realized_pnl`` is the
running total of those rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlmodel import Session

from backend.db.models import Fill, Order, Position, PositionLot, RealizedPnl
from backend.execution.intents import contract_multiplier, position_key
from backend.execution.journal import Journal
from backend.execution import pipeline
from backend.execution.rows import POSITION_COLUMNS, POSITIONS, PositionRow, queue_write_back
from backend.execution.bulk import Writes
from backend.execution.sqlutil import insert_ignore

ZERO = Decimal(0)


@dataclass
class Lot:
    quantity: Decimal  # signed
    price: Decimal
    row_id: int | None = None      # the stored position_lots row, if any
    stored: Decimal | None = None  # its stored quantity
    opened_at: datetime | None = None


def fifo_apply(lots: list[Lot], signed_qty: Decimal, price: Decimal) -> tuple[Decimal, Decimal, Lot | None]:
    """Apply one fill to ``lots`` in place.

    Returns (quantity closed, gross P&L per unit of multiplier, the new lot
    opened by the remainder or None).  Emptied lots stay in the list with
    quantity 0 for the caller to delete.
    """
    remaining = signed_qty
    closed = ZERO
    pnl = ZERO
    for lot in lots:
        if remaining == 0:
            break
        if lot.quantity == 0 or (lot.quantity > 0) == (remaining > 0):
            continue
        matched = min(abs(remaining), abs(lot.quantity))
        if lot.quantity > 0:
            pnl += (price - lot.price) * matched
            lot.quantity -= matched
            remaining += matched
        else:
            pnl += (lot.price - price) * matched
            lot.quantity += matched
            remaining -= matched
        closed += matched
    new_lot = Lot(remaining, price) if remaining != 0 else None
    if new_lot is not None:
        lots.append(new_lot)
    return closed, pnl, new_lot


def summarise(lots: Iterable[Lot]) -> tuple[Decimal, Decimal]:
    """(signed quantity, average entry price) of the open lots."""
    open_lots = [lot for lot in lots if lot.quantity != 0]
    qty = sum((lot.quantity for lot in open_lots), ZERO)
    size = sum((abs(lot.quantity) for lot in open_lots), ZERO)
    if size == 0:
        return ZERO, ZERO
    avg = sum((abs(lot.quantity) * lot.price for lot in open_lots), ZERO) / size
    return qty, avg.quantize(Decimal("1e-10"))


def unrealized_pnl(position: Position, price: Decimal | None = None) -> Decimal:
    """Open P&L at ``price`` (default: the position's last price)."""
    mark = price if price is not None else position.last_price
    if mark is None or position.quantity == 0:
        return ZERO
    return (mark - position.avg_price) * position.quantity * contract_multiplier(position.asset_class)


def order_position_key(order: Order) -> str:
    return position_key(order.symbol, order.asset_class, order.option_right, order.strike, order.expiry)


_LOTS = PositionLot.__table__
_POSITIONS_WITH_LOTS = (
    sa.select(POSITIONS, _LOTS.c.id.label("lot_id"), _LOTS.c.quantity.label("lot_quantity"),
              _LOTS.c.price.label("lot_price"))
    .select_from(POSITIONS.outerjoin(_LOTS, _LOTS.c.position_id == POSITIONS.c.id))
    .where(POSITIONS.c.broker_account_id.in_(sa.bindparam("accounts", expanding=True)),
           POSITIONS.c.symbol.in_(sa.bindparam("symbols", expanding=True)))
    .order_by(POSITIONS.c.id, _LOTS.c.id)
)
_POSITIONS_WITH_LOTS_LOCKED = _POSITIONS_WITH_LOTS.with_for_update(of=POSITIONS)


_PG_POSITIONS_WITH_LOTS = (
    f"SELECT {pipeline.columns(POSITIONS, 'p')}, l.id, l.quantity, l.price FROM positions p "
    "LEFT JOIN position_lots l ON l.position_id = p.id "
    "WHERE p.broker_account_id = ANY(%(accounts)s) AND p.symbol = ANY(%(symbols)s) "
    "ORDER BY p.id, l.id FOR UPDATE OF p"
)


def pipelined_read(keys: set[tuple[int, str]]) -> tuple[str, dict]:
    """The positions (and lots) of ``keys`` as a ``pipeline`` read, locked; parse with ``from_rows``."""
    return _PG_POSITIONS_WITH_LOTS, {"accounts": sorted({k[0] for k in keys}), "symbols": sorted({k[1] for k in keys})}


def from_rows(rows: list[tuple], keys: set[tuple[int, str]]) -> Preloaded:
    width = len(POSITION_COLUMNS)
    found: dict[tuple[int, str], PositionRow] = {}
    lots: dict[int, list[Lot]] = {}
    for row in rows:
        position = dict(zip(POSITION_COLUMNS, row[:width]))
        key = (position["broker_account_id"], position["symbol"])
        if key not in keys:
            continue
        if key not in found:
            found[key] = PositionRow(position)
            lots[position["id"]] = []
        lot_id, quantity, price = row[width:]
        if lot_id is not None:
            lots[position["id"]].append(Lot(quantity, price, lot_id, quantity))
    return Preloaded(keys, found, lots)


@dataclass
class Preloaded:
    """Positions (with their lots) the caller has read and locked already, for ``apply_fills``."""

    keys: set[tuple[int, str]]
    found: dict[tuple[int, str], PositionRow]
    lots: dict[int, list[Lot]]


def load_positions(session: Session, keys: set[tuple[int, str]], owners: dict[tuple[int, str], tuple[int, str]],
                   now: datetime) -> dict[tuple[int, str], PositionRow]:
    """Positions for (account, symbol) keys, created flat when missing, row-locked on Postgres."""
    return _load(session.connection(), keys, owners, now)[0]


def _load(conn: sa.Connection, keys: set[tuple[int, str]], owners: dict[tuple[int, str], tuple[int, str]],
          now: datetime, preloaded: Preloaded | None = None
          ) -> tuple[dict[tuple[int, str], PositionRow], dict[int, list[Lot]]]:
    if not keys:
        return {}, {}
    if preloaded is not None and keys <= preloaded.keys:
        found = {k: p for k, p in preloaded.found.items() if k in keys}
        lots = {p.id: preloaded.lots[p.id] for p in found.values()}
    else:
        found, lots = _select(conn, keys)
    missing = keys - set(found)
    if missing:  # first trade in a symbol: create it (a concurrent creator wins the race harmlessly)
        insert_ignore(conn, Position, [
            {"broker_account_id": acc, "symbol": sym, "user_id": owners[(acc, sym)][0],
             "asset_class": owners[(acc, sym)][1], "quantity": ZERO, "avg_price": ZERO, "realized_pnl": ZERO,
             "fees": ZERO, "take_profits": [], "updated_at": now}
            for acc, sym in sorted(missing)
        ], conflict=("broker_account_id", "symbol"))
        more, more_lots = _select(conn, missing)
        found.update(more)
        lots.update(more_lots)
    return found, lots


def _select(conn: sa.Connection, keys: set[tuple[int, str]]) -> tuple[dict[tuple[int, str], PositionRow],
                                                                        dict[int, list[Lot]]]:
    stmt = _POSITIONS_WITH_LOTS_LOCKED if conn.dialect.name == "postgresql" else _POSITIONS_WITH_LOTS
    found: dict[tuple[int, str], PositionRow] = {}
    lots: dict[int, list[Lot]] = {}
    for row in conn.execute(stmt, {"accounts": sorted({k[0] for k in keys}), "symbols": sorted({k[1] for k in keys})}):
        key = (row.broker_account_id, row.symbol)
        if key not in keys:
            continue
        if key not in found:
            found[key] = PositionRow(row._mapping)
            lots[row.id] = []
        if row.lot_id is not None:
            lots[row.id].append(Lot(row.lot_quantity, row.lot_price, row.lot_id, row.lot_quantity))
    return found, lots


def apply_fills(session: Session, items: Sequence[tuple[Order, Fill]], journal: Journal,
                now: datetime, *, writes: Writes | None = None,
                preloaded: Preloaded | None = None, booked: list[dict] | None = None
                ) -> dict[tuple[int, str], PositionRow]:
    """Book fills (with their ids) into positions, lots and the P&L ledger.

    Positions are plain rows (``rows.PositionRow``): the caller must not also
    hold ORM ``Position`` objects of them in the session.  The changes are
    written before returning, or queued in ``writes`` (the journal's, written
    with the audit events) by a caller that reads none of them again before
    that, and books no other fills in the transaction.  ``booked``: receives
    the ``realized_pnl`` rows written (the loss guard counts them before they
    reach the database).
    """
    if not items:
        return {}
    conn = session.connection()
    owners = {(o.broker_account_id, order_position_key(o)): (o.user_id, o.asset_class) for o, _ in items}
    positions, lots = _load(conn, set(owners), owners, now, preloaded)
    pnl_rows = []
    for order, fill in sorted(items, key=lambda pair: (pair[1].filled_at, pair[1].id or 0)):
        pos = positions[(order.broker_account_id, order_position_key(order))]
        signed = fill.quantity if order.side == "buy" else -fill.quantity
        was_flat = pos.quantity == 0
        closed, gross, new_lot = fifo_apply(lots[pos.id], signed, fill.price)
        if new_lot is not None:
            new_lot.opened_at = fill.filled_at
        amount = gross * contract_multiplier(pos.asset_class) - fill.fee
        if closed > 0 or fill.fee != 0:
            pnl_rows.append({"user_id": pos.user_id, "broker_account_id": pos.broker_account_id, "fill_id": fill.id,
                             "symbol": pos.symbol, "amount": amount, "realized_at": fill.filled_at})
            pos.realized_pnl += amount
        pos.fees += fill.fee
        pos.quantity, pos.avg_price = summarise(lots[pos.id])
        pos.last_price = fill.price
        pos.updated_at = now
        if was_flat and pos.quantity != 0:
            pos.opened_at = fill.filled_at
        if pos.quantity == 0:
            pos.stop_loss, pos.take_profits = None, []
        journal.audit("fill.booked", subject_type="order", subject_id=order.id, actor_user_id=order.user_id,
                      data={"fill_id": fill.id, "symbol": pos.symbol, "side": order.side,
                            "quantity": str(fill.quantity), "price": str(fill.price), "fee": str(fill.fee),
                            "closed": str(closed), "realized": str(amount), "position": str(pos.quantity)})
        journal.push(pos.user_id, position_event(pos), key=pos.id)
    now_writes = writes is None
    writes = Writes() if writes is None else writes
    _write_lots(writes, lots)
    writes.insert(RealizedPnl.__table__, pnl_rows)
    if booked is not None:
        booked.extend(pnl_rows)
    queue_write_back(writes, POSITIONS, positions.values())
    if now_writes:
        writes.flush(conn)
    return positions


def _write_lots(writes: Writes, lots: dict[int, list[Lot]]) -> None:
    inserts, updates, deletes = [], [], []
    for position_id, pos_lots in lots.items():
        for lot in pos_lots:
            if lot.row_id is None:
                if lot.quantity != 0:
                    inserts.append({"position_id": position_id, "quantity": lot.quantity, "price": lot.price,
                                    "opened_at": lot.opened_at})
            elif lot.quantity == 0:
                deletes.append(lot.row_id)
            elif lot.quantity != lot.stored:
                updates.append({"id": lot.row_id, "quantity": lot.quantity})
    writes.delete(_LOTS, deletes)
    writes.update(_LOTS, updates)
    writes.insert(_LOTS, inserts)


def mark_prices(session: Session, prices: dict[str, dict[int, Decimal]], now: datetime) -> int:
    """Set ``last_price`` of open positions: ``{symbol: {account id: price}}``; returns rows updated."""
    params = [{"b_account": account_id, "b_symbol": symbol, "last_price": price, "updated_at": now}
              for symbol, by_account in prices.items() for account_id, price in by_account.items()]
    if not params:
        return 0
    session.execute(sa.update(Position.__table__).where(
        Position.__table__.c.broker_account_id == sa.bindparam("b_account"),
        Position.__table__.c.symbol == sa.bindparam("b_symbol")), params)
    return len(params)


def position_event(pos: Position) -> dict:
    return {"type": "position.updated", "position": {
        "id": pos.id, "broker_account_id": pos.broker_account_id, "symbol": pos.symbol,
        "quantity": str(pos.quantity), "avg_price": str(pos.avg_price), "realized_pnl": str(pos.realized_pnl),
        "unrealized_pnl": str(unrealized_pnl(pos)), "last_price": None if pos.last_price is None else str(pos.last_price),
    }}
