"""Fan-out: one stored signal -> a risk decision and order intents for every follower.

Everything happens in ONE transaction per signal, and nothing is sent to a
broker inside it:

1. lock the signal row (Postgres ``FOR UPDATE``) and stop unless it is still
   ``received`` (another worker, or a previous run, did it already);
2. bulk-load the auto-trading follows, their broker accounts, risk profiles,
   positions, open orders and today's realised P&L (a handful of queries,
   however many followers);
3. lift halts whose trading day is over, then call the pure risk engine
   once per follower (market data is fetched once per venue and symbol);
4. insert every decision (approved or denied, with reasons and inputs),
   unique per (signal, follower) so a re-run adds nothing; insert the order
   intents of the approved ones; apply trading-state changes and flattens;
5. mark the signal ``dispatched``, append the audit events, commit.

The caller then submits the returned orders (``runner.execute_dispatch``).
If the process dies between the commit and the submission, ``runner.recover``
submits the ``new`` orders; deterministic client order ids make that safe.
What each approved decision becomes is planned here (``_plan_orders``); the
decisions themselves are gathered and recorded by ``decisions``.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from backend.db.models import (
    BrokerAccount, RiskProfileRecord, Signal, SignalSource,
)
from backend.brokers.registry import capabilities_of
from backend.db.types import utcnow
from backend.errors import ValidationError
from backend.execution import intents as legs
from backend.execution.accounts import fetch_missing_equity, load_books, snapshot
from backend.execution.adapters import Adapters, MarketData, accounts_that_replace, accounts_where
from backend.execution.brackets import add_children, add_slices
from backend.execution.ids import IdPool, draw_ids
from backend.execution.commands import open_orders, plan_cancel, plan_close, plan_flatten, plan_modify
from backend.execution.crash_hook import crash_point
from backend.execution.decisions import (
    Follower, audit_decisions, default_profile, denied, lift_expired_halts, loss_and_rate, pick_account, risk_profile,
    set_state, write_decisions,
)
from backend.execution.intake import DISPATCHED, RECEIVED, REJECTED, STALE, notify_followers
from backend.execution.intents import (
    client_order_id, opposite, position_key, split_into_slices, split_take_profits,
)
from backend.execution import loading
from backend.execution.journal import Journal
from backend.execution.planner import Plan, order_fields
from backend.execution.rows import ORDERS, OrderRow, queue_write_back
from backend.execution.settle import Followups, record_intents
from backend.execution.sqlutil import locked
from backend.risk import effective_step, evaluate, round_price

log = logging.getLogger(__name__)
ZERO = Decimal(0)


@dataclass
class Dispatch:
    signal_id: int
    status: str
    decisions: int = 0
    approved: int = 0
    submit_ids: list[int] = field(default_factory=list)
    cancel_ids: list[int] = field(default_factory=list)
    replace: dict[int, dict] = field(default_factory=dict)
    orders: list[Any] = field(default_factory=list)     # the intents written, as detached Orders
    accounts: dict[int, BrokerAccount] = field(default_factory=dict)


def parsed_signal(signal: Signal) -> Any:
    from backend.signals import Signal as ParsedSignal

    return ParsedSignal.from_dict(signal.parsed)


async def fan_out(engine: sa.Engine, signal_id: int, *, adapters: Adapters, now: datetime | None = None) -> Dispatch:
    """The worker's path: lock a stored ``received`` signal, fan it out, commit."""
    now = now or utcnow()
    journal = Journal()
    with Session(engine, expire_on_commit=False) as session:
        signal = session.exec(locked(session, select(Signal).where(Signal.id == signal_id))).first()
        if signal is None or signal.status != RECEIVED:
            return Dispatch(signal_id, signal.status if signal else "missing")
        source = session.get(SignalSource, signal.source_id)
        try:
            parsed = parsed_signal(signal)
        except ValueError as exc:
            signal.status, signal.status_reason = REJECTED, f"The stored signal is malformed: {exc}"[:500]
            journal.audit("signal.rejected", subject_type="signal", subject_id=signal.id,
                          community_id=source.community_id, data={"reason": signal.status_reason})
            journal.flush_audit(session)
            session.commit()
            return Dispatch(signal_id, REJECTED)
        late = (now - signal.sent_at).total_seconds() if signal.sent_at else 0.0
        if late > source.max_lag_seconds:  # e.g. no worker was running: a late "buy" is a different trade
            signal.status = STALE
            signal.status_reason = (f"Not dispatched until {late:.0f} s after it was sent; signals older than "
                                    f"{source.max_lag_seconds} s are not traded.")
            notify_followers(session, source, journal, kind="signal.stale", now=now, data={"signal_id": signal_id},
                             title=f"Signal from {source.name} not traded", body=signal.status_reason)
            journal.audit("signal.stale", subject_type="signal", subject_id=signal_id,
                          community_id=source.community_id, data={"reason": signal.status_reason})
            journal.flush_audit(session)
            session.commit()
            journal.publish()
            return Dispatch(signal_id, STALE)
        dispatch = await fan_out_in(session, journal, signal_id, source, parsed, adapters, now)
        journal.flush_audit(session)
        session.commit()
    crash_point("fanout_committed")
    journal.publish()
    return dispatch


