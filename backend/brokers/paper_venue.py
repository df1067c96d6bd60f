"""The paper venue's transactions: place, match, amend, each one short transaction.

Every operation follows the same shape: lock the account rows it will touch
(see ``paper_store`` for why that order), load just the orders the pass
needs, run a ``paper_book.Book`` over them, write back what changed.

Placement is optimistic about idempotency: it inserts new orders with
``ON CONFLICT DO NOTHING``; if a client order id already existed (a retry,
or another process that won the race), the whole transaction is rolled back
and re-run without that request, whose stored order is returned instead.  On
Postgres the first try sends its writes with the COMMIT in one round trip; it
cannot skip an existing client id then, so one raises a unique violation,
nothing is committed, and the placement runs again the skipping way.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa

from backend.brokers import paper_store as store
from backend.brokers.base import OrderRequest, OrderSnapshot, VenueFill
from backend.brokers.paper_book import WORKING, Book, BookOrder, FillTerms
from backend.brokers.paper_rules import ZERO, Prepared, prepare, q10
from backend.db.types import utcnow
from backend.errors import OrderNotFound, OrderRejected, TemporaryBrokerError


class _AlreadyPlaced(Exception):
    """Some client ids of a batch already exist at the venue: the transaction is retried without them.

    Both sets hold ``(paper account id, client order id)`` pairs.
    """

    def __init__(self, entries: set[tuple[int, str]], leg_parents: set[tuple[int, str]]) -> None:
        super().__init__(sorted(entries | leg_parents))
        self.entries, self.leg_parents = entries, leg_parents


def match(engine: sa.Engine, terms: FillTerms, symbols: list[str] | None, prices: dict[str, Decimal] | None) -> None:
    """Record new prices and match every working order on those symbols, for every account of the venue."""
    with store.write_transaction(engine) as conn:
        now = utcnow()
        working = store.accounts_with_working_orders(conn, symbols)
        account_ids = {a for ids in working.values() for a in ids}
        cash = store.lock_accounts(conn, account_ids) if account_ids else {}
        if prices:  # after the account locks: every writer takes accounts first, then the rest
            store.record_quotes(conn, prices, now, overwrite=True)
        if not account_ids:
            return
        orders = store.load_orders(conn, *store.open_on_symbols(account_ids, working), lock=True)
        groups = {o.oco_group for o in orders if o.oco_group and o.leg is None}
        if groups:
            loaded = [o.id for o in orders]
            orders += store.load_orders(conn, *store.open_in_groups(account_ids, groups, loaded), lock=True)
        positions = store.read_positions(conn, account_ids, working)
        book = Book(
            orders, cash=cash, positions=positions.quantities(), quotes=store.read_quotes(conn, working),
            terms=terms, now=now,
        )
        book.run([o.id for o in orders if o.symbol in working and o.status in WORKING])
        _write_back(conn, book, positions, [o for o in orders if o.dirty], now)


def _write_back(conn: sa.Connection, book: Book, positions: store.Positions, changed: list[BookOrder],
                now: datetime) -> None:
    """Orders, fills, cash and positions: one statement on Postgres (``store.write_back``)."""
    store.write_back(conn, changed, book.fills, {a: book.cash[a] for a in book.cash_changed},
                     positions.after(book.fills), now)


def place_many(
    engine: sa.Engine, account_id: int, terms: FillTerms, requests: list[OrderRequest]
) -> list[OrderSnapshot | Exception]:
    """Place orders in one transaction, in order; errors come back in place of snapshots."""
    return place_for_accounts(engine, terms, [(account_id, requests)])[0]


def place_for_accounts(
    engine: sa.Engine, terms: FillTerms, work: list[tuple[int, list[OrderRequest]]]
) -> list[list[OrderSnapshot | Exception]]:
    """Place the orders of many accounts in ONE transaction (a fan-out to a thousand followers).

    The result for each account is exactly what ``place_many`` would return for it
    alone: accounts never share cash or positions, and their orders are matched
    one after the other in the order given.  The account rows are locked together,
    in id order, like every other writer of the venue.
    """
    prepared = [(account_id, prepare(r)) for account_id, requests in work for r in requests]
    first: dict[tuple[int, str], tuple[int, Prepared]] = {}
    for account_id, p in prepared:
        if p.storable:
            first.setdefault((account_id, p.request.client_order_id), (account_id, p))
    known: set[tuple[int, str]] = set()
    clashing: set[tuple[int, str]] = set()
    placed: dict[tuple[int, str], OrderSnapshot | Exception] = {}
    fast, attempts = True, 0
    while attempts < 4:
        batch = [
            (account_id, p if key not in clashing else Prepared(p.request, p.symbol, p.leverage, OrderRejected(
                f"A bracket leg id of '{key[1]}' is already used by another order.", field="client_order_id")))
            for key, (account_id, p) in first.items() if key not in known
        ]
        try:
            with store.write_transaction(engine) as conn:
                placed = _place_in_transaction(conn, terms, batch, commit=fast) if batch else {}
            break
        except _AlreadyPlaced as clash:
            known |= clash.entries
            clashing |= clash.leg_parents
            attempts += 1
        except sa.exc.IntegrityError:
            if not fast:
                raise
            fast = False  # a client id exists already (a retry): place again the way that finds out which
    else:
        raise TemporaryBrokerError("The paper broker kept meeting concurrent orders with the same ids; retry.")
    repeated = {key for key, n in Counter((a, p.request.client_order_id) for a, p in prepared if p.storable).items()
                if n > 1}
    existing = snapshots_by_keys(engine, (set(first) - set(placed)) | repeated)
    results: list[list[OrderSnapshot | Exception]] = []
    seen: set[tuple[int, str]] = set()
    position = 0
    for account_id, requests in work:
        out: list[OrderSnapshot | Exception] = []
        for account, p in prepared[position:position + len(requests)]:
            key = (account, p.request.client_order_id)
            if not p.storable:
                out.append(p.error)
            elif key in seen or key not in placed:  # a retry: the stored order, even a rejected one
                out.append(existing[key])
            else:
                out.append(placed[key])
            seen.add(key)
        position += len(requests)
        results.append(out)
    return results


def _place_in_transaction(
    conn: sa.Connection, terms: FillTerms, batch: list[tuple[int, Prepared]], *, commit: bool = False,
) -> dict[tuple[int, str], OrderSnapshot | Exception]:
    """``commit``: on Postgres the writes go with the COMMIT (``store.insert_placed``): the transaction
    is over on return, and a client id that exists already raises ``IntegrityError`` instead."""
    now = utcnow()
    accepted = [(a, p) for a, p in batch if p.error is None]
    symbols = {p.symbol for _, p in accepted}
    # Not durable (a placement is the venue's ack): if the database server crashes before this commit
    # reaches the disk, the engine's record of the ack, committed later, is lost with it (the WAL is
    # written in order), the order is still ``new`` there, and ``recover`` places it again.
    # Positions are read for every account, buyers too: a fill of any side changes the stored position,
    # whose new value is computed from the old one (a primary-key read, in the same round trip).
    most = sum(1 + (len(p.request.bracket.take_profits) + 1 if p.error is None and p.request.bracket else 0)
               for _, p in batch)  # new rows at most: each order and its bracket legs
    cash, quotes, positions, drawn = store.lock_for_placing(conn, {a for a, _ in batch}, symbols, most)
    references: dict[str, Decimal] = {}
    for _, p in accepted:
        price = p.request.reference_price
        if p.symbol not in quotes and p.symbol not in references and price is not None and price > 0:
            references[p.symbol] = q10(price)
    if references:
        store.record_quotes(conn, references, now, overwrite=False)
        quotes.update(references)
    groups = {p.request.oco_group for _, p in accepted if p.request.oco_group}
    grouped = {a for a, p in accepted if p.request.oco_group}
    existing = store.load_orders(conn, *store.open_in_groups(grouped, groups), lock=True) if groups else []
    book = Book(existing, cash=cash, positions=positions.quantities(), quotes=quotes, terms=terms, now=now)
    ids = itertools.count(-1, -1)
    entries: list[BookOrder] = []
    for account_id, p in batch:
        order = _new_order(next(ids), account_id, p)
        if p.error is not None:
            order.status, order.reject_reason = "rejected", p.error.message
            book.add(order)
            book.errors[order.id] = p.error
        else:
            book.place(order, _bracket_legs(order, p.request, ids))
        entries.append(order)
    errors = {(o.account_id, o.client_order_id): book.errors[o.id] for o in entries if o.id in book.errors}
    new_orders = [o for o in book.orders.values() if o.id < 0]
    if len(drawn) >= len(new_orders):  # Postgres: every write of the placement in one statement
        _renumber(book, new_orders, {o.id: drawn[i] for i, o in enumerate(new_orders)})
        went_in = store.insert_placed(conn, new_orders, [o for o in existing if o.dirty], book.fills,
                                      {a: book.cash[a] for a in book.cash_changed}, positions.after(book.fills),
                                      now, commit=commit)
        _check_placed(new_orders, {o for o in new_orders if o.id in went_in})
    else:
        inserted = store.insert_orders(conn, new_orders, now)
        _check_placed(new_orders, {o for o in new_orders if (o.account_id, o.client_order_id) in inserted})
        _renumber(book, new_orders, {o.id: inserted[(o.account_id, o.client_order_id)] for o in new_orders})
        _write_back(conn, book, positions, [o for o in existing if o.dirty], now)
    fills: dict[int, list[VenueFill]] = {}
    for f in book.fills:
        fills.setdefault(f.order_id, []).append(store.venue_fill(f.id, f.quantity, f.price, f.fee, f.filled_at))
    return {
        (o.account_id, o.client_order_id): errors.get((o.account_id, o.client_order_id)) or snapshot(
            o, fills.get(o.id, ())) for o in entries
    }


def _renumber(book: Book, new_orders: list[BookOrder], real_ids: dict[int, int]) -> None:
    for order in new_orders:
        order.id = real_ids[order.id]
    for fill in book.fills:
        fill.order_id = real_ids.get(fill.order_id, fill.order_id)


def _check_placed(new_orders: list[BookOrder], went_in: set[BookOrder]) -> None:
    """Raise ``_AlreadyPlaced`` (the transaction is then rolled back) if some client ids existed."""
    missing = [o for o in new_orders if o not in went_in]
    if missing:
        raise _AlreadyPlaced({(o.account_id, o.client_order_id) for o in missing if not o.leg},
                             {(o.account_id, o.oco_group) for o in missing if o.leg})


def with_order(
    engine: sa.Engine, account_id: int, terms: FillTerms, client_order_id: str,
    action: Callable[[Book, BookOrder], list[int]],
) -> OrderSnapshot:
    """Load an order with its legs and OCO group under the account lock, act, match, write back."""
    with store.write_transaction(engine) as conn:
        now = utcnow()
        cash, _ = store.lock_account_with_quotes(conn, account_id, ())
        family = store.load_orders(
            conn, store.ORDERS.c.paper_account_id == account_id,
            sa.or_(store.ORDERS.c.client_order_id == client_order_id, store.ORDERS.c.oco_group == client_order_id),
            lock=True,
        )
        target = next((o for o in family if o.client_order_id == client_order_id), None)
        if target is None:
            raise not_found(client_order_id)
        if target.oco_group:
            loaded = [o.id for o in family]
            siblings = store.open_in_groups([account_id], [target.oco_group], loaded)
            family += store.load_orders(conn, *siblings, lock=True)
        positions = store.read_positions(conn, [account_id], {o.symbol for o in family})
        book = Book(
            family, cash={account_id: cash}, positions=positions.quantities(),
            quotes=store.read_quotes(conn, [target.symbol]), terms=terms, now=now,
        )
        book.run(action(book, target))
        _write_back(conn, book, positions, [o for o in family if o.dirty], now)
        return snapshot(target, store.fills_of_orders(conn, [target.id])[target.id])


def snapshots_by_client_id(engine: sa.Engine, account_id: int, client_order_ids: set[str]) -> dict[str, OrderSnapshot]:
    found = snapshots_by_keys(engine, {(account_id, cid) for cid in client_order_ids})
    return {cid: snap for (_, cid), snap in found.items()}


def snapshots_by_keys(engine: sa.Engine, keys: set[tuple[int, str]]) -> dict[tuple[int, str], OrderSnapshot]:
    """Stored orders by (paper account id, client order id), read in one snapshot."""
    if not keys:
        return {}
    with store.read_transaction(engine) as conn:
        orders = store.load_orders(conn, *store.by_client_ids({a for a, _ in keys}, {c for _, c in keys}))
        orders = [o for o in orders if (o.account_id, o.client_order_id) in keys]
        fills = store.fills_of_orders(conn, [o.id for o in orders])
    return {(o.account_id, o.client_order_id): snapshot(o, fills[o.id]) for o in orders}


def snapshot(order: BookOrder, fills: Iterable[VenueFill]) -> OrderSnapshot:
    """The venue's view of an order; a held bracket leg reads as ``submitted`` (accepted, waiting)."""
    return OrderSnapshot(
        client_order_id=order.client_order_id, broker_order_id=str(order.id), symbol=order.symbol,
        side=order.side, quantity=order.quantity,
        status="submitted" if order.status == "held" else order.status,
        filled_quantity=order.filled_quantity, avg_fill_price=order.avg_fill_price, fills=tuple(fills),
        reject_reason=order.reject_reason,
    )


