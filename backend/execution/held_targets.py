"""Take-profits the engine holds, sent when their price is reached (spot exchanges through ccxt).

On a spot exchange an open sell locks the coins it sells.  A full-size stop
(placed at the venue, so protection survives the engine being down) leaves
nothing for the take-profit limits beside it: the venue would refuse them
for insufficient balance.  At such venues (``capabilities.
engine_holds_targets``) a ladder's targets stay rows in state ``new`` that
wait for themselves (``brackets.is_engine_held``; ``submit.hold`` marks
them when the entry fills), and the scheduler's ``held_targets`` job runs
``check_held_targets`` every ``HELD_TARGETS_POLL_SECONDS``:

1. read the held targets (one query) and, per account and market, the
   adapter's quote (its ticker call, through the account's rate limit);
2. for a market whose quote reached a target (a long's: at or above its
   limit), in one transaction: *claim* each reached target with a
   conditional update (only a row still waiting for itself is claimed, so
   a second run or a second process claims nothing and never sends a
   target twice), then shrink the stop so the stop, the working targets and
   the claimed ones fit the position (``brackets.change_order``: cancel +
   a replacement for the rest, with a deterministic client order id, that
   waits for the cancel); each claimed target waits for that same cancel
   (``brackets.waiting_verdict``: ready once the stop is cancelled, dropped
   if it filled);
3. send it all through ``runner.execute``: the cancel is confirmed by the
   venue first, then the target goes out as a limit sell of its slice at
   its price (marketable now) and the stop for the rest goes back.

Held targets of a position that shrank or closed are trimmed or cancelled
with the working ones (``brackets.rebalance``); a position that is gone when
the job looks makes it cancel them.  Every step is audited
(``order.held_by_engine``, ``order.target_triggered``, the cancels and
replacements' own events).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlmodel import Session, select

from backend.db.models import BrokerAccount, Order, Position
from backend.db.types import utcnow
from backend.errors import TradeExecutorError
from backend.execution import intents as legs
from backend.execution.adapters import Adapters, accounts_that_replace
from backend.execution.brackets import cancel_or_queue, is_engine_held, shrink_to
from backend.execution.journal import Journal
from backend.execution.planner import Plan
from backend.execution.positions import order_position_key
from backend.execution.settle import Followups, record_intents
from backend.execution.sqlutil import locked
from backend.execution.state_machine import NEW, OPEN, WORKING

log = logging.getLogger(__name__)
ZERO = Decimal(0)


@dataclass
class HeldReport:
    held: int = 0            # engine-held targets looked at
    quoted: int = 0          # markets whose price was read
    triggered: list[int] = field(default_factory=list)   # target ids sent this run
    dropped: list[int] = field(default_factory=list)     # held targets cancelled (no position left)


def reached(target: Order, price: Decimal) -> bool:
    """A sell target is reached at or above its limit, a buy target (a short's) at or below."""
    return price >= target.limit_price if target.side == "sell" else price <= target.limit_price


def _held_orders(engine) -> tuple[list[Order], dict[int, BrokerAccount], dict[tuple[int, str], Decimal]]:
    with Session(engine, expire_on_commit=False) as session:
        held = list(session.exec(select(Order).where(Order.status == NEW, Order.wait_for_order_id == Order.id)
                                 .order_by(Order.id)))
        if not held:
            return [], {}, {}
        ids = {o.broker_account_id for o in held}
        accounts = {a.id: a for a in session.exec(select(BrokerAccount).where(BrokerAccount.id.in_(ids)))}
        sizes = {(p.broker_account_id, p.symbol): p.quantity for p in session.exec(
            select(Position).where(Position.broker_account_id.in_(ids)))}
    return held, accounts, sizes


async def check_held_targets(engine: sa.Engine, adapters: Adapters, *, clock=utcnow,
                             renew_failing: bool = False) -> HeldReport:
    """One pass: quote every market with held targets, send the reached ones, drop the orphaned ones.

    ``renew_failing``: adapters kept between passes are rebuilt after a failed quote (the member may have
    changed the account's keys since it was built).
    """
    from backend.execution.runner import execute  # runner -> submit -> brackets; this module sits above them

    report = HeldReport()
    held, accounts, sizes = _held_orders(engine)
    report.held = len(held)
    markets: dict[tuple[int, str], list[Order]] = defaultdict(list)
    for order in held:
        markets[(order.broker_account_id, order_position_key(order))].append(order)
    todo = Followups()
    for (account_id, symbol), targets in markets.items():
        size = sizes.get((account_id, symbol), ZERO)
        closing = "sell" if size > 0 else "buy"
        if size == 0 or any(t.side != closing for t in targets):
            report.dropped += _drop(engine, [t.id for t in targets], clock())
            continue
        try:
            price = await adapters.get(accounts[account_id]).quote(targets[0].symbol)
        except TradeExecutorError as exc:  # the next run asks again; the stop protects meanwhile
            log.warning("no quote for held targets on %s (account %s): %s", symbol, account_id, exc.message)
            if renew_failing:
                await _renew(adapters, account_id)
            continue
        report.quoted += 1
        hit = [t.id for t in targets if price is not None and reached(t, price)]
        if hit:
            followups, sent = _trigger(engine, adapters, accounts[account_id], symbol, hit, price, clock())
            todo.merge(followups)
            report.triggered += sent
    if todo:
        await execute(engine, adapters, submit_ids=todo.submit_ids, cancel_ids=todo.cancel_ids,
                      replace=todo.replace, clock=clock)
    return report


async def _renew(adapters: Adapters, account_id: int) -> None:
    stale = dict(adapters.cached()).get(account_id)
    adapters.forget(account_id)
    if stale is not None:
        try:
            await stale.close()
        except Exception:  # noqa: BLE001 - closing is best effort
            pass


def _drop(engine, ids: list[int], now: datetime) -> list[int]:
    """Cancel held targets whose position is gone (the stop filled, a close elsewhere)."""
    journal = Journal()
    with Session(engine, expire_on_commit=False) as session:
        rows = session.exec(locked(session, select(Order).where(Order.id.in_(ids)))).all()
        dropped = []
        for order in rows:
            if is_engine_held(order):
                cancel_or_queue(session, order, journal, now=now, venue_cancels=set(),
                                reason="The position this target would sell is closed.")
                dropped.append(order.id)
        journal.flush_audit(session)
        session.commit()
    journal.publish()
    return dropped


def _claim(session: Session, ids: list[int], now: datetime) -> list[int]:
    """Take each target out of the engine's hold, once: only a row still waiting for itself changes."""
    claimed = []
    for order_id in ids:
        result = session.execute(sa.update(Order.__table__)
                                 .where(Order.__table__.c.id == order_id, Order.__table__.c.status == NEW,
                                        Order.__table__.c.wait_for_order_id == order_id)
                                 .values(wait_for_order_id=None, updated_at=now))
        if result.rowcount == 1:
            claimed.append(order_id)
    return claimed


def _trigger(engine, adapters: Adapters, account: BrokerAccount, symbol: str, ids: list[int], price: Decimal,
             now: datetime) -> tuple[Followups, list[int]]:
    """Claim the reached targets of one market, make room for them under the stop, queue it all."""
    journal = Journal()
    with Session(engine, expire_on_commit=False) as session:
        # Orders first (id order), then the position, as settlement locks them: no deadlock between the two.
        orders = [o for o in session.exec(locked(session, select(Order).where(
            Order.broker_account_id == account.id, Order.status.in_(tuple(OPEN))).order_by(Order.id)))
            if order_position_key(o) == symbol]
        claimed = _claim(session, ids, now)
        if not claimed:
            session.rollback()
            return Followups(), []  # another run or process has them
        position = session.exec(locked(session, select(Position).where(
            Position.broker_account_id == account.id, Position.symbol == symbol))).first()
        targets = sorted((o for o in orders if o.id in claimed), key=lambda o: (int(o.leg[2:]), o.id))
        size = abs(position.quantity) if position is not None else ZERO
        working_tps = sum((o.quantity - o.filled_quantity for o in orders if legs.is_tp(o.leg)
                           and o.status in WORKING and o.reduce_only), ZERO)
        room = max(size - working_tps, ZERO)
        plan = Plan()
        sending: list[Order] = []
        for target in targets:  # never more than the position leaves free of working targets
            quantity = min(target.quantity, room)
            room -= quantity
            if quantity <= 0:
                cancel_or_queue(session, target, journal, now=now, venue_cancels=plan.cancel_order_ids,
                                reason="Nothing left to sell: the position is smaller than its targets.")
                continue
            target.quantity = quantity
            sending.append(target)
        stops = [o for o in orders if o.leg == legs.STOP and o.status in WORKING and o.reduce_only]
        shrink_to(plan, session, journal, stops, room, now=now, replaceable=accounts_that_replace(adapters, [account]))
        making_room = max((o.id for o in stops if o.id in plan.cancel_order_ids), default=None)
        for target in sending:
            target.wait_for_order_id, target.updated_at = making_room, now
            journal.audit("order.target_triggered", subject_type="order", subject_id=target.id,
                          actor_user_id=target.user_id,
                          data={"leg": target.leg, "symbol": target.symbol, "quote": str(price),
                                "limit_price": str(target.limit_price), "quantity": str(target.quantity),
                                "waits_for_stop_cancel": making_room})
        ready = set(plan.write(session, journal))
        ready |= {t.id for t in sending if t.wait_for_order_id is None}
        followups = Followups(ready, set(plan.cancel_order_ids), dict(plan.replace))
        record_intents(session, followups, now)
        journal.flush_audit(session)
        session.commit()
    journal.publish()
    return followups, [t.id for t in sending]


_KEPT: dict[int, Adapters] = {}  # per engine: the scheduler job's adapters, kept between its passes


async def run_held_targets(engine: sa.Engine) -> HeldReport | None:
    """The scheduler's pass (on the job's own event loop: ``workers.jobs.kept_loop``).

    Adapters are built when something is held and kept for the next pass (a
    ccxt adapter keeps its markets for ``markets_ttl``); with nothing held
    they are closed and no venue is asked anything.
    """
    with Session(engine) as session:
        idle = session.exec(select(Order.id).where(Order.status == NEW, Order.wait_for_order_id == Order.id)
                            .limit(1)).first() is None
    if idle:
        kept = _KEPT.pop(id(engine), None)
        if kept is not None:
            await kept.aclose()
        return None
    adapters = _KEPT.get(id(engine))
    if adapters is None:
        from backend.brokers.credentials import RECONCILE_OPTIONS, build_provider

        adapters = _KEPT[id(engine)] = Adapters(engine, provider=build_provider(options=RECONCILE_OPTIONS))
    return await check_held_targets(engine, adapters, renew_failing=True)