def legs_per_follower(parsed: Any) -> int:
    """Orders one follower's plan may create at most, beyond flattens and replacements: a reversing
    close, then an entry, a stop and the take-profits, or one entry and stop per target when the
    venue takes the ladder as one bracket per target (``brackets.add_slices``)."""
    targets = len(parsed.take_profits)
    return 1 + max(2 + targets, 3 * targets)


def reserve_for(parsed: Any, data: loading.FanoutData) -> dict[str, int]:
    """How many decision and order ids a fan-out of ``parsed`` to ``data``'s followers may use, at most:
    ``legs_per_follower`` each, plus a flatten per open position and a replacement per open order."""
    followers = len(data.pairs)
    open_orders = sum(len(v) for v in data.open_orders.values()) if data.open_orders else 0
    return {"risk_decisions": followers,
            "orders": followers * legs_per_follower(parsed) + len(data.positions) + open_orders}


async def fan_out_in(session: Session, journal: Journal, signal_id: int, source: SignalSource, parsed: Any,
                     adapters: Adapters, now: datetime, *, prefetched: loading.FanoutData | None = None,
                     ids: IdPool | None = None) -> Dispatch:
    """Fan out inside the caller's transaction (the signal row is locked or was inserted by it).

    The caller commits; the ingest service uses this to store a signal and its
    intents in one transaction, which is still "written before any broker call".
    ``prefetched``: what ``loading.read`` returned for this source earlier in the transaction;
    ``ids``: the ids drawn for it (``reserve_for``) with the signal's insert.
    """
    dispatch = await _decide_and_plan(session, journal, signal_id, source, parsed, adapters, now, prefetched, ids)
    reason = f"{dispatch.approved} of {dispatch.decisions} followers approved."
    # Written with the journal's rows and the audit lock in one statement, just before the commit.
    journal.update(Signal, [{"id": signal_id, "status": DISPATCHED, "status_reason": reason}])
    journal.audit("signal.dispatched", subject_type="signal", subject_id=signal_id, community_id=source.community_id,
                  data={"decisions": dispatch.decisions, "approved": dispatch.approved,
                        "orders": len(dispatch.submit_ids)})
    return dispatch


