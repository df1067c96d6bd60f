"""The one interface every broker and exchange adapter implements.

The execution engine talks only to this interface and asks an adapter's
``capabilities`` instead of branching on broker names (freqtrade's ``_ft_has``
idea).  Adapters translate vendor errors into ``backend.errors`` at this
boundary (``raise InsufficientFunds(...) from e``); nothing vendor-specific
leaks upward, and no credential ever appears in a message.

Idempotency contract: ``place_order`` with a ``client_order_id`` the venue
has already seen must return that existing order, never create a second one.
That is what lets the engine retry after a timeout or a crash safely.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Literal

Side = Literal["buy", "sell"]
OrderType = Literal["market", "limit", "stop", "stop_limit"]
VenueOrderStatus = Literal[
    "submitted", "partially_filled", "filled", "cancelled", "rejected", "expired"
]


@dataclass(frozen=True)
class Capabilities:
    asset_classes: frozenset[str] = frozenset({"stock"})
    order_types: frozenset[str] = frozenset({"market", "limit"})
    native_brackets: bool = False   # venue holds stop + take-profit attached to the entry
    max_bracket_take_profits: int | None = None  # None = any ladder; 1 = one TP per bracket
    # Open exit orders hold the position's quantity (Alpaca, spot crypto): a sell beside a full-size stop is
    # refused, so a close waits for the cancels that free its shares.
    exits_reserve_quantity: bool = False
    native_oco: bool = False
    fractional: bool = False
    short_selling: bool = False
    replace_order: bool = False
    max_requests_per_minute: int | None = None
    session_status: bool = False    # a long-lived session whose ``status()`` can change between calls (IBKR)
    in_process: bool = False        # the venue runs inside the product (paper): no network to time out or throttle

    def engine_holds_targets(self) -> bool:
        """Whether the engine keeps a signal's take-profits itself instead of placing them at the venue.

        Where open exits hold quantity and the venue holds no brackets (spot
        crypto through ccxt), the venue-held stop locks every unit: a target
        placed beside it is refused.  The stop stays at the venue (protection
        survives the engine being down) and the targets wait in the engine
        until their price is reached (``execution.held_targets``).
        """
        return self.exits_reserve_quantity and not self.native_brackets

    def split_ladder(self, targets: int) -> bool:
        """Whether a ladder of ``targets`` take-profits must go out as one bracket per target.

        A venue bracket that holds fewer targets than the ladder (Alpaca, IBKR:
        one) cannot carry it whole.  Engine-placed targets beside a venue-held
        stop are wrong at both: where open exits hold quantity (Alpaca) they
        are refused (the stop holds every share); where they do not (IBKR) the
        stop and the targets are not linked at the venue, so a whipsaw that
        triggers the stop and then a resting target sells more than is held.
        One bracket per target lets each slice's stop and target share the
        slice's quantity and cancel each other at the venue.
        """
        return (self.native_brackets and self.max_bracket_take_profits is not None
                and targets > self.max_bracket_take_profits)


@dataclass(frozen=True)
class InstrumentInfo:
    symbol: str
    asset_class: str
    min_quantity: Decimal | None = None
    quantity_step: Decimal | None = None
    price_tick: Decimal | None = None
    min_notional: Decimal | None = None
    fractional: bool = False


@dataclass(frozen=True)
class AccountInfo:
    account_id: str
    currency: str
    cash: Decimal
    equity: Decimal
    buying_power: Decimal
    can_trade: bool = True


@dataclass(frozen=True)
class BrokerPosition:
    symbol: str
    quantity: Decimal          # signed: negative is short
    avg_price: Decimal
    market_price: Decimal | None = None


@dataclass(frozen=True)
class BracketSpec:
    stop_loss: Decimal | None = None
    take_profits: tuple[tuple[Decimal, Decimal], ...] = ()   # (price, quantity)


@dataclass(frozen=True)
class OrderRequest:
    client_order_id: str
    symbol: str
    side: Side
    quantity: Decimal
    order_type: OrderType = "market"
    asset_class: str = "stock"
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    time_in_force: str = "day"
    reduce_only: bool = False
    leverage: Decimal | None = None
    option_right: str | None = None
    strike: Decimal | None = None
    expiry: date | None = None
    oco_group: str | None = None            # orders sharing a group cancel each other on fill
    bracket: BracketSpec | None = None      # only when capabilities.native_brackets
    reference_price: Decimal | None = None  # the signal's price, used by the paper venue


@dataclass(frozen=True)
class VenueFill:
    fill_id: str
    quantity: Decimal
    price: Decimal
    fee: Decimal
    filled_at: datetime


@dataclass(frozen=True)
class OrderSnapshot:
    """The venue's view of one order."""

    client_order_id: str
    broker_order_id: str
    symbol: str
    side: Side
    quantity: Decimal
    status: VenueOrderStatus
    filled_quantity: Decimal = Decimal("0")
    avg_fill_price: Decimal | None = None
    fills: tuple[VenueFill, ...] = field(default_factory=tuple)
    reject_reason: str | None = None
    # The order's cumulative fee so far, in the quote currency, where the venue states it per order only
    # (Kraken's ``fee``, Coinbase's ``total_fees``); None where it does not say.  The engine books the
    # increase since the last snapshot with the synthetic fill of a totals-only snapshot; ignored when
    # ``fills`` carry their own fees.
    fee: Decimal | None = None


class BrokerAdapter(abc.ABC):
    """Async so that network adapters never block the worker's event loop."""

    name: str = "base"
    capabilities: Capabilities = Capabilities()

    @abc.abstractmethod
    async def validate(self) -> AccountInfo:
        """A harmless authenticated call (account read) that proves the credentials."""

    @abc.abstractmethod
    async def account(self) -> AccountInfo: ...

    @abc.abstractmethod
    async def positions(self) -> list[BrokerPosition]: ...

    @abc.abstractmethod
    async def instrument(self, symbol: str, asset_class: str = "stock") -> InstrumentInfo: ...

    @abc.abstractmethod
    async def place_order(self, request: OrderRequest) -> OrderSnapshot:
        """Submit, or return the existing order with the same client order id."""

    @abc.abstractmethod
    async def cancel_order(self, client_order_id: str) -> OrderSnapshot: ...

    @abc.abstractmethod
    async def order_status(self, client_order_id: str) -> OrderSnapshot: ...

    @abc.abstractmethod
    async def open_orders(self) -> list[OrderSnapshot]: ...

    @abc.abstractmethod
    async def fills_since(self, since: datetime) -> list[tuple[str, VenueFill]]:
        """(client_order_id, fill) pairs since a time, for reconciliation."""

    async def replace_order(
        self, client_order_id: str, *, quantity: Decimal | None = None,
        limit_price: Decimal | None = None, stop_price: Decimal | None = None,
    ) -> OrderSnapshot:
        """Default: not supported; the engine cancels and re-places instead."""
        raise NotImplementedError

    async def quote(self, symbol: str) -> Decimal | None:
        """Last price if the venue offers one cheaply; used for sizing market orders."""
        return None

    def status(self) -> tuple[str, str]:
        """Connection state for the dashboard: ("connected"|"disconnected"|"logged_out", message).

        Request/response adapters are "connected" whenever a call works; session-based
        ones (IBKR's gateway, ``capabilities.session_status``) override this to report a
        dropped or logged-out session, and say "unknown" before their first connection.
        """
        return ("connected", "")

    async def close(self) -> None:
        """Release network resources."""
