"""Stops and take-profit ladders, native or managed by the engine.

At fan-out an approved open becomes an entry plus its bracket children (a
``stop`` and ``tp1..tpN``), all rows from the start so the dashboard shows
the whole plan.  The children are named after the entry (``<entry>-sl``, ``<entry>-tpN``),
share an ``oco_group`` (the entry's client order id), point at the entry
(``parent_order_id``) and wait for it (``wait_for_order_id``).

* Venue with native brackets: the entry is sent with a ``BracketSpec``
  built from its children (see ``submit``); the venue holds them.
* Otherwise the engine manages them: when the entry ends with a fill the
  children are released (rescaled to the filled quantity when the entry
  filled only partly), and after every fill ``rebalance`` keeps the live
  protection no larger than the position: a take-profit fill shrinks the
  stop, a flat position cancels what is left, a flipped position cancels
  children on the wrong side.  The engine does this itself rather than
  relying on venue OCO, which would cancel a whole ladder on its first fill.
* Venue whose open exits hold quantity but that holds no brackets (spot
  crypto through ccxt: ``capabilities.engine_holds_targets``): an open sell
  locks the coins, so a full-size stop and the targets cannot all rest there.
  The stop goes to the venue (protection survives the engine being down);
  the targets stay ``new`` rows held by the engine (``is_engine_held``: they
  wait for themselves), and ``held_targets`` sends each one when the quote
  reaches it: it shrinks the stop first (cancel, confirmed, then a
  replacement for the rest), the target waits for that cancel, then goes out
  as a limit sell of its slice.  ``rebalance`` trims or cancels held targets
  with the working ones.
* Venue whose bracket holds fewer targets than the ladder (Alpaca, IBKR:
  one): the fan-out splits the ladder into one bracket per target
  (``add_slices``), so each slice's stop and target cancel each other at the
  venue and no whipsaw can sell more than is held.

Changing a working order is cancel + replace: the replacement waits for the
old order and goes out only once that one is cancelled (never two stops at
once); if the old order filled meanwhile, the replacement is dropped.

A close at a venue whose open exits hold quantity waits the same way for
the cancels that free its shares (``commands.plan_close``): Alpaca cancels
asynchronously (``pending_cancel`` still holds the shares), so a close sent
beside an unconfirmed cancel would be refused.  It waits for one of them (the
newest); when that one ends, ``release_waiting`` points it at the next cancel
still pending, and once none is left sizes it to the shares now free (the
position less the protection it keeps): a leg that filled instead of
cancelling has sold those shares already, so the close shrinks or is dropped,
never oversells.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlmodel import Session, select

from backend.db.models import Order, OrderEvent, Position
from backend.execution import intents as legs
from backend.execution.intents import child_order_id, client_order_id, opposite, split_quantity
from backend.execution.journal import Journal
from backend.execution.planner import Plan, order_fields
from backend.execution.positions import order_position_key
from backend.execution.state_machine import CANCELLED, FILLED, FINAL, NEW, WORKING, transition

ZERO = Decimal(0)
CLOSING_LEGS = frozenset({legs.CLOSE, legs.FLATTEN, legs.REVERSE})


def add_children(plan: Plan, entry, *, stop: Decimal | None, targets: Sequence[tuple[Decimal, Decimal]],
                 signal_id: int, now: datetime, tp_leg: str | None = None) -> None:
    """Queue the stop and the take-profit ladder of ``entry`` (an Intent) in ``plan``.

    ``tp_leg``: the leg of a slice's single target (``add_slices``), named ``<entry>-tp1`` whatever its leg.
    """
    f = entry.fields
    common = dict(user_id=f["user_id"], broker_account_id=f["broker_account_id"], symbol=f["symbol"],
                  asset_class=f["asset_class"], side=opposite(f["side"]), signal_id=signal_id,
                  decision_id=f["decision_id"], time_in_force="gtc", reduce_only=True,
                  oco_group=f["client_order_id"], option_right=f["option_right"],
                  strike=f["strike"], expiry=f["expiry"], now=now)
    if stop is not None:
        plan.add(order_fields(client_order_id=child_order_id(f["client_order_id"], legs.STOP), leg=legs.STOP,
                              order_type="stop", stop_price=stop, quantity=f["quantity"], **common),
                 parent=entry, wait_for=entry)
    for n, (price, qty) in enumerate(targets, start=1):
        leg = tp_leg or legs.tp_leg(n)
        plan.add(order_fields(client_order_id=child_order_id(f["client_order_id"], legs.tp_leg(n)), leg=leg,
                              order_type="limit", limit_price=price, quantity=qty, **common),
                 parent=entry, wait_for=entry)


def add_slices(plan: Plan, entry, *, stop: Decimal | None, targets: Sequence[tuple[Decimal, Decimal]],
               signal_id: int, now: datetime) -> list:
    """One bracket per target: ``entry`` (an Intent) becomes slice 1, each other target gets an entry of its own.

    For venues whose bracket holds fewer targets than the ladder (``capabilities.split_ladder``):
    slice ``n`` is an entry of the target's quantity with a stop (at the
    signal's stop) and that one take-profit, sent as one native bracket, so
    the venue holds every leg and each slice's stop shares its quantity with
    its target.  The target keeps its place in the ladder as its leg
    (``tpN``) and takes the client id the venue reports a bracket's
    take-profit under (``<slice entry>-tp1``).  ``targets`` are whole units
    (``intents.whole_step``) and add up to at most the approved size.
    """
    slices = []
    for n, (price, qty) in enumerate(targets, start=1):
        cid = legs.slice_order_id(entry.client_order_id, n)
        part = entry if n == 1 else plan.add(dict(entry.fields, client_order_id=cid), wait_for=entry.wait_for)
        part.fields["quantity"] = qty
        add_children(plan, part, stop=stop, targets=[(price, qty)], signal_id=signal_id, now=now,
                     tp_leg=legs.tp_leg(n))
        slices.append(part)
    return slices


def holds_in_engine(caps, order: Order) -> bool:
    """Whether a take-profit released by its entry's fill stays in the engine instead of going out.

    At a venue that locks what open exits sell and holds no brackets
    (``capabilities.engine_holds_targets``) the stop goes out and the targets
    wait (``held_targets``).  Only a target released by its entry: one the
    engine triggered waits for the stop that makes room for it instead.
    """
    return bool(caps is not None and caps.engine_holds_targets() and legs.is_tp(order.leg)
                and order.parent_order_id is not None and order.wait_for_order_id == order.parent_order_id)


def is_engine_held(order: Order) -> bool:
    """A take-profit the engine holds: ``new``, waiting for itself (for its price: ``held_targets``).

    No column of its own: an order that waits for itself is never released by
    anything else (``waiting_verdict`` says ``wait``), so every path that sends
    ``new`` orders (submission, ``runner.recover``) leaves it alone by design.
    """
    return order.status == NEW and order.wait_for_order_id is not None and order.wait_for_order_id == order.id


def cancel_or_queue(session: Session, order: Order, journal: Journal, *, now: datetime, reason: str,
                    venue_cancels: set[int]) -> None:
    """Cancel an order: locally if the venue never saw it, else queue a cancel at the venue."""
    if order.status == NEW and order.attempts == 0 and not order.broker_order_id:
        transition(session, order, CANCELLED, journal, now=now, message=reason)
    elif order.status in WORKING or order.status == NEW:
        venue_cancels.add(order.id)


def waiting_verdict(order: Order, waited: Order | None) -> str:
    """``ready``, ``wait`` or ``cancel`` for an order that waits for ``waited``.

    * a bracket child waits for its entry: ready once the entry ended with a fill;
    * a replacement (same leg) waits for the order it replaces: ready once that
      one is cancelled or expired, dropped if it filled;
    * a triggered engine-held target waits for the stop that makes room for it
      (``held_targets``): likewise;
    * an engine-held target waits for itself: never ready until triggered;
    * a close waits for a cancel that frees its shares: ready once it ended
      (``release_waiting`` then waits for the other cancels and sizes it);
    * anything else (the entry of a close-then-reverse) needs a complete fill.
    """
    if order.wait_for_order_id is None or waited is None:
        return "ready"
    if waited.status not in FINAL:
        return "wait"
    if waited.leg == legs.ENTRY and legs.is_child(order.leg):
        return "ready" if waited.filled_quantity > 0 and order.quantity > 0 else "cancel"
    if legs.is_tp(order.leg) and waited.leg == legs.STOP:  # an engine-held target waits for the stop to make room
        return "ready" if waited.status != FILLED else "cancel"
    if waited.leg == order.leg:
        return "ready" if waited.status != FILLED else "cancel"
    if waits_for_room(order, waited):
        return "ready"
    return "ready" if waited.status == FILLED else "cancel"


def waits_for_room(order: Order, waited: Order) -> bool:
    """A close waiting for the cancel of a stop or target that holds its shares (``commands.plan_close``)."""
    return order.leg in CLOSING_LEGS and legs.is_child(waited.leg)


def _why(order: Order, waited: Order) -> str:
    if waited.leg == legs.ENTRY and legs.is_child(order.leg):
        return "The entry order ended without a fill." if waited.filled_quantity == 0 else "Nothing left to cover."
    if legs.is_tp(order.leg) and waited.leg == legs.STOP:
        return "The stop filled first: there is nothing left for this target to sell."
    if waited.leg == order.leg:
        return "The order it was replacing filled first."
    return f"The order before it ended {waited.status} instead of filled."


def release_waiting(session: Session, finished: Iterable[Order], journal: Journal, *, now: datetime,
                    venue_cancels: set[int], candidates: Iterable[Order] | None = None,
                    positions: dict | None = None) -> list[int]:
    """Orders waiting on ``finished`` ones: return those now ready, cancel those that lost their reason.

    ``candidates``: the open orders of the accounts concerned, when the caller has read them already
    (an order only ever waits for one of its own account).  ``positions``: positions this transaction
    has changed (newer than the database), by (account, position key), for sizing a close.
    """
    done = {o.id: o for o in finished if o.status in FINAL}
    if not done:
        return []
    candidates_given = candidates is not None
    if candidates is None:
        candidates = session.exec(select(Order).where(Order.wait_for_order_id.in_(list(done)), Order.status == NEW)
                                  .order_by(Order.id)).all()
    waiting = [o for o in candidates if o.status == NEW and o.wait_for_order_id in done]
    ready: list[int] = []
    claimed: dict[tuple[int, str], Decimal] = defaultdict(lambda: ZERO)  # shares given to closes released here
    for entry_id in {o.wait_for_order_id for o in waiting}:
        entry = done[entry_id]
        if entry.leg == legs.ENTRY and 0 < entry.filled_quantity < entry.quantity:
            rescale_children(entry, [w for w in waiting if w.wait_for_order_id == entry_id and legs.is_child(w.leg)])
    for order in waiting:
        waited = done[order.wait_for_order_id]
        verdict = waiting_verdict(order, waited)
        if verdict == "ready" and waits_for_room(order, waited):
            verdict = _room_for_close(session, journal, order, now=now, positions=positions or {},
                                      candidates=candidates if candidates_given else None, claimed=claimed)
        if verdict == "ready":
            ready.append(order.id)
        elif verdict == "cancel":
            cancel_or_queue(session, order, journal, now=now, reason=_why(order, waited), venue_cancels=venue_cancels)
    return ready


def _room_for_close(session: Session, journal: Journal, close: Order, *, now: datetime, positions: dict,
                    candidates: Iterable[Order] | None, claimed: dict) -> str:
    """``wait`` (for the next cancel still pending), ``ready`` (sized to the free shares) or ``dropped``.

    Free: the position less the protection kept and less what other closes of it already sell (sent
    ones, or released in this pass: ``claimed``), so two closes of one position never sell it twice.
    """
    from backend.execution.settle import PENDING_CANCEL  # settle builds on this module

    key = order_position_key(close)
    if candidates is None:
        candidates = session.exec(select(Order).where(Order.broker_account_id == close.broker_account_id,
                                                      Order.status.in_(tuple(WORKING)))).all()
    protection = [o for o in candidates if o.broker_account_id == close.broker_account_id and o.status in WORKING
                  and o.side == close.side and legs.is_child(o.leg) and order_position_key(o) == key]
    cancelling = set(session.exec(select(OrderEvent.order_id).where(
        OrderEvent.order_id.in_([o.id for o in protection]), OrderEvent.to_status == PENDING_CANCEL)).all()) \
        if protection else set()
    if cancelling:
        close.wait_for_order_id, close.updated_at = max(cancelling), now
        return "wait"
    position = positions.get((close.broker_account_id, key))
    if position is not None:
        held = abs(position.quantity)
    else:  # untouched by this transaction: the database has it (a plain read, no ORM object: ``apply_fills``)
        held = abs(session.exec(select(Position.quantity).where(
            Position.broker_account_id == close.broker_account_id, Position.symbol == key)).first() or ZERO)
    kept: dict[int, Decimal] = {}  # a bracket's legs hold their shares once (only one of them can fill)
    for o in protection:
        group = o.parent_order_id or o.id
        kept[group] = max(kept.get(group, ZERO), o.quantity - o.filled_quantity)
    for group, left in bracket_left(session, protection, {o.id: o for o in candidates}).items():
        if group in kept:  # and never more than what its bracket still covers
            kept[group] = min(kept[group], max(left, ZERO))
    selling = sum((o.quantity - o.filled_quantity for o in candidates if o.id != close.id
                   and o.broker_account_id == close.broker_account_id and o.leg in CLOSING_LEGS
                   and o.status in WORKING and o.side == close.side and order_position_key(o) == key), ZERO)
    free = max(held - sum(kept.values(), ZERO) - selling - claimed[(close.broker_account_id, key)], ZERO)
    if free >= close.quantity:
        claimed[(close.broker_account_id, key)] += close.quantity
        return "ready"
    journal.audit("order.resized", subject_type="order", subject_id=close.id, actor_user_id=close.user_id,
                  data={"before": str(close.quantity), "after": str(free),
                        "why": "Fewer shares are free than planned: protection it waited for filled instead of "
                               "being cancelled, or another close sells them."})
    if free <= 0:
        transition(session, close, CANCELLED, journal, now=now,
                   message="Nothing left to close: the stop or target it waited for (or another close) "
                           "sold the shares first.")
        return "dropped"
    close.quantity, close.updated_at = free, now
    claimed[(close.broker_account_id, key)] += free
    return "ready"


def rescale_children(entry: Order, children: list[Order]) -> None:
    """Fit a bracket to a partly filled entry: the stop covers the fill, the ladder keeps its proportions.

    Whole-unit ladders stay whole (a stock bracket of 10/10/10 on a 20-share
    fill becomes 6/6/8); a target left with nothing is cancelled on release.
    """
    filled = entry.filled_quantity
    tps = [c for c in children if legs.is_tp(c.leg)]
    whole = all(q == q.to_integral_value() for q in [filled, *[c.quantity for c in tps]])
    parts = split_quantity(filled, len(tps), Decimal(1) if whole else None, [c.quantity for c in tps])
    for child, part in zip(tps, parts):
        child.quantity = part
    for child in children:
        if child.leg == legs.STOP:
            child.quantity = filled


def change_order(plan: Plan, journal: Journal, order: Order, *, now: datetime, replaceable: set[int], tag: str,
                 quantity: Decimal | None = None, stop_price: Decimal | None = None,
                 limit_price: Decimal | None = None) -> bool:
    """Change an order's size or prices, the cheapest safe way.

    Never sent: edited in place.  At a venue that amends orders
    (``capabilities.replace_order``): a replace request (``plan.replace``),
    which keeps a native bracket intact.  Elsewhere: cancel + a replacement
    that waits for the cancel.
    """
    changes = {k: v for k, v in (("quantity", quantity), ("stop_price", stop_price), ("limit_price", limit_price))
               if v is not None and v != getattr(order, k)}
    if not changes:
        return False
    before = {k: str(getattr(order, k)) if getattr(order, k) is not None else None for k in changes}
    if order.status == NEW and order.attempts == 0 and not order.broker_order_id:
        for k, v in changes.items():
            setattr(order, k, v)
        order.updated_at = now
        how = "edited"
    elif order.broker_account_id in replaceable:
        plan.replace.setdefault(order.id, {}).update(changes)
        how = "replace_requested"
    else:
        plan.cancel_order_ids.add(order.id)
        remaining = (quantity if quantity is not None else order.quantity) - order.filled_quantity
        plan.add(replacement_fields(order, remaining, now=now, stop_price=stop_price, limit_price=limit_price,
                                    tag=tag))
        how = "cancel_replace"
    journal.audit("order.modified", subject_type="order", subject_id=order.id, actor_user_id=order.user_id,
                  data={"how": how, "before": before, "after": {k: str(v) for k, v in changes.items()}})
    return True


def rebalance(session: Session, positions: Iterable[Position], journal: Journal, *, now: datetime,
              venue_cancels: set[int], replaceable, candidates: Iterable[Order] | None = None,
              known: dict[int, Order] | None = None) -> Plan:
    """Keep live stops and take-profits within the position they protect.

    Children of an entry that has not filled at all are left alone: they
    protect a position that does not exist yet.  Engine-held targets count
    with the working ones (trimmed in place, cancelled locally when flat).  ``known``: orders held in
    memory (newer than the database), looked up before reading a parent.
    """
    plan = Plan()
    plan.cancel_order_ids = venue_cancels
    touched = {(p.broker_account_id, p.symbol): p for p in positions}
    if not touched:
        return plan
    if candidates is None:
        candidates = session.exec(select(Order).where(Order.broker_account_id.in_({k[0] for k in touched}),
                                                      Order.status.in_(tuple(WORKING)))).all()
    candidates = list(candidates)
    children = sorted((c for c in candidates if (c.status in WORKING or is_engine_held(c)) and c.reduce_only
                       and legs.is_child(c.leg) and c.broker_account_id in {k[0] for k in touched}),
                      key=lambda c: -c.id)
    parents = {c.parent_order_id for c in children if c.parent_order_id}
    held = {**{c.id: c for c in candidates}, **(known or {})}
    unfilled = {p for p in parents if p in held and held[p].filled_quantity == 0}
    unread = [p for p in parents if p not in held]
    if unread:
        unfilled |= set(session.exec(select(Order.id).where(Order.id.in_(unread), Order.filled_quantity == 0)).all())
    groups: dict[tuple[int, str], dict[str, list[Order]]] = defaultdict(lambda: defaultdict(list))
    for child in children:
        key = (child.broker_account_id, order_position_key(child))
        if key in touched and child.parent_order_id not in unfilled:
            groups[key]["stop" if child.leg == legs.STOP else "tp"].append(child)
    left = bracket_left(session, [c for kinds in groups.values() for cs in kinds.values() for c in cs], held)
    for key, kinds in groups.items():
        pos = touched[key]
        size = abs(pos.quantity)
        closing_side = "sell" if pos.quantity > 0 else "buy"
        for orders in kinds.values():
            live = []
            for order in orders:  # newest first: the newest protection is trimmed first
                if size == 0 or order.side != closing_side:
                    cancel_or_queue(session, order, journal, now=now, venue_cancels=venue_cancels,
                                    reason="The position it protected is closed." if size == 0
                                    else "The position changed side.")
                else:
                    live.append(order)
            _trim(plan, session, journal, live, size, left, now=now, venue_cancels=venue_cancels,
                  replaceable=replaceable)
    return plan


def free_for_close(plan: Plan, session: Session, journal: Journal, orders: Iterable[Order], position: Position,
                   quantity: Decimal, *, now: datetime, replaceable) -> None:
    """Shrink a position's protection to what a partial close of ``quantity`` leaves, before the close.

    Where open exits hold quantity (``capabilities.exits_reserve_quantity``)
    the close would be refused while the stops and targets hold every share;
    the cancels and amendments planned here go out before it (``runner.execute``
    sends cancels, then replaces, then new orders).  Newest protection first,
    so with one bracket per target the last slices give way whole (stop and
    target together).  Children of entries that have not filled are left alone.
    """
    unfilled = {o.id for o in orders if o.leg == legs.ENTRY and o.filled_quantity == 0}
    mine = sorted((o for o in orders if legs.is_child(o.leg) and o.status in WORKING and o.reduce_only
                   and order_position_key(o) == position.symbol and o.parent_order_id not in unfilled),
                  key=lambda o: -o.id)
    left = abs(position.quantity) - quantity
    for kind in ([o for o in mine if o.leg == legs.STOP], [o for o in mine if legs.is_tp(o.leg)]):
        _trim(plan, session, journal, kind, left, {}, now=now, venue_cancels=plan.cancel_order_ids,
              replaceable=replaceable)


def shrink_to(plan: Plan, session: Session, journal: Journal, orders: Iterable[Order], size: Decimal, *,
              now: datetime, replaceable) -> None:
    """Cut ``orders`` (one kind: a position's working stops) to ``size`` in all, newest first; cancels go in
    ``plan.cancel_order_ids``, the replacements for what is left wait for them (``held_targets``)."""
    _trim(plan, session, journal, sorted(orders, key=lambda o: -o.id), size, {}, now=now,
          venue_cancels=plan.cancel_order_ids, replaceable=replaceable)


def _trim(plan: Plan, session: Session, journal: Journal, live: list[Order], size: Decimal,
          left: dict[int, Decimal], *, now: datetime, venue_cancels: set[int], replaceable) -> None:
    """Cut ``live`` (one kind, newest first) to what its own bracket still holds, then to the position."""
    want = {o.id: o.quantity - o.filled_quantity for o in live}
    spent = set()
    for o in live:
        if o.parent_order_id in left and left[o.parent_order_id] < want[o.id]:
            want[o.id] = max(left[o.parent_order_id], ZERO)
            spent.add(o.id)
    excess = sum(want.values(), ZERO) - size
    for o in live:
        if excess <= 0:
            break
        cut = min(want[o.id], excess)
        want[o.id] -= cut
        excess -= cut
    for o in live:
        remaining = o.quantity - o.filled_quantity
        if want[o.id] <= 0:
            reason = ("Its bracket's other leg filled: nothing left for it to cover." if o.id in spent
                      else "Not needed: the position is already smaller.")
            cancel_or_queue(session, o, journal, now=now, venue_cancels=venue_cancels, reason=reason)
        elif want[o.id] < remaining:
            change_order(plan, journal, o, now=now, replaceable=replaceable, tag="resize",
                         quantity=o.filled_quantity + want[o.id])


def bracket_left(session: Session, children: list[Order], held: dict[int, Order]) -> dict[int, Decimal]:
    """Entry id -> what its bracket still covers: the entry's fill less what its children have filled.

    A child never covers more than its own bracket holds: when a venue holds one
    bracket per target (``brackets.add_slices``) a target's fill ends that
    slice (the venue cancels the slice's stop) and leaves the other slices'
    stops whole, which a trim by position alone would get wrong.  Read only
    when a child of these entries has filled (an entry's own fill changes nothing here).
    """
    parents = {c.parent_order_id for c in children if c.parent_order_id}
    if not any(o.parent_order_id in parents and legs.is_child(o.leg) and o.filled_quantity > 0
               for o in held.values()):
        return {}
    rows = {r.id: r for r in session.exec(select(Order.id, Order.parent_order_id, Order.leg, Order.filled_quantity)
                                          .where(sa.or_(Order.id.in_(parents), Order.parent_order_id.in_(parents))))}
    filled = {i: (held[i].filled_quantity if i in held else r.filled_quantity) for i, r in rows.items()}
    out = {p: filled[p] for p in parents if p in filled}
    for i, r in rows.items():
        if r.parent_order_id in out and legs.is_child(r.leg):
            out[r.parent_order_id] -= filled[i]
    return out


def replacement_fields(old: Order, quantity: Decimal, *, now: datetime, stop_price: Decimal | None = None,
                       limit_price: Decimal | None = None, tag: str = "resize") -> dict:
    """A copy of ``old`` with a new size or price that waits for ``old`` to be cancelled.

    A stop that went out as a stop-limit (``stop_limits``) and moves is planned as a plain stop
    again: its limit is derived from the new trigger when it is sent.
    """
    order_type, old_limit = old.order_type, old.limit_price
    if old.leg == legs.STOP and order_type == "stop_limit" and stop_price is not None and stop_price != old.stop_price:
        order_type, old_limit = "stop", None
    return order_fields(
        client_order_id=client_order_id(f"{tag}:{old.id}", old.user_id,
                                        f"{quantity}:{stop_price or old.stop_price}:{limit_price or old.limit_price}"),
        user_id=old.user_id, broker_account_id=old.broker_account_id, symbol=old.symbol, side=old.side,
        quantity=quantity, leg=old.leg, now=now, signal_id=old.signal_id, decision_id=old.decision_id,
        asset_class=old.asset_class, order_type=order_type, time_in_force=old.time_in_force,
        limit_price=limit_price if limit_price is not None else old_limit,
        stop_price=stop_price if stop_price is not None else old.stop_price, reduce_only=old.reduce_only,
        oco_group=old.oco_group, option_right=old.option_right, strike=old.strike, expiry=old.expiry,
        parent_order_id=old.parent_order_id, wait_for_order_id=old.id)