async def _decide_and_plan(session: Session, journal: Journal, signal_id: int, source: SignalSource, parsed: Any,
                           adapters: Adapters, now: datetime, prefetched: loading.FanoutData | None,
                           ids: IdPool | None) -> Dispatch:
    dispatch = Dispatch(signal_id, DISPATCHED)
    # An option is priced and ruled as its contract (OCC symbol), never as its underlying.
    instrument = position_key(parsed.symbol, parsed.asset_class, parsed.option_right, parsed.strike, parsed.expiry)
    found = prefetched or loading.read(session, instrument=instrument, open_orders=parsed.action != "open",
                                       source_id=source.id, signal_id=signal_id)
    if not found.pairs:
        return dispatch
    # Decisions and orders get their ids ahead and are written with the journal's rows (``bulk.IdPool``).
    ids = ids or draw_ids(session.connection(), reserve_for(parsed, found))
    accounts = found.accounts
    by_user: dict[int, list[BrokerAccount]] = defaultdict(list)
    for account in accounts:
        by_user[account.user_id].append(account)
    books = load_books(session, accounts, paper_cash=found.paper_cash, positions=found.positions)
    await fetch_missing_equity(books.values(), adapters)
    followers = [Follower(f, row or default_profile(f.follower_id)) for f, row in found.pairs]
    lift_expired_halts(followers, journal, now)
    realized, recent, not_loaded = loss_and_rate(session, followers, source, signal_id, now)
    market = MarketData(adapters, paper_quotes={instrument.upper(): found.paper_quote}, engine=session.get_bind())

    for fl in followers:
        fl.account, why = pick_account(fl.follow, by_user[fl.follow.follower_id])
        if fl.account is None:
            fl.decision = denied("no_broker_account", why, parsed)
            continue
        try:
            profile, sizing_from = risk_profile(fl.profile_row, fl.follow, source, row_saved=fl.profile_row.id is not None)
        except ValidationError as exc:
            fl.decision = denied("invalid_settings", f"Your risk settings can't be used: {exc.message}", parsed)
            continue
        data = await market.get(fl.account, instrument, parsed.asset_class)
        if data.error is not None:
            fl.decision = denied(data.error.code, data.error.message, parsed)
            continue
        fl.rules = data.rules
        price = data.price if data.price is not None else (parsed.entry_prices[0] if parsed.entry_prices else None)
        acct = snapshot(books[fl.account.id], realized=realized[fl.follow.follower_id],
                        state=fl.profile_row.trading_state,
                        contract=(instrument, parsed.symbol) if instrument != parsed.symbol else None)
        fl.decision = evaluate(parsed, profile, acct, data.rules, reference_price=price, now=now,
                               recent_signal_count=recent, quote=data.price)
        fl.sizing_from = sizing_from
    dispatch.accounts = {a.id: a for a in accounts}

    write_decisions(session, journal, signal_id, source, followers, now, not_loaded, ids=ids, decided=found.decided)
    dispatch.decisions = len(followers)
    dispatch.approved = sum(1 for fl in followers if fl.decision.approved and fl.decision_id)
    trading = [fl.account for fl in followers if fl.account is not None]
    replaceable = accounts_that_replace(adapters, trading) if parsed.action in ("modify", "close") else set()
    # Accounts whose venue holds quantity for open exits: a ladder goes out as one bracket per target,
    # a partial close shrinks the protection first.
    sets = {"split": accounts_that_split(adapters, trading, len(parsed.take_profits))
            if parsed.action == "open" else set(),
            "frees_first": accounts_where(adapters, trading, lambda caps: caps.exits_reserve_quantity)
            if parsed.action == "close" else set()}
    plan, orders = _plan_orders(session, journal, signal_id, source, parsed, followers, books, by_user, now,
                                replaceable, found.open_orders, sets)
    dispatch.submit_ids = plan.write(session, journal, audit=False, ids=ids)
    audit_decisions(journal, signal_id, source, followers, plan)
    dispatch.orders = plan.orders()
    dispatch.cancel_ids = sorted(plan.cancel_order_ids)
    dispatch.replace = dict(plan.replace)
    rows = {o.id: o for held in orders.values() for o in held if isinstance(o, OrderRow)}
    record_intents(session, Followups(set(), set(plan.cancel_order_ids), plan.replace), now, known=rows,
                   journal=journal)
    # The plain rows read by ``loading`` that changed: open orders cancelled or edited locally, trading states.
    queue_write_back(journal.writes, ORDERS, rows.values())
    queue_write_back(journal.writes, RiskProfileRecord.__table__,
                     [fl.profile_row for fl in followers if isinstance(fl.profile_row, loading.ProfileRow)])
    return dispatch


