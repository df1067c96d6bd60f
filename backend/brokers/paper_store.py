"""SQL for the paper venue's durable books (paper_accounts/orders/fills/quotes).

Plain SQLAlchemy Core on the SQLModel tables: the hot path (a market order)
is a handful of statements, and Core skips the ORM's per-row bookkeeping.

Concurrency model, the same result on both databases:
* Postgres: a writer locks the account rows it will touch (``FOR UPDATE``,
  in id order) *before* any order row, so cash is read and written under the
  lock and never overdrawn, and two writers never wait on each other in a cycle.
* Positions live in ``paper_positions``, one row per (account, symbol),
  written with the fills that change them: whoever writes fills holds the
  account's lock and has read its positions under it (``Positions``), so the
  new values are computed here and stored as they are (an upsert), and no
  reader ever adds up an account's fill history.
* SQLite: ``BEGIN IMMEDIATE`` takes the database's single write lock up
  front, so the same read-compute-write is safe between processes.  (SQLite
  stores Decimals as text, so guarded arithmetic such as
  ``cash >= :x`` in SQL would compare strings; the lock makes it unnecessary.)
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from backend.brokers.base import VenueFill
from backend.brokers.paper_book import OPEN, WORKING, BookFill, BookOrder
from backend.brokers.paper_rules import FLAT, Held, after_fill
from backend.db.models import PaperAccount, PaperFill, PaperOrder, PaperPosition, PaperQuote
from backend.db.types import DecimalType
from backend.execution import pipeline
from backend.execution.bulk import Writes, bulk_insert, bulk_update, insert_sql, supported

ACCOUNTS = PaperAccount.__table__
ORDERS = PaperOrder.__table__
FILLS = PaperFill.__table__
QUOTES = PaperQuote.__table__
POSITIONS = PaperPosition.__table__
REASON_MAX = 300
PositionKey = tuple[int, str]  # (paper account id, symbol)

_ORDER_COLUMNS = (
    ORDERS.c.id, ORDERS.c.paper_account_id, ORDERS.c.client_order_id, ORDERS.c.symbol, ORDERS.c.side,
    ORDERS.c.order_type, ORDERS.c.quantity, ORDERS.c.limit_price, ORDERS.c.stop_price, ORDERS.c.oco_group,
    ORDERS.c.status, ORDERS.c.filled_quantity, ORDERS.c.avg_fill_price, ORDERS.c.reject_reason,
)


@contextmanager
def write_transaction(engine: sa.Engine) -> Iterator[sa.Connection]:
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.commit()
        except BaseException:
            conn.rollback()
            raise


@contextmanager
def read_transaction(engine: sa.Engine) -> Iterator[sa.Connection]:
    """One consistent snapshot for several reads (cash and fills must agree for equity)."""
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN")
        else:
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        try:
            yield conn
        finally:
            conn.rollback()


def _insert(conn: sa.Connection, table: sa.Table):
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


# ------------------------------------------------------------------ accounts and quotes
def ensure_account(conn: sa.Connection, broker_account_id: int, starting_cash: Decimal, now: datetime) -> int:
    conn.execute(
        _insert(conn, ACCOUNTS)
        .values(broker_account_id=broker_account_id, cash=starting_cash, created_at=now)
        .on_conflict_do_nothing(index_elements=["broker_account_id"])
    )
    return conn.execute(sa.select(ACCOUNTS.c.id).where(ACCOUNTS.c.broker_account_id == broker_account_id)).scalar_one()


def ensure_accounts(conn: sa.Connection, wanted: Mapping[int, Decimal], now: datetime) -> dict[int, int]:
    """``ensure_account`` for many broker accounts at once: {broker account id: paper account id}.

    A broker account that does not exist gets no paper account (it is missing
    from the result) instead of failing the others with a foreign-key error.
    """
    found = _paper_ids(conn, wanted)
    missing = [b for b in wanted if b not in found]
    by_cash: dict[Decimal, list[int]] = defaultdict(list)
    for broker_account_id in missing:
        by_cash[wanted[broker_account_id]].append(broker_account_id)
    for cash, ids in by_cash.items():
        broker_accounts = sa.table("broker_accounts", sa.column("id"))
        conn.execute(
            _insert(conn, ACCOUNTS)
            .from_select(["broker_account_id", "cash", "created_at"], sa.select(
                broker_accounts.c.id, sa.literal(cash, DecimalType()), sa.literal(now, ACCOUNTS.c.created_at.type),
            ).where(broker_accounts.c.id.in_(sorted(ids))))
            .on_conflict_do_nothing(index_elements=["broker_account_id"])
        )
    if missing:
        found.update(_paper_ids(conn, missing))
    return found


def _paper_ids(conn: sa.Connection, broker_account_ids: Iterable[int]) -> dict[int, int]:
    rows = conn.execute(sa.select(ACCOUNTS.c.broker_account_id, ACCOUNTS.c.id).where(
        ACCOUNTS.c.broker_account_id.in_(sorted(set(broker_account_ids)))))
    return {row.broker_account_id: row.id for row in rows}


# Hot-path statements are built once: constructing and cache-keying a Core
# statement costs more Python time than the loopback round trip it makes.
_LOCK_ACCOUNTS_WITH_QUOTES = (
    sa.select(ACCOUNTS.c.id, ACCOUNTS.c.cash, QUOTES.c.symbol, QUOTES.c.price)
    .select_from(ACCOUNTS.outerjoin(QUOTES, QUOTES.c.symbol.in_(sa.bindparam("symbols", expanding=True))))
    .where(ACCOUNTS.c.id.in_(sa.bindparam("account_ids", expanding=True)))
    .order_by(ACCOUNTS.c.id).with_for_update(of=ACCOUNTS)
)
# The same, also making this transaction's commit asynchronous (``synchronous_commit = off``, local to
# the transaction) without a statement of its own; see ``paper_venue.place_for_accounts`` for why.
_LOCK_ACCOUNTS_WITH_QUOTES_ASYNC = _LOCK_ACCOUNTS_WITH_QUOTES.add_columns(
    sa.func.set_config("synchronous_commit", "off", True).label("async_commit"))


def lock_account_with_quotes(
    conn: sa.Connection, account_id: int, symbols: Iterable[str]
) -> tuple[Decimal, dict[str, Decimal]]:
    """One round trip: lock the account row, read its cash and the quotes of ``symbols``."""
    cash, quotes = lock_accounts_with_quotes(conn, [account_id], symbols)
    return cash[account_id], quotes


def lock_accounts_with_quotes(
    conn: sa.Connection, account_ids: Iterable[int], symbols: Iterable[str], *, durable: bool = True,
) -> tuple[dict[int, Decimal], dict[str, Decimal]]:
    """One round trip: lock the account rows (in id order), read their cash and the quotes of ``symbols``.

    ``durable=False`` (Postgres): the transaction's commit will not wait for the disk.
    """
    stmt = _LOCK_ACCOUNTS_WITH_QUOTES_ASYNC if not durable and conn.dialect.name == "postgresql" \
        else _LOCK_ACCOUNTS_WITH_QUOTES
    rows = conn.execute(stmt, {"account_ids": sorted(set(account_ids)), "symbols": sorted(set(symbols))}).all()
    cash = {row.id: row.cash for row in rows}
    return cash, {row.symbol: row.price for row in rows if row.symbol is not None}


_PG_LOCK_FOR_PLACING = (
    "SELECT a.id, a.cash, q.symbol, q.price, set_config('synchronous_commit', 'off', true) "
    "FROM paper_accounts a LEFT JOIN paper_quotes q ON q.symbol = ANY(%(symbols)s) "
    "WHERE a.id = ANY(%(account_ids)s) ORDER BY a.id FOR UPDATE OF a"
)
_PG_POSITIONS = (
    "SELECT paper_account_id, symbol, quantity, avg_price FROM paper_positions "
    "WHERE paper_account_id = ANY(%(account_ids)s) AND symbol = ANY(%(symbols)s)"
)


_PG_ORDER_IDS = "SELECT nextval(pg_get_serial_sequence('paper_orders', 'id')) FROM generate_series(1, %(n)s)"


def lock_for_placing(
    conn: sa.Connection, account_ids: Iterable[int], symbols: Iterable[str], order_ids: int = 0,
) -> tuple[dict[int, Decimal], dict[str, Decimal], Positions, list[int]]:
    """Lock the accounts (id order) and read their cash, the quotes of ``symbols`` and their positions
    in ``symbols``, and draw ``order_ids`` ids for new orders (see ``insert_placed``): one round trip
    with the BEGIN on Postgres (``execution.pipeline``; the positions are read after the lock is
    granted, by primary key).  No ids are drawn elsewhere.

    The transaction's commit will not wait for the disk (see ``paper_venue.place_for_accounts``).
    """
    ids, syms = sorted(set(account_ids)), sorted(set(symbols))
    reads = [(_PG_LOCK_FOR_PLACING, {"account_ids": ids, "symbols": syms})]
    if syms:
        reads.append((_PG_POSITIONS, {"account_ids": ids, "symbols": syms}))
    if order_ids:
        reads.append((_PG_ORDER_IDS, {"n": order_ids}))
    results = pipeline.read(conn, reads)
    if results is None:
        cash, quotes = lock_accounts_with_quotes(conn, ids, syms, durable=False)
        return cash, quotes, read_positions(conn, ids, syms), []
    cash = {row[0]: row[1] for row in results[0]}
    quotes = {row[2]: row[3] for row in results[0] if row[2] is not None}
    positions = Positions(frozenset(ids), frozenset(syms),
                          {(row[0], row[1]): (row[2], row[3]) for row in results[1]} if syms else {})
    drawn = [row[0] for row in results[-1]] if order_ids else []
    return cash, quotes, positions, drawn


def insert_placed(conn: sa.Connection, new: list[BookOrder], changed: list[BookOrder], fills: list[BookFill],
                  cash: Mapping[int, Decimal], positions: Mapping[PositionKey, Held], now: datetime, *,
                  commit: bool = False) -> set[int]:
    """Postgres: a placement's writes as ONE statement: the new orders (their ids drawn ahead by
    ``lock_for_placing``; ``ON CONFLICT DO NOTHING`` on the client order id), the changed orders, the
    fills (of the new orders that went in, or of existing ones), the cash and the positions the fills
    changed (``Positions.after``).  Returns the ids of the new orders that went in, and sets the fills'
    ids if all did.  If some did not (their client id exists already: a retry racing the first attempt)
    the caller must roll the transaction back: the cash and positions were written as if they had.

    ``commit``: the transaction's COMMIT goes in the same round trip (``pipeline.commit``), so the
    transaction is over when this returns.  A client order id that exists already then cannot be
    skipped (the cash would be committed with it): the INSERT has no ``ON CONFLICT`` and raises
    ``IntegrityError``, nothing is committed, and the caller places again without ``commit``.
    """
    order_rows = [_order_values(o) | {"id": o.id, "created_at": now, "updated_at": now} for o in new]
    writes = Writes()
    writes.update(ORDERS, [{"id": o.id, "updated_at": now} | _changed_values(o) for o in changed])
    writes.update(ACCOUNTS, [{"id": account_id, "cash": value} for account_id, value in sorted(cash.items())])
    ctes, values = writes.ctes(conn)
    order_sql, order_values = insert_sql(conn, ORDERS, order_rows, "o_", returning=("id",),
                                         conflict=() if commit else ("paper_account_id", "client_order_id"))
    values.update(order_values)
    parts = [f"o AS ({order_sql})", *(f"w{i} AS ({cte})" for i, cte in enumerate(ctes))]
    selects = ["SELECT 0, id FROM o"]
    if fills:
        fill_sql, fill_values = insert_sql(conn, FILLS, [_fill_values(f) for f in fills], "f_", returning=("id",),
                                           ordered=True, where='v."paper_order_id" IN (SELECT id FROM o) '
                                                               'OR v."paper_order_id" = ANY(%(f_existing)s)')
        values.update(fill_values, f_existing=sorted({f.order_id for f in fills} - {o.id for o in new}))
        parts.append(f"f AS ({fill_sql})")
        selects.append("SELECT 1, id FROM f")
    if positions:
        position_sql, position_values = _upsert_positions_sql(conn, positions, now, "p_")
        values.update(position_values)
        parts.append(f"p AS ({position_sql})")
    sql = "WITH " + ", ".join(parts) + " " + " UNION ALL ".join(selects)
    done = pipeline.commit(conn, [(sql, values)]) if commit else None
    rows = done[0] if done is not None else conn.exec_driver_sql(sql, values).all()
    inserted = {row[1] for row in rows if row[0] == 0}
    if len(inserted) == len(new):
        for fill, fill_id in zip(fills, sorted(row[1] for row in rows if row[0] == 1), strict=True):
            fill.id = fill_id
    return inserted


def lock_accounts(conn: sa.Connection, account_ids: Iterable[int]) -> dict[int, Decimal]:
    rows = conn.execute(
        sa.select(ACCOUNTS.c.id, ACCOUNTS.c.cash).where(ACCOUNTS.c.id.in_(sorted(set(account_ids))))
        .order_by(ACCOUNTS.c.id).with_for_update()
    ).all()
    return {row.id: row.cash for row in rows}


def read_cash(conn: sa.Connection, account_id: int) -> Decimal:
    return conn.execute(sa.select(ACCOUNTS.c.cash).where(ACCOUNTS.c.id == account_id)).scalar_one()


_ALL_QUOTES = sa.select(QUOTES.c.symbol, QUOTES.c.price)
_QUOTES_OF = _ALL_QUOTES.where(QUOTES.c.symbol.in_(sa.bindparam("symbols", expanding=True)))


def read_quotes(conn: sa.Connection, symbols: Iterable[str] | None = None) -> dict[str, Decimal]:
    if symbols is None:
        rows = conn.execute(_ALL_QUOTES)
    else:
        rows = conn.execute(_QUOTES_OF, {"symbols": sorted(set(symbols))})
    return {row.symbol: row.price for row in rows}


def record_quotes(conn: sa.Connection, prices: Mapping[str, Decimal], now: datetime, *, overwrite: bool) -> None:
    """Upsert last prices; ``overwrite=False`` only fills in symbols that have none yet."""
    stmt = _insert(conn, QUOTES)
    if overwrite:
        stmt = stmt.on_conflict_do_update(
            index_elements=["symbol"], set_={"price": stmt.excluded.price, "updated_at": stmt.excluded.updated_at}
        )
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=["symbol"])
    conn.execute(stmt, [{"symbol": s, "price": p, "updated_at": now} for s, p in sorted(prices.items())])


# ------------------------------------------------------------------ orders
def _to_order(row) -> BookOrder:
    return BookOrder(
        id=row.id, account_id=row.paper_account_id, client_order_id=row.client_order_id, symbol=row.symbol,
        side=row.side, order_type=row.order_type, quantity=row.quantity, limit_price=row.limit_price,
        stop_price=row.stop_price, oco_group=row.oco_group, status=row.status,
        filled_quantity=row.filled_quantity, avg_fill_price=row.avg_fill_price, reject_reason=row.reject_reason,
    ).mark_loaded()


def load_orders(conn: sa.Connection, *conditions, lock: bool = False) -> list[BookOrder]:
    stmt = sa.select(*_ORDER_COLUMNS).where(*conditions).order_by(ORDERS.c.id)
    if lock:
        stmt = stmt.with_for_update()
    return [_to_order(row) for row in conn.execute(stmt)]


def by_client_ids(account_ids: int | Iterable[int], client_order_ids: Iterable[str]):
    """Orders of these accounts with these client ids (filter the pairs you need: this is a cross product)."""
    ids = [account_ids] if isinstance(account_ids, int) else sorted(set(account_ids))
    return (ORDERS.c.paper_account_id.in_(ids), ORDERS.c.client_order_id.in_(sorted(set(client_order_ids))))


def open_in_groups(account_ids: Iterable[int], groups: Iterable[str], exclude_ids: Iterable[int] = ()):
    return (
        ORDERS.c.paper_account_id.in_(sorted(set(account_ids))), ORDERS.c.oco_group.in_(sorted(set(groups))),
        ORDERS.c.status.in_(sorted(OPEN)), ORDERS.c.id.not_in(sorted(set(exclude_ids))),
    )


def open_for_account(account_id: int):
    return (ORDERS.c.paper_account_id == account_id, ORDERS.c.status.in_(sorted(OPEN)))


def open_on_symbols(account_ids: Iterable[int], symbols: Iterable[str]):
    return (
        ORDERS.c.paper_account_id.in_(sorted(set(account_ids))), ORDERS.c.symbol.in_(sorted(set(symbols))),
        ORDERS.c.status.in_(sorted(OPEN)),
    )


def accounts_with_working_orders(conn: sa.Connection, symbols: Iterable[str] | None) -> dict[str, list[int]]:
    """{symbol: [paper account ids]} that have a working order, read without locks (the pass locks next)."""
    stmt = sa.select(ORDERS.c.symbol, ORDERS.c.paper_account_id).distinct().where(ORDERS.c.status.in_(sorted(WORKING)))
    if symbols is not None:
        stmt = stmt.where(ORDERS.c.symbol.in_(sorted(set(symbols))))
    found: dict[str, list[int]] = defaultdict(list)
    for row in conn.execute(stmt):
        found[row.symbol].append(row.paper_account_id)
    return found


_INSERT_ORDERS = {
    name: dialect.insert(ORDERS)
    .on_conflict_do_nothing(index_elements=["paper_account_id", "client_order_id"])
    .returning(ORDERS.c.id, ORDERS.c.paper_account_id, ORDERS.c.client_order_id)
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
}


def insert_orders(conn: sa.Connection, orders: list[BookOrder], now: datetime) -> dict[tuple[int, str], int]:
    """Insert new orders, skipping client ids their account already has.

    Returns ``{(paper account id, client id): id}`` of the rows inserted.
    """
    if not orders:
        return {}
    params = [_order_values(o) | {"created_at": now, "updated_at": now} for o in orders]
    if supported(conn):
        rows = bulk_insert(conn, ORDERS, params, conflict=("paper_account_id", "client_order_id"),
                           returning=("id", "paper_account_id", "client_order_id"))
    else:
        rows = conn.execute(_INSERT_ORDERS[conn.dialect.name], params).all()
    return {(row.paper_account_id, row.client_order_id): row.id for row in rows}


def _order_values(order: BookOrder) -> dict:
    return {
        "paper_account_id": order.account_id, "client_order_id": order.client_order_id, "symbol": order.symbol,
        "side": order.side[:4], "order_type": order.order_type[:16], "quantity": order.quantity,
        "limit_price": order.limit_price, "stop_price": order.stop_price, "oco_group": order.oco_group,
        "status": order.status, "filled_quantity": order.filled_quantity,
        "avg_fill_price": order.avg_fill_price,
        "reject_reason": order.reject_reason[:REASON_MAX] if order.reject_reason else None,
    }


def update_orders(conn: sa.Connection, orders: list[BookOrder], now: datetime) -> None:
    if orders:
        bulk_update(conn, ORDERS, [{"id": o.id, "updated_at": now} | _changed_values(o) for o in orders])


_INSERT_FILLS = sa.insert(FILLS).returning(FILLS.c.id, sort_by_parameter_order=True)


def update_cash(conn: sa.Connection, cash: Mapping[int, Decimal]) -> None:
    """One statement for any number of accounts (``bulk_update``)."""
    if cash:
        bulk_update(conn, ACCOUNTS, [{"id": account_id, "cash": value} for account_id, value in sorted(cash.items())])


def write_back(conn: sa.Connection, orders: list[BookOrder], fills: list[BookFill], cash: Mapping[int, Decimal],
               positions: Mapping[PositionKey, Held], now: datetime) -> None:
    """Changed orders, new fills (their ids set), cash and positions, as one statement on Postgres."""
    if not supported(conn) or not fills:
        update_orders(conn, orders, now)
        insert_fills(conn, fills)
        update_cash(conn, cash)
        upsert_positions(conn, positions, now)
        return
    writes = Writes()
    writes.update(ORDERS, [{"id": o.id, "updated_at": now} | _changed_values(o) for o in orders])
    writes.update(ACCOUNTS, [{"id": account_id, "cash": value} for account_id, value in sorted(cash.items())])
    ctes, values = writes.ctes(conn)
    parts = [f"w{i} AS ({cte})" for i, cte in enumerate(ctes)]
    if positions:
        position_sql, position_values = _upsert_positions_sql(conn, positions, now, "p_")
        values.update(position_values)
        parts.append(f"p AS ({position_sql})")
    fill_sql, fill_values = insert_sql(conn, FILLS, [_fill_values(f) for f in fills], "f_", returning=("id",),
                                       ordered=True)
    values.update(fill_values)
    sql = ("WITH " + ", ".join(parts) + " " + fill_sql) if parts else fill_sql
    for fill, fill_id in zip(fills, sorted(row[0] for row in conn.exec_driver_sql(sql, values)), strict=True):
        fill.id = fill_id


def _changed_values(order: BookOrder) -> dict:
    values = _order_values(order)
    return {k: values[k] for k in ("order_type", "quantity", "limit_price", "stop_price", "status",
                                   "filled_quantity", "avg_fill_price", "reject_reason")}


def _fill_values(f: BookFill) -> dict:
    return {"paper_order_id": f.order_id, "symbol": f.symbol, "side": f.side, "quantity": f.quantity,
            "price": f.price, "fee": f.fee, "filled_at": f.filled_at}


# ------------------------------------------------------------------ fills and positions
def insert_fills(conn: sa.Connection, fills: list[BookFill]) -> None:
    """Insert fills and set their ids (RETURNING, in parameter order)."""
    if not fills:
        return
    params = [_fill_values(f) for f in fills]
    if supported(conn):
        rows = bulk_insert(conn, FILLS, params, returning=("id",), ordered=True)
    else:
        rows = conn.execute(_INSERT_FILLS, params).all()
    for fill, row in zip(fills, rows, strict=True):
        fill.id = row.id


def fills_of_orders(conn: sa.Connection, order_ids: Iterable[int]) -> dict[int, list[VenueFill]]:
    ids = sorted(set(order_ids))
    found: dict[int, list[VenueFill]] = defaultdict(list)
    if not ids:
        return found
    stmt = sa.select(FILLS).where(FILLS.c.paper_order_id.in_(ids)).order_by(FILLS.c.id)
    for row in conn.execute(stmt):
        found[row.paper_order_id].append(venue_fill(row.id, row.quantity, row.price, row.fee, row.filled_at))
    return found


def venue_fill(fill_id: int, quantity: Decimal, price: Decimal, fee: Decimal, filled_at: datetime) -> VenueFill:
    return VenueFill(fill_id=str(fill_id), quantity=quantity, price=price, fee=fee, filled_at=filled_at)


def fills_since(conn: sa.Connection, account_id: int, since: datetime) -> list[tuple[str, VenueFill]]:
    stmt = (
        sa.select(ORDERS.c.client_order_id, FILLS)
        .join(ORDERS, ORDERS.c.id == FILLS.c.paper_order_id)
        .where(ORDERS.c.paper_account_id == account_id, FILLS.c.filled_at >= since)
        .order_by(FILLS.c.filled_at, FILLS.c.id)
    )
    return [
        (row.client_order_id, venue_fill(row.id, row.quantity, row.price, row.fee, row.filled_at))
        for row in conn.execute(stmt)
    ]


@dataclass(frozen=True)
class Positions:
    """The stored positions of ``accounts`` in ``symbols``, read under those accounts' locks.

    A pair with no row is flat.  ``after`` folds a pass's fills into them: it is
    the only way new position values are made, and it refuses a fill outside
    what was read (its position would start from a guess instead of the row).
    """

    accounts: frozenset[int]
    symbols: frozenset[str]
    held: dict[PositionKey, Held]

    def quantities(self) -> dict[PositionKey, Decimal]:
        """Signed net quantities, what ``paper_book.Book`` needs."""
        return {key: qty for key, (qty, _) in self.held.items()}

    def after(self, fills: Iterable[BookFill]) -> dict[PositionKey, Held]:
        """The positions the fills (in fill order) changed, with their new values."""
        changed: dict[PositionKey, Held] = {}
        for f in fills:
            if f.account_id not in self.accounts or f.symbol not in self.symbols:
                raise RuntimeError(f"A paper fill of {f.symbol} for account {f.account_id} came from a pass that "
                                   "did not read that position under the account lock.")
            key = (f.account_id, f.symbol)
            changed[key] = after_fill(changed.get(key, self.held.get(key, FLAT)), f.side, f.quantity, f.price)
        return changed


_POSITIONS_OF = sa.select(POSITIONS.c.paper_account_id, POSITIONS.c.symbol, POSITIONS.c.quantity,
                          POSITIONS.c.avg_price).where(
    POSITIONS.c.paper_account_id.in_(sa.bindparam("account_ids", expanding=True)),
    POSITIONS.c.symbol.in_(sa.bindparam("symbols", expanding=True)))


def read_positions(conn: sa.Connection, account_ids: Iterable[int], symbols: Iterable[str]) -> Positions:
    """The positions of these accounts in these symbols, by primary key (lock the accounts first)."""
    ids, syms = sorted(set(account_ids)), sorted(set(symbols))
    rows = conn.execute(_POSITIONS_OF, {"account_ids": ids, "symbols": syms}) if ids and syms else ()
    return Positions(frozenset(ids), frozenset(syms), {(row[0], row[1]): (row[2], row[3]) for row in rows})


_OPEN_POSITIONS = (sa.select(POSITIONS.c.symbol, POSITIONS.c.quantity, POSITIONS.c.avg_price)
                   .where(POSITIONS.c.paper_account_id == sa.bindparam("account_id"), POSITIONS.c.quantity != 0)
                   .order_by(POSITIONS.c.symbol))


def account_positions(conn: sa.Connection, account_id: int) -> dict[str, Held]:
    """{symbol: (signed quantity, average price)} of the account's open positions."""
    return {row.symbol: (row.quantity, row.avg_price) for row in conn.execute(_OPEN_POSITIONS,
                                                                             {"account_id": account_id})}


