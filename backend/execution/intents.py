"""Order intents: deterministic client order ids, legs and take-profit ladders.

A client order id is derived from *what the order is for* (signal, follower,
leg), never from a counter or a clock.  Re-running a fan-out, retrying after
a timeout or recovering after a crash therefore produces the same id, and
every venue's idempotency on client order ids turns a second submission
into a lookup of the first.  ``dte-`` + 24 hex characters (28 in all) fits
the shortest venue limit we target (Binance 36, Alpaca 48).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import date
from decimal import ROUND_FLOOR, Decimal

PREFIX = "dte-"

# Legs (orders.leg, 16 characters at most).
ENTRY = "entry"
STOP = "stop"
CLOSE = "close"
FLATTEN = "flatten"
REVERSE = "reverse"       # the close that precedes a reversing entry
PROTECTIVE_LEGS = frozenset({STOP})
REDUCING_LEGS = frozenset({STOP, CLOSE, FLATTEN, REVERSE})


def tp_leg(n: int) -> str:
    return f"tp{n}"


def is_tp(leg: str) -> bool:
    return leg.startswith("tp") and leg[2:].isdigit()


def is_child(leg: str) -> bool:
    """Bracket children: the protective stop and the take-profits."""
    return leg == STOP or is_tp(leg)


def client_order_id(signal_id: int | str, follower_id: int | str, leg: str) -> str:
    digest = hashlib.sha256(f"{signal_id}:{follower_id}:{leg}".encode()).hexdigest()
    return PREFIX + digest[:24]


def command_order_id(kind: str, account_id: int, symbol: str, request_id: str) -> str:
    """Manual commands (close from the dashboard, a slash command) carry the
    caller's request id, so a double click or a retried HTTP call is one order."""
    return client_order_id(f"cmd:{kind}:{request_id}", account_id, symbol)


def opposite(side: str) -> str:
    return "sell" if side == "buy" else "buy"


def position_key(symbol: str, asset_class: str = "stock", option_right: str | None = None,
                 strike: Decimal | None = None, expiry: date | None = None) -> str:
    """The symbol a position is booked under: an option contract is not its underlying.

    Options use the compact OCC contract symbol (``SPY261117C00450000``), the
    form Alpaca and the paper venue report positions under.
    """
    if asset_class != "option" or not (option_right and strike is not None and expiry):
        return symbol
    right = "C" if option_right.lower().startswith("c") else "P"
    return f"{symbol.upper()}{expiry:%y%m%d}{right}{int(strike * 1000):08d}"


def child_order_id(entry_client_order_id: str, leg: str) -> str:
    """Bracket legs are named after their entry (``<entry>-sl``, ``<entry>-tp2``): the convention
    venues with native brackets report their legs under, so the engine can follow them."""
    return f"{entry_client_order_id}-{'sl' if leg == STOP else leg}"


def slice_order_id(entry_client_order_id: str, n: int) -> str:
    """The entry of slice ``n`` of a ladder split into one bracket per target (``brackets.add_slices``).

    Slice 1 is the entry itself (so a one-target signal keeps its id); the others are derived from it,
    hence from the signal, the follower and the slice: a re-run writes the same ids, never new orders.
    """
    return entry_client_order_id if n == 1 else client_order_id(entry_client_order_id, n, ENTRY)


def whole_step(step: Decimal | None) -> Decimal:
    """The step of a bracket slice: whole units at least (Alpaca brackets take whole shares only)."""
    return step if step is not None and step >= 1 else Decimal(1)


def split_into_slices(quantity: Decimal, prices: Sequence[Decimal], step: Decimal | None,
                      allocation: Sequence[Decimal] | None = None) -> list[tuple[Decimal, Decimal]]:
    """``split_take_profits`` in whole units, for one bracket per target: the approved size is rounded
    down to whole units first, each slice down again, the rest goes to the last slice, so the slices
    add up to at most ``quantity``; empty when not even one unit is approved."""
    step = whole_step(step)
    return split_take_profits(round_down(quantity, step), prices, step, allocation)


def contract_multiplier(asset_class: str) -> Decimal:
    return Decimal(100) if asset_class == "option" else Decimal(1)


def round_down(quantity: Decimal, step: Decimal | None) -> Decimal:
    if step is None or step <= 0:
        return quantity
    return (quantity / step).to_integral_value(rounding=ROUND_FLOOR) * step


def split_quantity(quantity: Decimal, n: int, step: Decimal | None,
                   allocation: Sequence[Decimal] | None = None) -> list[Decimal]:
    """``quantity`` in ``n`` parts by ``allocation`` weights (even without one).

    Each part but the last is rounded DOWN to the step; the last takes the
    remainder, so the parts always add up to exactly ``quantity``.  Parts
    may be zero when the quantity is too small to split.
    """
    if n <= 0:
        return []
    weights = [Decimal(a) for a in allocation] if allocation and len(allocation) == n else [Decimal(1)] * n
    total = sum(weights)
    if total <= 0 or any(w < 0 for w in weights):
        weights, total = [Decimal(1)] * n, Decimal(n)
    parts = [round_down(quantity * w / total, step) for w in weights[:-1]]
    parts.append(quantity - sum(parts, Decimal(0)))
    return parts


def split_take_profits(quantity: Decimal, prices: Sequence[Decimal], step: Decimal | None,
                       allocation: Sequence[Decimal] | None = None) -> list[tuple[Decimal, Decimal]]:
    """Split ``quantity`` across the targets: ``[(price, quantity), ...]``.

    ``allocation`` is percentages per target (e.g. 50/30/20); without one,
    or when it does not match the number of targets, the split is even.
    Targets whose part rounds to zero are dropped (their share goes to the last).
    """
    prices = list(prices)
    if not prices or quantity <= 0:
        return []
    parts = split_quantity(quantity, len(prices), step, allocation)
    return [(p, q) for p, q in zip(prices, parts) if q > 0]