def not_found(client_order_id: str) -> OrderNotFound:
    return OrderNotFound(f"The paper broker has no order with client order id '{client_order_id}'.")


def _new_order(order_id: int, account_id: int, p: Prepared) -> BookOrder:
    r = p.request
    return BookOrder(
        id=order_id, account_id=account_id, client_order_id=r.client_order_id, symbol=p.symbol, side=r.side,
        order_type=r.order_type, quantity=q10(r.quantity) if r.quantity is not None else ZERO,
        limit_price=q10(r.limit_price) if r.limit_price is not None else None,
        stop_price=q10(r.stop_price) if r.stop_price is not None else None,
        oco_group=r.oco_group, leverage=p.leverage, reduce_only=r.reduce_only,
    )


def _bracket_legs(entry: BookOrder, request: OrderRequest, ids: Iterable[int]) -> list[BookOrder]:
    """The stop and take-profit ladder, held until the entry fills; see ``paper_book`` for the rules."""
    bracket = request.bracket
    if bracket is None:
        return []
    ids = iter(ids)
    exit_side = "sell" if entry.side == "buy" else "buy"
    common = dict(account_id=entry.account_id, symbol=entry.symbol, side=exit_side,
                  oco_group=entry.client_order_id, status="held")
    legs = []
    if bracket.stop_loss is not None:
        legs.append(BookOrder(id=next(ids), client_order_id=f"{entry.client_order_id}-sl", order_type="stop",
                              quantity=entry.quantity, stop_price=q10(bracket.stop_loss), **common))
    for n, (price, quantity) in enumerate(bracket.take_profits, start=1):
        legs.append(BookOrder(id=next(ids), client_order_id=f"{entry.client_order_id}-tp{n}", order_type="limit",
                              quantity=q10(quantity), limit_price=q10(price), **common))
    return legs