def _position_rows(positions: Mapping[PositionKey, Held], now: datetime) -> list[dict]:
    return [{"paper_account_id": account_id, "symbol": symbol, "quantity": qty, "avg_price": avg, "updated_at": now}
            for (account_id, symbol), (qty, avg) in sorted(positions.items())]


_POSITION_CONFLICT = (' ON CONFLICT (paper_account_id, symbol) DO UPDATE SET quantity = EXCLUDED.quantity, '
                      'avg_price = EXCLUDED.avg_price, updated_at = EXCLUDED.updated_at')


def _upsert_positions_sql(conn: sa.Connection, positions: Mapping[PositionKey, Held], now: datetime,
                          prefix: str) -> tuple[str, dict]:
    """Postgres: the upsert of new position values, for a caller's statement (a CTE): (SQL, parameters)."""
    sql, values = insert_sql(conn, POSITIONS, _position_rows(positions, now), prefix)
    return sql + _POSITION_CONFLICT, values


def _upsert_statement(dialect) -> sa.Insert:
    stmt = dialect.insert(POSITIONS)
    return stmt.on_conflict_do_update(index_elements=["paper_account_id", "symbol"], set_={
        "quantity": stmt.excluded.quantity, "avg_price": stmt.excluded.avg_price,
        "updated_at": stmt.excluded.updated_at})


_UPSERT_POSITIONS = {"postgresql": _upsert_statement(postgresql), "sqlite": _upsert_statement(sqlite)}


def upsert_positions(conn: sa.Connection, positions: Mapping[PositionKey, Held], now: datetime) -> None:
    """Store new position values (an executemany; Postgres writes them inside its one statement instead)."""
    if positions:
        conn.execute(_UPSERT_POSITIONS[conn.dialect.name], _position_rows(positions, now))
