"""The daily loss limit between signals: checked whenever today's P&L moves.

The fan-out checks the limit when a signal arrives, but losses mostly grow
without one: a stop fills, a position is marked at a lower price.  So the
same rule (``backend.risk.loss_change``) also runs

* inside the transaction that books fills (``Settlement.finish`` calls
  ``after_fills``), so a fill that breaks the limit halts the follower in the
  same commit, before any other order of theirs can be released;
* after positions are re-marked at their venues' prices (``after_marks``).

Today's P&L is the follower's, across all their accounts: realised since the
start of their trading day (the ledger, plus the rows this transaction has
just booked and not yet written) plus open P&L at the last prices.

A state change is claimed with a conditional UPDATE (``WHERE trading_state =
<what we read>``), so of two transactions that both see the breach only one
halts, notifies and flattens.  Flatten orders are ordinary ``flatten`` closes
(``commands.plan_flatten``, the fan-out's own path) whose client order ids
derive from the halt (follower and moment), returned for submission.

Cost when no follower concerned has a daily loss limit: one query, and on the
settlement hot path not even that: ``submit`` sends ``pipelined_read`` with
its other reads (in the round trip that opens the transaction, before the
audit chain's lock) and hands the rows to ``Settlement`` as a ``Watched``, so
the check neither costs a round trip nor makes the chain's lock wait for one.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, time, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Session

from backend.brokers.registry import capabilities_of
from backend.db.models import AccountStatus, BrokerAccount, RealizedPnl, RiskProfileRecord
from backend.execution.commands import open_orders as orm_open_orders
from backend.execution.commands import plan_flatten
from backend.execution import pipeline
from backend.execution.journal import Journal
from backend.execution.loading import ProfileRow
from backend.execution.planner import Plan
from backend.execution.positions import unrealized_pnl
from backend.execution.rows import POSITIONS, PositionRow
from backend.execution.trading_state import HALTED, change_state
from backend.risk import AccountSnapshot, TradingState, loss_change, trading_day

ZERO = Decimal(0)
PROFILES = RiskProfileRecord.__table__
LEDGER = RealizedPnl.__table__
ACCOUNTS = BrokerAccount.__table__
OpenOrders = Callable[[set[int]], Iterable[Any]]

_WATCHED = (sa.select(PROFILES).where(PROFILES.c.user_id.in_(sa.bindparam("users", expanding=True)),
                                      PROFILES.c.daily_loss_limit.is_not(None), PROFILES.c.trading_state != HALTED)
            .order_by(PROFILES.c.id))
_HELD = (sa.select(POSITIONS).where(POSITIONS.c.user_id.in_(sa.bindparam("users", expanding=True)),
                                    POSITIONS.c.quantity != 0).order_by(POSITIONS.c.id))
_TRADABLE = sa.select(ACCOUNTS.c.id, ACCOUNTS.c.broker).where(ACCOUNTS.c.user_id == sa.bindparam("user"),
                                           ACCOUNTS.c.status == AccountStatus.CONNECTED.value,
                                           ACCOUNTS.c.permissions == "trade").order_by(ACCOUNTS.c.id)


_PG_WATCHED = (f"SELECT {pipeline.columns(PROFILES, 'p')} FROM {PROFILES.name} p WHERE p.user_id = ANY(%(users)s) "
               "AND p.daily_loss_limit IS NOT NULL AND p.trading_state <> %(halted)s ORDER BY p.id")


@dataclass(frozen=True)
class Watched:
    """The profiles with a daily loss limit (and not halted) among ``users``, read earlier in the transaction."""

    users: frozenset[int]
    profiles: tuple[Any, ...]


def pipelined_read(users: Iterable[int]) -> tuple[str, dict[str, Any]]:
    """``_WATCHED`` for ``users`` as a ``pipeline`` read (Postgres); turn its rows into ``watched``."""
    return _PG_WATCHED, {"users": sorted(set(users)), "halted": HALTED}


def watched(users: Iterable[int], rows: list[tuple]) -> Watched:
    columns = [c.name for c in PROFILES.columns]
    return Watched(frozenset(users), tuple(ProfileRow(dict(zip(columns, row))) for row in rows))


def _watched(conn: sa.Connection, users: list[int], known: Watched | None) -> list[Any]:
    """The watched profiles of ``users``: those ``known`` covers from its read, the others read now."""
    rest = users if known is None else [u for u in users if u not in known.users]
    wanted = set(users)
    rows = [] if known is None else [p for p in known.profiles if p.user_id in wanted]
    if rest:
        rows += [ProfileRow(r._mapping) for r in conn.execute(_WATCHED, {"users": rest})]
    return sorted(rows, key=lambda p: p.id)


@dataclass
class GuardResult:
    changed: dict[int, str] = field(default_factory=dict)  # user id -> new state
    plan: Plan = field(default_factory=Plan)
    submit_ids: list[int] = field(default_factory=list)     # flatten orders ready to send


def today_pnl(conn: sa.Connection, profiles: list[Any], now: datetime, *, held: Iterable[PositionRow] = (),
              booked: Iterable[dict] = ()) -> tuple[dict[int, Decimal], dict[int, Decimal], dict[int, list]]:
    """(realised today, open P&L, open positions) per user of ``profiles``.

    ``held``: positions changed in memory by this transaction (newer than the
    database); ``booked``: ledger rows queued by it and not yet written.
    """
    users = [p.user_id for p in profiles]
    starts = {p.user_id: datetime.combine(trading_day(now, p.market_tz), time(0), tzinfo=ZoneInfo(p.market_tz))
              .astimezone(timezone.utc) for p in profiles}
    booked = [r for r in booked if r["user_id"] in starts]
    fresh = {r["fill_id"] for r in booked if r.get("fill_id") is not None}
    realized: dict[int, Decimal] = defaultdict(lambda: ZERO)
    # Summed in Python: SQLite keeps decimals as text and its SUM would go through float.
    for user_id, amount, fill_id, at in conn.execute(
            sa.select(LEDGER.c.user_id, LEDGER.c.amount, LEDGER.c.fill_id, LEDGER.c.realized_at)
            .where(LEDGER.c.user_id.in_(users), LEDGER.c.realized_at >= min(starts.values()))):
        if at >= starts[user_id] and (fill_id is None or fill_id not in fresh):
            realized[user_id] += amount
    for row in booked:
        if row["realized_at"] >= starts[row["user_id"]]:
            realized[row["user_id"]] += row["amount"]
    newer = {p.id: p for p in held if p.user_id in starts}
    positions: dict[int, list] = defaultdict(list)
    for row in conn.execute(_HELD, {"users": users}):
        positions[row.user_id].append(newer.pop(row.id, None) or PositionRow(row._mapping))
    for pos in newer.values():  # opened by this transaction
        positions[pos.user_id].append(pos)
    unrealized = {u: sum((unrealized_pnl(p) for p in ps if p.quantity != 0), ZERO) for u, ps in positions.items()}
    return realized, defaultdict(lambda: ZERO, unrealized), positions


def _claim(conn: sa.Connection, row: Any, to: str, reason: str, now: datetime) -> bool:
    """Compare-and-set the state: True when this transaction made the change."""
    result = conn.execute(sa.update(PROFILES).where(PROFILES.c.id == row.id,
                                                    PROFILES.c.trading_state == row.trading_state)
                          .values(trading_state=to, state_reason=reason[:500], updated_at=now,
                                  halted_on=trading_day(now, row.market_tz)))
    return result.rowcount == 1


def check(session: Session, journal: Journal, users: Iterable[int], now: datetime, *, open_orders: OpenOrders,
          held: Iterable[PositionRow] = (), booked: Iterable[dict] = (), known: Watched | None = None) -> GuardResult:
    """Apply the loss rule to ``users``; halt / make close-only / flatten as it says.

    ``known``: the watched profiles read earlier in this transaction (``pipelined_read``).
    """
    out = GuardResult()
    users = sorted(set(users))
    if not users:
        return out
    conn = session.connection()
    watched = _watched(conn, users, known)
    if not watched:
        return out
    held = list(held)
    realized, unrealized, positions = today_pnl(conn, watched, now, held=held, booked=booked)
    for row in watched:
        uid = row.user_id
        view = AccountSnapshot(equity=ZERO, buying_power=ZERO, realized_pnl_today=realized[uid],
                               unrealized_pnl=unrealized[uid], trading_state=TradingState(row.trading_state))
        change = loss_change(view, daily_loss_limit=row.daily_loss_limit,
                             reduce_at_percent=row.reduce_at_loss_percent, flatten=row.flatten_on_daily_loss)
        if change is None or not _claim(conn, row, change.state.value, change.reason.message, now):
            continue
        change_state(journal, row, change.state.value, change.reason.message, now, for_the_day=True,
                     flatten=change.flatten)
        out.changed[uid] = change.state.value
        if change.flatten:
            _flatten(session, journal, out.plan, uid, positions[uid], open_orders, now)
    if out.plan.intents:
        out.submit_ids = out.plan.write(session, journal)
    return out


def _flatten(session: Session, journal: Journal, plan: Plan, user_id: int, positions: list, open_orders: OpenOrders,
             now: datetime) -> None:
    kinds = dict(session.connection().execute(_TRADABLE, {"user": user_id}).all())
    accounts = set(kinds)
    # Where open exits hold quantity (Alpaca, spot exchanges) each close waits for its legs' cancels.
    frees_first = {a for a, kind in kinds.items() if capabilities_of(kind).exits_reserve_quantity}
    orders: dict[int, list] = defaultdict(list)
    for order in open_orders(accounts):
        orders[order.broker_account_id].append(order)
    for account_id in sorted(accounts):
        plan_flatten(plan, session, journal, positions=[p for p in positions if p.broker_account_id == account_id],
                     orders=orders[account_id], key=f"loss:{user_id}:{now.isoformat()}", now=now,
                     frees_first=frees_first)


def after_fills(session: Session, journal: Journal, positions: Iterable[PositionRow], booked: list[dict],
                now: datetime, *, open_orders: OpenOrders, venue_cancels: set[int],
                known: Watched | None = None) -> GuardResult:
    """``Settlement.finish``: the owners of the positions these fills moved.  Venue cancels of the
    flatten (working entries, bracket children) are added to ``venue_cancels``."""
    held = list(positions)
    result = check(session, journal, {p.user_id for p in held}, now, open_orders=open_orders, held=held,
                   booked=booked, known=known)
    venue_cancels |= result.plan.cancel_order_ids
    return result


def after_marks(session: Session, journal: Journal, account_ids: Iterable[int], now: datetime) -> GuardResult:
    """After new marks (``tracking.refresh_marks``): the owners of the re-marked accounts.  Flatten
    orders are left ``new`` for the next ``runner.recover``; their venue cancels are recorded as pending."""
    from backend.execution.settle import mark_pending_cancels

    ids = sorted(set(account_ids))
    if not ids:
        return GuardResult()
    users = session.connection().execute(sa.select(ACCOUNTS.c.user_id).where(ACCOUNTS.c.id.in_(ids))).scalars()

    def orders_of(accounts: set[int]) -> list:
        return [o for group in orm_open_orders(session, accounts).values() for o in group]

    result = check(session, journal, set(users), now, open_orders=orders_of)
    mark_pending_cancels(session, result.plan.cancel_order_ids, now, journal=journal)
    return result
