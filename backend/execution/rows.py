"""Plain rows for the settlement hot path: orders and positions without the ORM.

Recording a thousand acks with ORM objects costs more in object bookkeeping
(identity map, attribute events, pydantic-backed ``__setattr__``) than in
SQL.  ``OrderRow`` and ``PositionRow`` carry the same attributes as the
``Order`` and ``Position`` models, so the state machine, the bracket rules
and the position book work on them unchanged; they remember the values they
were loaded with, and ``queue_write_back`` queues the update of only the
rows (and columns) that changed into the journal's single write.

A unit of work that uses rows must write them back before it commits; the
ORM knows nothing about them.  ``Settlement`` does so at the end of
``finish`` when it was given rows, the fan-out for the profiles and open
orders ``loading`` read.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa

from backend.db.models import Order, Position
from backend.execution import pipeline
from backend.execution.bulk import Writes

ORDERS = Order.__table__
POSITIONS = Position.__table__
ORDER_COLUMNS = tuple(c.name for c in ORDERS.columns)
POSITION_COLUMNS = tuple(c.name for c in POSITIONS.columns)


class Row:
    """Attributes named after a table's columns, and the values they were loaded with."""

    __slots__ = ("_loaded",)
    COLUMNS: tuple[str, ...] = ()

    def __init__(self, values: Any) -> None:
        for name in self.COLUMNS:
            setattr(self, name, values[name])
        self._loaded = self._values()

    def _values(self) -> tuple:
        return tuple(getattr(self, name) for name in self.COLUMNS)

    def changes(self) -> dict[str, Any]:
        """The columns whose value differs from the loaded one."""
        return {name: now for name, now, then in zip(self.COLUMNS, self._values(), self._loaded) if now != then}

    def mark_written(self) -> None:
        self._loaded = self._values()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={getattr(self, 'id', None)})"


class OrderRow(Row):
    __slots__ = ORDER_COLUMNS
    COLUMNS = ORDER_COLUMNS


class PositionRow(Row):
    __slots__ = POSITION_COLUMNS
    COLUMNS = POSITION_COLUMNS


def queue_write_back(writes: Writes, table: sa.Table, rows: Iterable[Row]) -> int:
    """Queue the updates of the changed columns of ``rows`` in ``writes``; returns how many rows changed."""
    updates = []
    for row in rows:
        changed = row.changes()
        if changed:
            updates.append({"id": row.id, **changed})
            row.mark_written()
    writes.update(table, updates)
    return len(updates)


# Built once (see ``paper_store``): a statement's construction costs more than its round trip.
_SETTLEMENT_ORDERS = (
    sa.select(ORDERS)
    .where(ORDERS.c.broker_account_id.in_(sa.bindparam("accounts", expanding=True)),
           sa.or_(ORDERS.c.id.in_(sa.bindparam("ids", expanding=True)),
                  ORDERS.c.status.in_(sa.bindparam("open", expanding=True))))
    .order_by(ORDERS.c.id)
)
_SETTLEMENT_ORDERS_LOCKED = _SETTLEMENT_ORDERS.with_for_update()
_OPEN_OF_ACCOUNTS = (sa.select(ORDERS).where(ORDERS.c.broker_account_id.in_(sa.bindparam("accounts", expanding=True)),
                                             ORDERS.c.status.in_(sa.bindparam("open", expanding=True)))
                     .order_by(ORDERS.c.id))


_PG_SETTLEMENT_ORDERS = (
    f"SELECT {pipeline.columns(ORDERS, 'o')} FROM orders o WHERE o.broker_account_id = ANY(%(accounts)s) "
    "AND (o.id = ANY(%(ids)s) OR o.status = ANY(%(open)s)) ORDER BY o.id FOR UPDATE"
)


def orders_for_settlement(conn: sa.Connection, ids: Sequence[int], account_ids: Iterable[int],
                          open_statuses: Iterable[str], *, then: Sequence[tuple[str, dict]] = ()
                          ) -> tuple[dict[int, OrderRow], list[OrderRow], list[list[tuple]] | None]:
    """Lock ``ids`` and the open orders of their accounts in ONE statement (Postgres ``FOR UPDATE``, id order).

    Returns ``({id: row} of the requested ids, every row loaded, rows of then)``; the
    open orders are the candidates that settling may release, cancel or resize.
    ``then``: reads (``pipeline`` syntax) sent in the same round trip after the lock,
    whose rows come back third (None where there is no pipeline: read them yourself).
    """
    params = {"accounts": sorted(set(account_ids)), "ids": sorted(set(ids)), "open": sorted(open_statuses)}
    results = pipeline.read(conn, [(_PG_SETTLEMENT_ORDERS, params), *then])
    if results is not None:
        rows = [OrderRow(dict(zip(ORDER_COLUMNS, r))) for r in results[0]]
        extra: list[list[tuple]] | None = results[1:]
    else:
        stmt = _SETTLEMENT_ORDERS_LOCKED if conn.dialect.name == "postgresql" else _SETTLEMENT_ORDERS
        rows = [OrderRow(r._mapping) for r in conn.execute(stmt, params)]
        extra = None
    wanted = set(ids)
    return {r.id: r for r in rows if r.id in wanted}, rows, extra


def open_orders_of(conn: sa.Connection, account_ids: Iterable[int], open_statuses: Iterable[str]) -> list[OrderRow]:
    ids = sorted(set(account_ids))
    if not ids:
        return []
    return [OrderRow(r._mapping) for r in conn.execute(_OPEN_OF_ACCOUNTS, {"accounts": ids,
                                                                           "open": sorted(open_statuses)})]
