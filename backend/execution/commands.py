"""Close, flatten, modify and cancel: what they do to a follower's orders.

These plan functions run inside a transaction (the fan-out's, or a manual
command's) and only *write intents*: new order rows, local cancels of
orders the venue never saw, and a list of venue cancels for the caller to
send after the commit.  The broker is never called from here.

* close (all or part): a ``reduce_only`` market order (limit when the
  signal gives a price).  A full close first cancels the bracket children
  of that position, so a take-profit cannot fill after the close and open
  the other way; a partial close leaves them and ``brackets.rebalance``
  shrinks them to the remaining position once the close fills, except
  where open exits hold quantity (``frees_first``: Alpaca), where they are
  shrunk first so the close finds the shares free (``brackets.free_for_close``);
  there the close (all or part) waits until the venue confirms those cancels.
* flatten: a full close of every open position of the account, plus a
  cancel of its working entries (the daily-loss halt).
* modify: moves the stop (``breakeven`` = the position's average entry
  price) and re-prices take-profits (``brackets.change_order``: edited in
  place if never sent, amended at venues that support it, else cancelled
  and replaced once the cancel is confirmed).  With a position but no stop, a stop
  is placed.  A modify carrying neither a stop nor targets is read as "stop
  to breakeven", the only modify the contract's vocabulary leaves without a
  price.
* cancel: cancels the pending entries (not yet filled) of the symbol; their
  bracket children are dropped with them.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from backend.db.models import Order, Position
from backend.execution import intents as legs
from backend.execution.brackets import cancel_or_queue, change_order, free_for_close
from backend.execution.intents import client_order_id, opposite
from backend.execution.journal import Journal
from backend.execution.planner import Intent, Plan, order_fields
from backend.execution.positions import order_position_key
from backend.execution.state_machine import OPEN

ZERO = Decimal(0)


_OPEN_ORDERS = (select(Order).where(Order.broker_account_id.in_(sa.bindparam("accounts", expanding=True)),
                                    Order.status.in_(tuple(sorted(OPEN)))).order_by(Order.id))


def open_orders(session: Session, account_ids: Iterable[int]) -> dict[int, list[Order]]:
    """Orders not yet final, per account, oldest first (one query for every follower)."""
    ids = sorted(set(account_ids))
    found: dict[int, list[Order]] = {i: [] for i in ids}
    if ids:
        for order in session.exec(_OPEN_ORDERS, params={"accounts": ids}):
            found[order.broker_account_id].append(order)
    return found


def for_key(orders: Iterable[Order], key: str) -> list[Order]:
    return [o for o in orders if order_position_key(o) == key]


def is_breakeven(signal: Any) -> bool:
    return signal.action == "modify" and signal.stop_loss is None and not signal.take_profits


def plan_close(plan: Plan, session: Session, journal: Journal, *, position: Position, quantity: Decimal,
               orders: list[Order], cid: str, leg: str, now: datetime, signal_id: int | None = None,
               decision_id: int | None = None, limit_price: Decimal | None = None,
               symbol: str | None = None, option: dict | None = None, frees_first: bool = False,
               replaceable=()) -> Intent | None:
    """``frees_first``: the venue's open exits hold quantity, so a partial close first shrinks them
    (amended in place for accounts in ``replaceable``), and the close waits for the venue to confirm
    the cancels that free its shares (Alpaca cancels asynchronously: ``brackets.release_waiting``)."""
    held = abs(position.quantity)
    quantity = min(quantity, held)
    if quantity <= 0:
        return None
    if quantity >= held:
        for child in for_key(orders, position.symbol):
            if legs.is_child(child.leg):
                cancel_or_queue(session, child, journal, now=now, venue_cancels=plan.cancel_order_ids,
                                reason="The position is being closed.")
    elif frees_first:
        free_for_close(plan, session, journal, orders, position, quantity, now=now, replaceable=replaceable)
    side = "sell" if position.quantity > 0 else "buy"
    holding = [o.id for o in for_key(orders, position.symbol) if o.id in plan.cancel_order_ids and o.side == side
               and legs.is_child(o.leg)] if frees_first else []
    option = option or {}
    return plan.add(order_fields(
        client_order_id=cid, user_id=position.user_id, broker_account_id=position.broker_account_id,
        symbol=symbol or position.symbol, asset_class=position.asset_class,
        side=side, quantity=quantity, leg=leg, now=now,
        signal_id=signal_id, decision_id=decision_id, order_type="limit" if limit_price else "market",
        limit_price=limit_price, time_in_force="gtc" if position.asset_class == "crypto" else "day",
        reduce_only=True, option_right=option.get("option_right"), strike=option.get("strike"),
        expiry=option.get("expiry"), wait_for_order_id=max(holding) if holding else None))


def plan_flatten(plan: Plan, session: Session, journal: Journal, *, positions: Iterable[Position],
                 orders: list[Order], key: str, now: datetime, signal_id: int | None = None,
                 decision_id: int | None = None, frees_first: Iterable[int] = ()) -> list[Intent]:
    """Close every position given and cancel the account's working entries; ``key`` makes the ids unique.

    ``frees_first``: the accounts whose open exits hold quantity; there each close waits for the
    venue to confirm the cancels of the legs holding its shares (``plan_close``)."""
    frees_first = set(frees_first)
    for order in orders:
        if order.leg == legs.ENTRY:
            cancel_or_queue(session, order, journal, now=now, venue_cancels=plan.cancel_order_ids,
                            reason="Cancelled: the account is being flattened.")
    out = []
    for pos in positions:
        if pos.quantity == 0:
            continue
        cid = client_order_id(f"flatten:{key}", pos.broker_account_id, pos.symbol)
        intent = plan_close(plan, session, journal, position=pos, quantity=abs(pos.quantity), orders=orders,
                            cid=cid, leg=legs.FLATTEN, now=now, signal_id=signal_id, decision_id=decision_id,
                            frees_first=pos.broker_account_id in frees_first)
        if intent is not None:
            out.append(intent)
    return out


def plan_cancel(plan: Plan, session: Session, journal: Journal, *, orders: list[Order], key: str,
                now: datetime, reason: str) -> int:
    count = 0
    for order in for_key(orders, key):
        if order.leg == legs.ENTRY:
            cancel_or_queue(session, order, journal, now=now, venue_cancels=plan.cancel_order_ids, reason=reason)
            count += 1
    return count


def plan_modify(plan: Plan, session: Session, journal: Journal, *, signal: Any, signal_id: int | None,
                follower_id: int, account_id: int, position: Position | None, orders: list[Order], key: str,
                now: datetime, replaceable: set[int], decision_id: int | None = None, seed: str | None = None) -> int:
    """Move stops / re-price targets of ``key``; returns how many orders were changed or placed.

    ``seed`` makes the new client order ids unique (default: the signal id).
    """
    seed = seed or f"modify:{signal_id}"
    mine = for_key(orders, key)
    stop_price = signal.stop_loss
    if is_breakeven(signal):
        stop_price = position.avg_price if position is not None and position.quantity != 0 else None
    changed = 0
    if stop_price is not None:
        stops = [o for o in mine if o.leg == legs.STOP]
        for stop in stops:
            changed += _reprice(plan, session, journal, stop, now=now, tag=seed, replaceable=replaceable,
                                stop_price=stop_price)
        if not stops and position is not None and position.quantity != 0:
            plan.add(order_fields(
                client_order_id=client_order_id(seed, follower_id, legs.STOP), user_id=follower_id,
                broker_account_id=account_id, symbol=signal.symbol, asset_class=position.asset_class,
                side="sell" if position.quantity > 0 else "buy", quantity=abs(position.quantity), leg=legs.STOP,
                now=now, signal_id=signal_id, decision_id=decision_id, order_type="stop", stop_price=stop_price,
                time_in_force="gtc", reduce_only=True, option_right=signal.option_right, strike=signal.strike,
                expiry=signal.expiry))
            changed += 1
    targets = sorted((o for o in mine if legs.is_tp(o.leg)), key=lambda o: (int(o.leg[2:]), o.id))
    for order, price in zip(targets, signal.take_profits):
        changed += _reprice(plan, session, journal, order, now=now, tag=seed, replaceable=replaceable,
                            limit_price=price)
    return changed


def _reprice(plan: Plan, session: Session, journal: Journal, order: Order, *, now: datetime, tag: str,
             replaceable: set[int], stop_price: Decimal | None = None, limit_price: Decimal | None = None) -> int:
    if order.quantity - order.filled_quantity <= 0:
        return 0
    return int(change_order(plan, journal, order, now=now, replaceable=replaceable, tag=tag,
                            stop_price=stop_price, limit_price=limit_price))


__all__ = ["open_orders", "plan_close", "plan_flatten", "plan_cancel", "plan_modify", "is_breakeven", "opposite"]