def _plan_orders(session: Session, journal: Journal, signal_id: int, source: Any, parsed: Any,
                 followers: list[Follower], books: dict, by_user: dict, now: datetime, replaceable: set[int],
                 read: dict[int, list] | None, sets: dict[str, set[int]] | None = None) -> tuple[Plan, dict[int, list]]:
    """The plan, and the open orders it looked at (by account; ``read``: those ``loading`` read already).

    ``sets``: accounts by what their venue needs (``split``: ladders as one bracket per target;
    ``frees_first``: a partial close shrinks the protection before it goes out)."""
    sets = sets or {}
    plan = Plan()
    decided = [fl for fl in followers if fl.decision_id is not None and fl.account is not None]
    flatten_users = {fl.follow.follower_id for fl in decided if fl.decision.flatten}
    needs_orders = parsed.action != "open" or flatten_users
    account_ids = {fl.account.id for fl in decided} | {a.id for u in flatten_users for a in by_user[u]}
    if not needs_orders:
        orders: dict[int, list] = defaultdict(list)
    elif read is not None:
        orders = read
    else:
        orders = open_orders(session, account_ids)
    key = position_key(parsed.symbol, parsed.asset_class, parsed.option_right, parsed.strike, parsed.expiry)
    option = {"option_right": parsed.option_right, "strike": parsed.strike, "expiry": parsed.expiry}
    for fl in decided:
        d, uid, account = fl.decision, fl.follow.follower_id, fl.account
        book = books[account.id]
        position = next((p for p in book.positions if p.symbol == key), None)
        if d.new_trading_state is not None:
            set_state(session, journal, fl, d, now)
        if uid in flatten_users:
            for acc in by_user[uid]:
                plan_flatten(plan, session, journal, positions=books[acc.id].positions, orders=orders[acc.id],
                             key=f"{signal_id}:{uid}", now=now, signal_id=signal_id, decision_id=fl.decision_id,
                             frees_first={a.id for a in by_user[uid]
                                          if capabilities_of(a.broker).exits_reserve_quantity})
        if not d.approved:
            continue
        if parsed.action == "open":
            _plan_open(plan, session, journal, signal_id, source, parsed, fl, position, orders[account.id], now,
                       split=account.id in sets.get("split", ()))
        elif parsed.action == "close" and position is not None:
            limit = parsed.entry_prices[0] if parsed.order_type == "limit" and parsed.entry_prices else None
            plan_close(plan, session, journal, position=position, quantity=d.quantity, orders=orders[account.id],
                       cid=client_order_id(signal_id, uid, legs.CLOSE), leg=legs.CLOSE, now=now, signal_id=signal_id,
                       decision_id=fl.decision_id, limit_price=limit, symbol=parsed.symbol, option=option,
                       frees_first=account.id in sets.get("frees_first", ()), replaceable=replaceable)
        elif parsed.action == "modify":
            plan_modify(plan, session, journal, signal=parsed, signal_id=signal_id, follower_id=uid,
                        account_id=account.id, position=position, orders=orders[account.id], key=key, now=now,
                        replaceable=replaceable, decision_id=fl.decision_id)
        elif parsed.action == "cancel":
            plan_cancel(plan, session, journal, orders=orders[account.id], key=key, now=now,
                        reason="Cancelled by the provider's signal.")
    return plan, orders


def _plan_open(plan: Plan, session: Session, journal: Journal, signal_id: int, source: Any, parsed: Any,
               fl: Follower, position: Any, orders: list, now: datetime, split: bool = False) -> None:
    d, uid, account = fl.decision, fl.follow.follower_id, fl.account
    side = d.side or parsed.side
    reverse = None
    if position is not None and position.quantity != 0 and (position.quantity > 0) != (side == "buy"):
        reverse = plan_close(plan, session, journal, position=position, quantity=abs(position.quantity), orders=orders,
                             cid=client_order_id(signal_id, uid, legs.REVERSE), leg=legs.REVERSE, now=now,
                             signal_id=signal_id, decision_id=fl.decision_id, symbol=parsed.symbol,
                             option={"option_right": parsed.option_right, "strike": parsed.strike,
                                     "expiry": parsed.expiry})
    entry = plan.add(order_fields(
        client_order_id=client_order_id(signal_id, uid, legs.ENTRY), user_id=uid, broker_account_id=account.id,
        symbol=parsed.symbol, asset_class=parsed.asset_class, side=side, quantity=d.quantity, leg=legs.ENTRY,
        now=now, signal_id=signal_id, decision_id=fl.decision_id,
        order_type="limit" if d.limit_price is not None else "market", limit_price=d.limit_price,
        time_in_force="gtc" if parsed.asset_class == "crypto" else "day", option_right=parsed.option_right,
        strike=parsed.strike, expiry=parsed.expiry), wait_for=reverse)
    tick = fl.rules.price_tick if fl.rules else None
    prices = [round_price(p, tick, opposite(side)) for p in parsed.take_profits]
    step, allocation = effective_step(fl.rules) if fl.rules else None, allocation_for(fl.follow, source)
    slices = split_into_slices(d.quantity, prices, step, allocation) if split else []
    if slices:  # one bracket per target, in whole units (less than one unit: the plain bracket below)
        add_slices(plan, entry, stop=d.stop_price, targets=slices, signal_id=signal_id, now=now)
        return
    targets = split_take_profits(d.quantity, prices, step, allocation)
    add_children(plan, entry, stop=d.stop_price, targets=targets, signal_id=signal_id, now=now)


def accounts_that_split(adapters: Adapters, accounts, targets: int) -> set[int]:
    """Ids of the accounts whose venue takes a ladder of ``targets`` only as one bracket per target
    (``capabilities.split_ladder``)."""
    return accounts_where(adapters, accounts, lambda caps: caps.split_ladder(targets)) if targets > 1 else set()


def allocation_for(follow: Any, source: Any) -> list[Decimal] | None:
    """Take-profit allocation in percent (e.g. [50, 30, 20]): the follow's, else the source's; even split
    when neither is configured."""
    value = getattr(follow, "tp_allocation", None) or getattr(source, "tp_allocation", None)
    return [Decimal(str(v)) for v in value] if value else None
