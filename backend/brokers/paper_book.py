"""The paper venue's matching engine, as pure code over an in-memory book.

Why pure: placement, quote updates, cancels and replaces all apply the same
rules, and the rules are easiest to trust when they run without a database.
``paper.py`` loads the rows one pass needs (with the accounts locked), runs a
``Book`` and writes back what changed, in one transaction.

Rules
-----
* Market: fills at the quote plus slippage for a buy, minus for a sell.
* Limit: fills when marketable (buy: quote <= limit; sell: quote >= limit), at
  the slipped quote but never worse than the limit; otherwise it rests.
* Stop: triggers when the quote reaches the stop (buy: >=, sell: <=) and then
  fills like a market order (a gap fills at the quote, worse than the stop).
  A stop-limit, once triggered, becomes a plain limit order for good.
* Fees: ``fee_per_order`` on an order's first fill + ``fee_bps`` of each fill's notional.
* ``partial_fill_max``: one pass fills at most that fraction of the order's
  *original* quantity (a fraction of the remainder would never reach zero).
* Cash: a buy needs notional + fee <= cash x leverage; a sell that opens or
  grows a short needs the short part's notional <= cash x leverage, and its
  proceeds are credited to cash.  ``leverage`` and ``reduce_only`` apply only
  while the order is in memory (placement): paper_orders has no column for
  them, so a resting order that fills later uses leverage 1 and no cap.
* OCO: when an order of a group fills completely, the rest of the group is cancelled.
* Brackets: an entry's legs are stored with it as ``held`` (alpaca's word)
  and share the OCO group named by the entry's client order id; they become
  working once the entry is completely filled (or, if the entry is cancelled
  after a partial fill, resized to what did fill).  The ladder is modelled as
  a *reducing* group (IB's OCA "reduce" type): a take-profit fill of q
  reduces the stop's quantity by q (the stop is cancelled when nothing is
  left to protect); any stop fill cancels every remaining take-profit.  Legs
  never open a new position: their fill is capped at what is left to close.

Every reason written on an order (``reject_reason``, an error's message) may
reach a trader as a Discord DM, so it is a plain sentence about their order:
no method names, no internal ids.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_DOWN, Decimal

from backend.brokers.paper_rules import BPS, ONE, ZERO, contract_multiplier, funds_message, q10
from backend.errors import BrokerError, InsufficientFunds, InvalidSymbol

OPEN = frozenset({"held", "submitted", "partially_filled"})
WORKING = frozenset({"submitted", "partially_filled"})
CHUNK = Decimal("1e-8")


@dataclass(frozen=True)
class FillTerms:
    slippage_bps: Decimal
    fee_per_order: Decimal
    fee_bps: Decimal
    partial_fill_max: Decimal | None = None


@dataclass(eq=False)
class BookOrder:
    id: int
    account_id: int
    client_order_id: str
    symbol: str
    side: str
    order_type: str
    quantity: Decimal
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    oco_group: str | None = None
    status: str = "submitted"
    filled_quantity: Decimal = ZERO
    avg_fill_price: Decimal | None = None
    reject_reason: str | None = None
    leverage: Decimal = ONE
    reduce_only: bool = False
    _loaded: tuple | None = field(default=None, repr=False)

    def mark_loaded(self) -> "BookOrder":
        self._loaded = self.state()
        return self

    def state(self) -> tuple:
        return (self.order_type, self.quantity, self.limit_price, self.stop_price, self.status,
                self.filled_quantity, self.avg_fill_price, self.reject_reason)

    @property
    def dirty(self) -> bool:
        return self._loaded != self.state()

    @property
    def remaining(self) -> Decimal:
        return self.quantity - self.filled_quantity

    @property
    def leg(self) -> str | None:
        """'sl' or 'tp' for a bracket leg (named ``<entry>-sl`` / ``<entry>-tpN`` in group ``<entry>``)."""
        group = self.oco_group
        if not group or not self.client_order_id.startswith(group + "-"):
            return None
        suffix = self.client_order_id[len(group) + 1:]
        if suffix == "sl":
            return "sl"
        return "tp" if suffix[:2] == "tp" and suffix[2:].isdigit() else None


@dataclass
class BookFill:
    order_id: int
    account_id: int
    symbol: str
    side: str
    quantity: Decimal
    price: Decimal
    fee: Decimal
    filled_at: datetime
    id: int | None = None


class Book:
    """One matching pass over the orders loaded for it; see the module doc for the rules."""

    def __init__(
        self, orders: Iterable[BookOrder], *, cash: Mapping[int, Decimal],
        positions: Mapping[tuple[int, str], Decimal], quotes: Mapping[str, Decimal],
        terms: FillTerms, now: datetime,
    ) -> None:
        self.orders: dict[int, BookOrder] = {}
        self._groups: dict[tuple[int, str], list[BookOrder]] = defaultdict(list)
        self.cash = dict(cash)
        self.cash_changed: set[int] = set()
        self.positions: dict[tuple[int, str], Decimal] = defaultdict(Decimal, positions)
        self.quotes = dict(quotes)
        self.terms = terms
        self.now = now
        self.fills: list[BookFill] = []
        self.errors: dict[int, BrokerError] = {}
        for order in orders:
            self.add(order)

    def add(self, order: BookOrder) -> None:
        self.orders[order.id] = order
        if order.oco_group:
            self._groups[(order.account_id, order.oco_group)].append(order)

    # ------------------------------------------------------------------ entry points
    def place(self, order: BookOrder, legs: Iterable[BookOrder] = ()) -> None:
        """A new order: refuse it up front if it cannot be paid for, else match it now."""
        self.add(order)
        error = self._admission_error(order)
        if error is not None:
            self._finish(order, "rejected", error.message)
            self.errors[order.id] = error
            return
        for leg in legs:
            self.add(leg)
        self.run([order.id])

    def run(self, scope: Iterable[int]) -> None:
        """Evaluate each working order of ``scope`` once, plus any leg a fill activates."""
        queue, seen = deque(scope), set()
        while queue:
            order_id = queue.popleft()
            if order_id in seen:
                continue
            seen.add(order_id)
            order = self.orders[order_id]
            if order.status in WORKING:
                queue.extend(self._evaluate(order))

    def cancel(self, order: BookOrder, reason: str | None = None) -> list[int]:
        """Cancel an open order; returns the legs this activated (to ``run`` them)."""
        if order.status not in OPEN:
            return []
        return self._finish(order, "cancelled", reason)

    # ------------------------------------------------------------------ matching
    def _admission_error(self, order: BookOrder) -> BrokerError | None:
        quote = self.quotes.get(order.symbol)
        if order.order_type == "market" and quote is None:
            return InvalidSymbol(
                f"The paper market has no price for {order.symbol} yet, so a market order cannot fill. "
                "Post a limit price, or wait until the symbol has a quote.", field="symbol",
            )
        price = {
            "market": self._slipped(quote, order.side) if quote is not None else None,
            "limit": order.limit_price, "stop_limit": order.limit_price, "stop": order.stop_price,
        }[order.order_type]
        needed = self._requirement(order, order.quantity, price, first_fill=True)
        power = self.cash[order.account_id] * order.leverage
        return InsufficientFunds(funds_message(needed, power)) if needed > 0 and needed > power else None

    def _evaluate(self, order: BookOrder) -> list[int]:
        quote = self.quotes.get(order.symbol)
        if quote is None:
            return []
        price = self._execution_price(order, quote)
        if price is None:
            return []
        quantity = order.remaining
        if self.terms.partial_fill_max is not None:
            chunk = (order.quantity * self.terms.partial_fill_max).quantize(CHUNK, rounding=ROUND_DOWN)
            if chunk > 0:
                quantity = min(quantity, chunk)
        if order.leg or order.reduce_only:
            closable = self._closable(order)
            if closable <= 0:
                return self._finish(order, "cancelled", "Nothing left to close: the position is already flat.")
            quantity = min(quantity, closable)
        needed = self._requirement(order, quantity, price, first_fill=order.filled_quantity == 0)
        power = self.cash[order.account_id] * order.leverage
        if needed > 0 and needed > power:
            message = funds_message(needed, power)
            self.errors[order.id] = InsufficientFunds(message)
            return self._finish(order, "rejected", message)
        return self._fill(order, quantity, price)

    def _execution_price(self, order: BookOrder, quote: Decimal) -> Decimal | None:
        buy = order.side == "buy"
        if order.order_type in ("stop", "stop_limit"):
            if not (quote >= order.stop_price if buy else quote <= order.stop_price):
                return None
            if order.order_type == "stop":
                return self._slipped(quote, order.side)
            order.order_type = "limit"  # a triggered stop-limit is a limit order from now on
        if order.order_type == "market":
            return self._slipped(quote, order.side)
        limit, slipped = order.limit_price, self._slipped(quote, order.side)
        if buy:
            return min(limit, slipped) if quote <= limit else None
        return max(limit, slipped) if quote >= limit else None

    def _slipped(self, quote: Decimal, side: str) -> Decimal:
        factor = self.terms.slippage_bps / BPS
        return q10(quote * (ONE + factor) if side == "buy" else quote * (ONE - factor))

    def _notional_and_fee(self, symbol: str, quantity: Decimal, price: Decimal, first_fill: bool):
        notional = q10(quantity * price * contract_multiplier(symbol))
        fee = q10((self.terms.fee_per_order if first_fill else ZERO) + notional * self.terms.fee_bps / BPS)
        return notional, fee

    def _requirement(self, order: BookOrder, quantity: Decimal, price: Decimal, *, first_fill: bool) -> Decimal:
        """Buying power the fill consumes: a buy's cost, or the notional of the short it opens."""
        notional, fee = self._notional_and_fee(order.symbol, quantity, price, first_fill)
        if order.side == "buy":
            return notional + fee
        long_held = max(self.positions[(order.account_id, order.symbol)], ZERO)
        opened_short = max(quantity - long_held, ZERO)
        return q10(opened_short * price * contract_multiplier(order.symbol))

    def _closable(self, order: BookOrder) -> Decimal:
        held = self.positions[(order.account_id, order.symbol)]
        return max(held, ZERO) if order.side == "sell" else max(-held, ZERO)

    def _fill(self, order: BookOrder, quantity: Decimal, price: Decimal) -> list[int]:
        notional, fee = self._notional_and_fee(order.symbol, quantity, price, order.filled_quantity == 0)
        account, buy = order.account_id, order.side == "buy"
        self.cash[account] += -(notional + fee) if buy else notional - fee
        self.cash_changed.add(account)
        self.positions[(account, order.symbol)] += quantity if buy else -quantity
        filled = order.filled_quantity + quantity
        order.avg_fill_price = q10(((order.avg_fill_price or ZERO) * order.filled_quantity + price * quantity) / filled)
        order.filled_quantity = filled
        order.status = "filled" if order.remaining <= 0 else "partially_filled"
        self.fills.append(BookFill(order.id, account, order.symbol, order.side, quantity, price, fee, self.now))
        return self._after_fill(order, quantity)

    # ------------------------------------------------------------------ OCO and brackets
    def _after_fill(self, order: BookOrder, quantity: Decimal) -> list[int]:
        activated = self._activate_legs(order) if order.status == "filled" else []
        leg = order.leg
        if leg == "tp":
            stop = next((o for o in self._group(order) if o.leg == "sl" and o.status in OPEN), None)
            if stop is not None:
                stop.quantity = max(stop.quantity - quantity, stop.filled_quantity)
                if stop.remaining <= 0:
                    self._finish(stop, "cancelled", "Every take-profit filled: nothing left to protect.")
        elif leg == "sl":
            for take_profit in self._group(order):
                if take_profit.leg == "tp" and take_profit.status in OPEN:
                    self._finish(take_profit, "cancelled", "The stop-loss filled first.")
        elif order.oco_group and order.status == "filled":
            for sibling in self._group(order):
                if sibling.status in OPEN:
                    self._finish(sibling, "cancelled", "The other order of its one-cancels-other pair filled first.")
        return activated

    def _group(self, order: BookOrder) -> list[BookOrder]:
        return [o for o in self._groups.get((order.account_id, order.oco_group), ()) if o is not order]

    def legs_of(self, entry: BookOrder) -> list[BookOrder]:
        """The entry's bracket legs still waiting for it to fill."""
        members = self._groups.get((entry.account_id, entry.client_order_id), ())
        return [o for o in members if o.status == "held" and o.leg]

    def _activate_legs(self, entry: BookOrder) -> list[int]:
        """Make the held legs work, sized to what the entry actually filled."""
        legs = self.legs_of(entry)
        left = entry.filled_quantity
        take_profits = sorted(
            (o for o in legs if o.leg == "tp"), key=lambda o: int(o.client_order_id.rsplit("tp", 1)[1])
        )
        for leg in legs:
            if leg.leg == "sl":
                leg.quantity = min(leg.quantity, entry.filled_quantity)
        for take_profit in take_profits:
            take_profit.quantity = min(take_profit.quantity, left)
            left -= take_profit.quantity
        activated = []
        for leg in legs:
            if leg.quantity <= 0:
                self._finish(leg, "cancelled", "The entry filled only in part, leaving nothing for this exit.")
            else:
                leg.status = "submitted"
                activated.append(leg.id)
        return activated

    def _finish(self, order: BookOrder, status: str, reason: str | None) -> list[int]:
        """Close an order; its held legs follow (activated if it filled in part, else cancelled)."""
        order.status = status
        order.reject_reason = reason
        if order.filled_quantity > 0:
            return self._activate_legs(order)
        for leg in self.legs_of(order):
            leg.status = "cancelled"
            leg.reject_reason = f"The entry order was {status} before it filled."
        return []
