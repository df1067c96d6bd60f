"""Sending orders to brokers: submission with retries, cancels, and the loop that runs follow-ups.

``submit_orders`` reads the ``new`` orders that are due and not waiting,
sends them grouped per account (the paper venue's ``place_orders`` batch
when the adapter has it, else ``place_order`` one by one), and records every
answer in one transaction.  A venue's idempotency on client order ids makes
a second submission of the same order (after a timeout, a crash, a second
worker) return the first one instead of trading twice.

Errors, by their ``retryable`` flag (``backend.errors``):
* temporary (timeouts, 5xx, rate limits): the order stays ``new`` with
  ``attempts`` + 1 and ``next_attempt_at`` = now + base x 2^(attempts-1)
  (1 s, 2 s, 4 s ... with the default base); after
  ``execution_max_retries`` attempts it ends ``failed``;
* permanent: a refusal by the venue (insufficient funds, invalid symbol,
  market closed ...) ends ``rejected``; anything else (credentials refused,
  an adapter bug) ends ``failed``; either way with the error's code and its
  human message (a notification tells the trader), and never retried.

Before anything is sent, an order the venue's capabilities rule out (asset
class, order type, short selling, fractional units: ``venue_fit``) ends
``rejected`` with the reason, without a broker call.

Venue-native brackets: an entry goes out with a ``BracketSpec`` built from
its stop/take-profit rows, which then become ``submitted`` with it (the
venue holds them).  A ladder longer than the venue's bracket holds
(``capabilities.max_bracket_take_profits``: Alpaca, IBKR) has already been
split by the fan-out into one bracket per target (``capabilities.split_ladder``,
``brackets.add_slices``), each of which fits the venue's bracket whole; only a
ladder on less than one whole unit (a fractional Alpaca position) is left to
go out as a stop-only OTO with engine-managed targets (``held_by_venue``).
Elsewhere the children wait for the entry (``brackets``).  Where open exits
hold quantity but the venue holds no brackets (``capabilities.
engine_holds_targets``, spot crypto), a released take-profit is not sent: it
stays ``new``, held by the engine (``hold``), and ``held_targets`` sends it
when its price is reached.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from datetime import datetime, timedelta

from sqlmodel import Session, select

from backend.brokers.base import BracketSpec, BrokerAdapter, OrderRequest, OrderSnapshot
from backend.config import get_settings
from backend.db.models import BrokerAccount, Order
from backend.db.types import utcnow
from backend.errors import AuthenticationFailed, BrokerError, OrderNotFound, TradeExecutorError
from backend.execution import intents as legs
from backend.execution import stop_limits, venue_fit
from backend.execution.adapters import Adapters
from backend.execution.brackets import holds_in_engine, waiting_verdict
from backend.execution.crash_hook import crash_point
from backend.execution.journal import Journal
from backend.execution import loss_guard, positions
from backend.execution.positions import order_position_key
from backend.execution.rows import orders_for_settlement
from backend.execution.settle import FILL_IDS, Followups, Settlement
from backend.audit.chain import CHAIN_LOCK_ID, LOCK_SQL, TAIL_SQL
from backend.execution.state_machine import NEW, OPEN, REJECTED, SUBMITTED, fail, transition

log = logging.getLogger(__name__)
Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], datetime]


@dataclass
class SubmitResult:
    followups: Followups = field(default_factory=Followups)
    retry_at: dict[int, datetime] = field(default_factory=dict)
    sent: int = 0


@dataclass
class _Batch:
    account: BrokerAccount
    orders: list[Order]
    requests: list[OrderRequest]
    children: dict[int, list[int]]  # entry id -> child ids sent inside its bracket
    refused: list[tuple[Order, Exception]] = field(default_factory=list)  # the venue cannot take these: not sent
    held: list[Order] = field(default_factory=list)  # take-profits the engine keeps (``brackets.holds_in_engine``)


def backoff_seconds(attempts: int, base: float) -> float:
    """Delay before attempt ``attempts + 1``: base, 2 x base, 4 x base ..."""
    return base * (2 ** max(attempts - 1, 0))


def request_for(order: Order, bracket: BracketSpec | None = None, *, send_oco: bool = False) -> OrderRequest:
    return OrderRequest(
        client_order_id=order.client_order_id, symbol=order.symbol, side=order.side, quantity=order.quantity,
        order_type=order.order_type, asset_class=order.asset_class, limit_price=order.limit_price,
        stop_price=order.stop_price, time_in_force=order.time_in_force, reduce_only=order.reduce_only,
        option_right=order.option_right, strike=order.strike, expiry=order.expiry,
        oco_group=order.oco_group if send_oco else None, bracket=bracket,
        reference_price=order.limit_price or order.stop_price)


def _bracket(children: list[Order]) -> BracketSpec | None:
    stop = next((c.stop_price for c in children if c.leg == legs.STOP), None)
    tps = tuple((c.limit_price, c.quantity)
                for c in sorted((c for c in children if legs.is_tp(c.leg)), key=lambda c: int(c.leg[2:])))
    return BracketSpec(stop_loss=stop, take_profits=tps) if stop is not None or tps else None


def held_by_venue(children: list[Order], caps) -> list[Order]:
    """The bracket children a native bracket carries with its entry; the others the engine manages.

    A venue whose bracket holds at most ``max_bracket_take_profits`` targets
    (Alpaca, IBKR: one) cannot carry a longer ladder, and a bracket leg there
    is sized like the entry (its take-profit would sell everything at the
    first target).  The fan-out splits such a ladder into one bracket per
    target; what it cannot split (less than one whole unit: a fractional
    position) goes out as a stop-only OTO: the venue holds
    the stop for the whole quantity from the moment the entry fills, and the
    engine releases the targets after the fill as separate limit orders; each
    target fill then shrinks the stop to what is left (``brackets.rebalance``
    through ``replace_order``), so the stop always covers the open quantity.
    """
    limit = caps.max_bracket_take_profits
    if limit is None or sum(1 for c in children if legs.is_tp(c.leg)) <= limit:
        return list(children)
    return [c for c in children if c.leg == legs.STOP]


def _load_batches(session: Session, ids: Iterable[int], adapters: Adapters, now: datetime) -> list[_Batch]:
    orders = session.exec(select(Order).where(Order.id.in_(list(set(ids))), Order.status == NEW)
                          .order_by(Order.id)).all()
    waits = {o.wait_for_order_id for o in orders if o.wait_for_order_id}
    waited = {o.id: o for o in session.exec(select(Order).where(Order.id.in_(waits)))} if waits else {}
    due = _due(orders, waited, now)
    if not due:
        return []
    accounts = {a.id: a for a in session.exec(select(BrokerAccount).where(
        BrokerAccount.id.in_({o.broker_account_id for o in due})))}
    entries = [o.id for o in due if o.leg == legs.ENTRY]
    kids = session.exec(select(Order).where(Order.parent_order_id.in_(entries), Order.status == NEW)).all() \
        if entries else []
    return _make_batches(due, kids, accounts, adapters)


def _known_batches(ids: set[int], known: dict[int, Order], accounts: dict[int, BrokerAccount], adapters: Adapters,
                   now: datetime) -> list[_Batch]:
    """Batches from orders the caller has just written (the fan-out), without reading them back."""
    due = _due([known[i] for i in sorted(ids) if known[i].status == NEW], known, now)
    return _make_batches(due, [o for o in known.values() if o.status == NEW], accounts, adapters)


def _due(orders: list[Order], waited: dict[int, Order], now: datetime) -> list[Order]:
    return [o for o in orders if (o.next_attempt_at is None or o.next_attempt_at <= now)
            and (o.wait_for_order_id is None or (o.wait_for_order_id in waited
                                                 and waiting_verdict(o, waited[o.wait_for_order_id]) == "ready"))]


def _make_batches(due: list[Order], candidates: Iterable[Order], accounts: dict[int, BrokerAccount],
                  adapters: Adapters) -> list[_Batch]:
    entries = {o.id for o in due if o.leg == legs.ENTRY}
    kids: dict[int, list[Order]] = defaultdict(list)
    for child in candidates:
        if child.parent_order_id in entries and legs.is_child(child.leg):
            kids[child.parent_order_id].append(child)
    by_account: dict[int, list[Order]] = defaultdict(list)
    for order in due:
        by_account[order.broker_account_id].append(order)
    batches = []
    for account_id, group in by_account.items():
        account = accounts[account_id]
        try:
            caps = adapters.get(account).capabilities
        except TradeExecutorError:
            caps = None
        native = bool(caps and caps.native_brackets)
        # A venue OCO group cancels the whole group on the first fill: right for a bracket the venue
        # holds whole, wrong for a ladder the engine manages next to a venue-held stop.
        send_oco = bool(caps and caps.native_oco and native and caps.max_bracket_take_profits is None)
        requests, children, sent, refused, held_back = [], {}, [], [], []
        for order in group:
            if holds_in_engine(caps, order):
                held_back.append(order)
                continue
            why = venue_fit.refusal(caps, order, venue_fit.venue_name(account)) if caps is not None else None
            if why is not None:
                refused.append((order, why))
                continue
            sent.append(order)
            held = held_by_venue(kids[order.id], caps) if native and order.leg == legs.ENTRY else []
            spec = _bracket(held)
            if spec is not None:
                children[order.id] = [c.id for c in held]
            requests.append(request_for(order, spec, send_oco=send_oco))
        batches.append(_Batch(account, sent, requests, children, refused, held_back))
    return batches


async def _send(adapter: BrokerAdapter | None, batch: _Batch, error: Exception | None) -> list[OrderSnapshot | Exception]:
    if adapter is None:
        return [error] * len(batch.requests)
    place_many = getattr(adapter, "place_orders", None)
    if place_many is not None:
        try:
            return list(await place_many(batch.requests))
        except Exception as exc:  # noqa: BLE001 - one answer for the whole batch
            return [exc] * len(batch.requests)
    results: list[OrderSnapshot | Exception] = []
    for i, request in enumerate(batch.requests):
        try:
            batch.requests[i] = request = await stop_limits.as_sent(adapter, request)  # _record keeps what was sent
            results.append(await adapter.place_order(request))
        except Exception as exc:  # noqa: BLE001 - recorded per order below
            results.append(exc)
    return results


async def _send_all(adapters: Adapters, batches: list[_Batch]) -> list[list[OrderSnapshot | Exception]]:
    """Send every batch; batches whose adapters share a venue that takes many accounts at once
    (``place_batches``, the paper venue) go in one call, the others one account at a time."""
    answers: list[list[OrderSnapshot | Exception] | None] = [None] * len(batches)
    shared: dict[Any, list[tuple[int, BrokerAdapter]]] = defaultdict(list)
    single = []
    for i, batch in enumerate(batches):
        if not batch.requests:  # everything refused from the venue's capabilities
            answers[i] = []
            continue
        try:
            adapter, error = adapters.get(batch.account), None
        except Exception as exc:  # noqa: BLE001
            adapter, error = None, exc
        key = getattr(adapter, "batch_key", None) if hasattr(type(adapter), "place_batches") else None
        if key is not None:
            shared[key].append((i, adapter))
        else:
            single.append((i, _send(adapter, batch, error)))
    for group in shared.values():
        if len(group) == 1:
            single.append((group[0][0], _send(group[0][1], batches[group[0][0]], None)))
            continue
        try:
            placed = await type(group[0][1]).place_batches([(adapter, batches[i].requests) for i, adapter in group])
        except Exception as exc:  # noqa: BLE001 - one answer for the whole batch
            placed = [[exc] * len(batches[i].requests) for i, _ in group]
        for (i, _), result in zip(group, placed):
            answers[i] = list(result)
    if single:
        for (i, _), result in zip(single, await asyncio.gather(*(send for _, send in single))):
            answers[i] = result
    return answers  # type: ignore[return-value]


async def submit_orders(engine, adapters: Adapters, ids: Iterable[int], *, clock: Clock = utcnow,
                        known: Iterable[Order] = (), accounts: dict[int, BrokerAccount] | None = None) -> SubmitResult:
    """Send the due, ready ``new`` orders among ``ids``.

    ``known``/``accounts``: the orders and accounts the caller just wrote and
    read (the fan-out), which spares reading them back; anything else is read.
    """
    now = clock()
    ids = set(ids)
    known_by_id = {o.id: o for o in known}
    if ids and accounts is not None and ids <= set(known_by_id) \
            and {known_by_id[i].broker_account_id for i in ids} <= set(accounts):
        batches = _known_batches(ids, known_by_id, accounts, adapters, now)
    else:
        with Session(engine, expire_on_commit=False) as session:
            batches = _load_batches(session, ids, adapters, now)
    if not batches:
        return SubmitResult()
    answers = await _send_all(adapters, batches)
    crash_point("broker_acked")
    return _record(engine, adapters, batches, answers, clock())


CHAIN_LOCK = "SELECT " + LOCK_SQL


def _record(engine, adapters: Adapters, batches: list[_Batch], answers: list[list], now: datetime) -> SubmitResult:
    settings = get_settings()
    journal = Journal()
    result = SubmitResult(sent=sum(len(b.orders) for b in batches))
    ids = [o.id for b in batches for o in b.orders] + [c for b in batches for cs in b.children.values() for c in cs] \
        + [o.id for b in batches for o, _ in b.refused] + [o.id for b in batches for o in b.held]
    with Session(engine, expire_on_commit=False) as session:
        # The sent orders and the open orders of their accounts, locked in one statement, as plain rows
        # (``rows``): settling may release or resize the latter.  ``Settlement`` writes them back.
        # On Postgres the positions those orders trade go in the same round trip (locked after the orders,
        # as everywhere), with the transaction's BEGIN (``pipeline``).
        # The fills' ids are drawn in the same round trip, so the fills join the journal's single write.
        keys = {(o.broker_account_id, order_position_key(o)) for b in batches for o in b.orders}
        fills = sum(max(len(a.fills), 1) for results in answers for a in results
                    if isinstance(a, OrderSnapshot) and a.filled_quantity > 0)
        # Last, the audit chain's lock and its tail: this transaction then waits for no row lock (it holds
        # them all already), and its audit events go in with its other writes and the COMMIT.
        # The loss guard's read of the owners' limits goes too (before the chain's lock: ``loss_guard``).
        users = {o.user_id for b in batches for o in b.orders}
        reads = [positions.pipelined_read(keys)] + ([(FILL_IDS, {"n": fills})] if fills else []) \
            + [loss_guard.pipelined_read(users), (CHAIN_LOCK, {"audit_lock": CHAIN_LOCK_ID}), (TAIL_SQL, {})]
        orders, loaded, extra = orders_for_settlement(session.connection(), ids, {b.account.id for b in batches},
                                                      OPEN, then=reads)
        preloaded = positions.from_rows(extra[0], keys) if extra is not None else None
        fill_ids = [row[0] for row in extra[1]] if extra is not None and fills else []
        settlement = Settlement(session, journal, adapters, now, orders.values(), candidates=loaded,
                                positions=preloaded, fill_ids=fill_ids,
                                watched=loss_guard.watched(users, extra[-3]) if extra is not None else None)
        for batch, results in zip(batches, answers):
            for sent, answer, request in zip(batch.orders, results, batch.requests):
                order = orders[sent.id]
                if order.status not in OPEN:
                    continue  # finished meanwhile (a concurrent worker recorded it)
                order.attempts += 1
                if isinstance(answer, OrderSnapshot):
                    order.next_attempt_at = None
                    _keep_as_sent(journal, order, request)
                    settlement.apply(order, answer)
                    if order.status != REJECTED:
                        for child_id in batch.children.get(order.id, ()):
                            child = orders[child_id]
                            if child.status == NEW:
                                transition(session, child, SUBMITTED, journal, now=now,
                                           message="Held by the broker with its entry (native bracket).")
                                child.attempts += 1
                else:
                    _record_error(session, journal, order, answer, now, settings, result)
                    settlement.touch(order)
            for target in batch.held:
                hold(journal, orders[target.id], now)
            for refused, why in batch.refused:  # never sent: the venue's capabilities rule them out
                order = orders[refused.id]
                if order.status in OPEN:
                    _record_error(session, journal, order, why, now, settings, result)
                    settlement.touch(order)
        result.followups = settlement.finish()
        # Not durable: if the database server crashes before this reaches the disk, the orders are
        # still ``new`` and ``recover`` re-sends them, which the venue answers with these same acks.
        if extra is not None:
            tail = extra[-1][0] if extra[-1] else None
            journal.commit(session, durable=False, tail=tail)
        else:
            journal.commit(session, durable=False)
    journal.publish()
    return result


def hold(journal: Journal, order, now: datetime) -> None:
    """Keep a released take-profit in the engine: it waits for itself until ``held_targets`` triggers it."""
    if order.status != NEW or order.wait_for_order_id != order.parent_order_id:
        return  # triggered or finished meanwhile
    order.wait_for_order_id, order.updated_at = order.id, now
    journal.audit("order.held_by_engine", subject_type="order", subject_id=order.id, actor_user_id=order.user_id,
                  data={"leg": order.leg, "symbol": order.symbol, "quantity": str(order.quantity),
                        "limit_price": str(order.limit_price),
                        "why": "Open sells lock the coins at this venue: the stop holds them, the engine "
                               "sends this target when its price is reached."})


def _keep_as_sent(journal: Journal, order, request: OrderRequest) -> None:
    """The row says what the venue holds: a stop sent as a stop-limit (``stop_limits``) becomes one."""
    if (request.order_type, request.limit_price) == (order.order_type, order.limit_price):
        return
    journal.audit("order.sent_as", subject_type="order", subject_id=order.id, actor_user_id=order.user_id,
                  data={"planned": order.order_type, "sent": request.order_type,
                        "stop_price": str(request.stop_price), "limit_price": str(request.limit_price)})
    order.order_type, order.limit_price = request.order_type, request.limit_price


def _record_error(session: Session, journal: Journal, order: Order, exc: Exception, now: datetime,
                  settings, result: SubmitResult) -> None:
    if isinstance(exc, TradeExecutorError) and exc.retryable:
        if order.attempts >= settings.execution_max_retries:
            fail(session, order, journal, now=now, code=exc.code,
                 message=f"Gave up after {order.attempts} attempts: {exc.message}")
            return
        order.error_code, order.error_message = exc.code, exc.message[:500]
        order.next_attempt_at = now + timedelta(seconds=backoff_seconds(order.attempts,
                                                                        settings.execution_backoff_base_seconds))
        order.updated_at = now
        result.retry_at[order.id] = order.next_attempt_at
        journal.audit("order.retry_scheduled", subject_type="order", subject_id=order.id, actor_user_id=order.user_id,
                      data={"attempts": order.attempts, "error_code": exc.code, "message": exc.message,
                            "next_attempt_at": order.next_attempt_at.isoformat()})
        return
    if isinstance(exc, TradeExecutorError):
        refused = isinstance(exc, BrokerError) and not isinstance(exc, (OrderNotFound, AuthenticationFailed))
        fail(session, order, journal, now=now, code=exc.code, message=exc.message,
             status=REJECTED if refused else "failed")
        return
    log.exception("unexpected error submitting %s", order.client_order_id, exc_info=exc)
    fail(session, order, journal, now=now, code="internal",
         message=f"The order could not be sent because of an unexpected error ({type(exc).__name__}).")
