"""Value objects the risk & sizing engine reads and returns.

Everything is a frozen dataclass so a decision can be recomputed from its
inputs and stored next to them (``risk_decisions.inputs``) for audit: the
same inputs always give the same ``Decision``.  Money and quantities are
``Decimal`` (floats are refused at construction); percentages are written
as percent, i.e. ``2`` means 2 %, the way a trader types them.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from backend.errors import ValidationError

from ._util import HUNDRED, ONE, ZERO, jsonable, to_decimal


class SizingMode(enum.StrEnum):
    """How a follower turns a signal into a quantity (see ``sizing.size_order``)."""

    FIXED_UNITS = "fixed_units"          # always N shares / coins / contracts
    FIXED_NOTIONAL = "fixed_notional"    # always $N worth
    PERCENT_EQUITY = "percent_equity"    # N % of equity (x leverage) worth
    RISK_PERCENT = "risk_percent"        # lose at most N % of equity if the stop is hit


class TradingState(enum.StrEnum):
    """Account-wide switch, after nautilus_trader's TradingState.

    ACTIVE: everything allowed.  REDUCING: only orders that shrink exposure
    (closes, modify, cancel).  HALTED: nothing new is opened.  Unlike
    nautilus, where HALTED refuses every order, a HALTED follower may still
    close, flatten, modify and cancel: the halt exists to stop losses from
    growing, and refusing a close would do the opposite.  Values are upper
    case to match ``risk_profiles.trading_state``.
    """

    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"


class SignalLike(Protocol):
    """What the engine reads from a parsed signal (duck-typed on purpose)."""

    @property
    def action(self) -> str: ...  # "open" | "close" | "modify" | "cancel"
    @property
    def side(self) -> str | None: ...
    @property
    def symbol(self) -> str: ...
    @property
    def asset_class(self) -> str: ...  # "stock" | "crypto" | "option"
    @property
    def order_type(self) -> str: ...  # "market" | "limit"
    @property
    def entry_prices(self) -> list[Decimal]: ...
    @property
    def stop_loss(self) -> Decimal | None: ...
    @property
    def take_profits(self) -> list[Decimal]: ...
    @property
    def quantity(self) -> Decimal | None: ...
    @property
    def quantity_unit(self) -> str | None: ...
    @property
    def leverage(self) -> Decimal | None: ...


SIGNAL_FIELDS = (
    "action", "side", "symbol", "asset_class", "order_type", "entry_prices", "stop_loss",
    "take_profits", "quantity", "quantity_unit", "leverage", "option_right", "strike", "expiry",
)


def signal_inputs(signal: Any) -> dict[str, Any]:
    """JSON-ready copy of the signal attributes the engine looked at."""
    return {name: jsonable(getattr(signal, name, None)) for name in SIGNAL_FIELDS}


def _set(obj: Any, name: str, value: Any) -> None:
    object.__setattr__(obj, name, value)  # normalising fields of a frozen dataclass


def _parse_time(value: Any, field_name: str) -> time:
    if isinstance(value, time):
        return value
    if isinstance(value, str):
        try:
            return time.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ValidationError(f"{field_name} must be a time like 09:30 (got {value!r}).", field=field_name)


@dataclass(frozen=True)
class MarketHours:
    """Regular session of an exchange, in the exchange's own time zone.

    Sessions that cross midnight are not supported (no US cash market has
    one).  ``holidays`` is optional: the engine ships no holiday calendar,
    the caller may pass one; otherwise a holiday looks like a normal day and
    the broker refuses or queues the order.
    """

    open_time: time = time(9, 30)
    close_time: time = time(16, 0)
    timezone: str = "America/New_York"
    weekdays: frozenset[int] = frozenset({0, 1, 2, 3, 4})  # Monday=0
    holidays: frozenset[date] = frozenset()

    def __post_init__(self) -> None:
        _set(self, "open_time", _parse_time(self.open_time, "market_open"))
        _set(self, "close_time", _parse_time(self.close_time, "market_close"))
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            raise ValidationError(f"Unknown time zone {self.timezone!r}.", field="market_tz") from None
        if self.open_time >= self.close_time:
            raise ValidationError("Market open must be before market close.", field="market_open")
        _set(self, "weekdays", frozenset(self.weekdays))
        _set(self, "holidays", frozenset(self.holidays))

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def is_open(self, now: datetime) -> bool:
        """True when ``now`` (timezone-aware) falls inside the session; close is exclusive."""
        local = now.astimezone(self.tz)
        if local.weekday() not in self.weekdays or local.date() in self.holidays:
            return False
        return self.open_time <= local.time().replace(tzinfo=None) < self.close_time


def _symbols(value: Any, field_name: str) -> frozenset[str]:
    if isinstance(value, str):
        raise ValidationError(f"{field_name} must be a list of symbols, not one string.", field=field_name)
    return frozenset(s.strip().upper() for s in value if s and s.strip())


def _opt_int(value: Any, field_name: str, minimum: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValidationError(f"{field_name} must be a whole number of at least {minimum}.", field=field_name)
    return value


@dataclass(frozen=True)
class RiskProfile:
    """One follower's account-wide risk settings.

    ``use_signal_quantity``: off by default because the size a provider posts
    ("buy 500 AAPL") fits the provider's account, not the follower's; copying
    it blindly would give a $5k account the exposure of a $500k one.  When on,
    a size stated in units, USD or percent of equity is honoured (still
    subject to every limit); sizes the engine cannot interpret fall back to
    the profile's own sizing mode.

    ``enforce_market_hours`` only concerns stocks and options; crypto trades
    24/7 and is never held to market hours.

    ``reduce_at_loss_percent``: a soft threshold, in percent of the daily
    loss limit (75 = close-only once today's loss reaches 75 % of it), see
    ``states.loss_change``.  ``max_price_deviation_percent``: how far a limit
    entry may sit from the venue's last price (stocks and crypto) before it
    is refused as a probably misread price; options, whose quotes are thin
    and move in large steps, use ``max_option_price_deviation_percent``.
    None switches a check off.
    """

    sizing_mode: SizingMode
    sizing_value: Decimal
    max_position_notional: Decimal | None = None
    max_open_positions: int | None = None
    max_leverage: Decimal | None = Decimal(1)
    allowed_symbols: frozenset[str] = frozenset()  # empty = every symbol
    denied_symbols: frozenset[str] = frozenset()   # deny wins over allow
    enforce_market_hours: bool = True
    market_hours: MarketHours = field(default_factory=MarketHours)
    max_signals_per_minute: int | None = None
    daily_loss_limit: Decimal | None = None        # USD, a positive amount
    flatten_on_daily_loss: bool = False
    use_signal_quantity: bool = False
    reduce_at_loss_percent: Decimal | None = None
    max_price_deviation_percent: Decimal | None = Decimal(10)
    max_option_price_deviation_percent: Decimal | None = Decimal(50)

    def __post_init__(self) -> None:
        try:
            _set(self, "sizing_mode", SizingMode(self.sizing_mode))
        except ValueError:
            raise ValidationError(f"Unknown sizing mode {self.sizing_mode!r}.", field="sizing_mode") from None
        value = to_decimal(self.sizing_value, "sizing_value")
        if value <= 0:
            raise ValidationError("The sizing value must be greater than zero.", field="sizing_value")
        if self.sizing_mode in (SizingMode.PERCENT_EQUITY, SizingMode.RISK_PERCENT) and value > HUNDRED:
            raise ValidationError("A percentage above 100 is not allowed; use leverage instead.", field="sizing_value")
        _set(self, "sizing_value", value)
        for name in ("max_position_notional", "max_leverage", "daily_loss_limit", "reduce_at_loss_percent",
                     "max_price_deviation_percent", "max_option_price_deviation_percent"):
            d = to_decimal(getattr(self, name), name, optional=True)
            if d is not None and d <= 0:
                raise ValidationError(f"{name} must be greater than zero (leave it empty for no limit).", field=name)
            _set(self, name, d)
        if self.reduce_at_loss_percent is not None and self.reduce_at_loss_percent >= HUNDRED:
            raise ValidationError("The close-only threshold is a percentage of the daily loss limit and must be "
                                  "below 100.", field="reduce_at_loss_percent")
        _set(self, "max_open_positions", _opt_int(self.max_open_positions, "max_open_positions", 1))
        _set(self, "max_signals_per_minute", _opt_int(self.max_signals_per_minute, "max_signals_per_minute", 1))
        _set(self, "allowed_symbols", _symbols(self.allowed_symbols, "allowed_symbols"))
        _set(self, "denied_symbols", _symbols(self.denied_symbols, "denied_symbols"))
        if not isinstance(self.market_hours, MarketHours):
            raise ValidationError("market_hours must be a MarketHours.", field="market_hours")


@dataclass(frozen=True)
class InstrumentRules:
    """The venue's trading rules for one instrument (from ``InstrumentInfo``).

    ``contract_multiplier`` turns a price into the money one unit moves: 100
    for US equity options (a $2.50 premium costs $250 a contract), 1 else.
    """

    min_quantity: Decimal | None = None
    quantity_step: Decimal | None = None
    price_tick: Decimal | None = None
    min_notional: Decimal | None = None
    fractional: bool = True
    contract_multiplier: Decimal = ONE

    def __post_init__(self) -> None:
        for name in ("min_quantity", "min_notional"):
            d = to_decimal(getattr(self, name), name, optional=True)
            if d is not None and d < 0:
                raise ValidationError(f"{name} cannot be negative.", field=name)
            _set(self, name, d)
        for name in ("quantity_step", "price_tick", "contract_multiplier"):
            d = to_decimal(getattr(self, name), name, optional=name != "contract_multiplier")
            if d is not None and d <= 0:
                raise ValidationError(f"{name} must be greater than zero.", field=name)
            _set(self, name, d)


@dataclass(frozen=True)
class PositionSnapshot:
    """A held position; ``quantity`` is signed (negative = short)."""

    quantity: Decimal
    avg_price: Decimal
    market_price: Decimal
    multiplier: Decimal = ONE

    def __post_init__(self) -> None:
        for name in ("quantity", "avg_price", "market_price", "multiplier"):
            _set(self, name, to_decimal(getattr(self, name), name))

    @property
    def notional(self) -> Decimal:
        """Gross market value, always >= 0."""
        return abs(self.quantity) * self.market_price * self.multiplier


@dataclass(frozen=True)
class AccountSnapshot:
    """The follower's broker account at evaluation time (read by the caller)."""

    equity: Decimal
    buying_power: Decimal
    open_positions: Mapping[str, PositionSnapshot] = field(default_factory=dict)
    realized_pnl_today: Decimal = ZERO
    unrealized_pnl: Decimal = ZERO
    trading_state: TradingState = TradingState.ACTIVE

    def __post_init__(self) -> None:
        for name in ("equity", "buying_power", "realized_pnl_today", "unrealized_pnl"):
            _set(self, name, to_decimal(getattr(self, name), name))
        try:
            _set(self, "trading_state", TradingState(str(self.trading_state).upper()))
        except ValueError:
            raise ValidationError(f"Unknown trading state {self.trading_state!r}.", field="trading_state") from None
        _set(self, "open_positions", MappingProxyType(dict(self.open_positions)))

    def position(self, symbol: str) -> PositionSnapshot | None:
        """The non-flat position in ``symbol`` (symbol compared case-insensitively)."""
        pos = self.open_positions.get(symbol)
        if pos is None:
            wanted = symbol.strip().upper()
            pos = next((p for s, p in self.open_positions.items() if s.strip().upper() == wanted), None)
        return pos if pos is not None and pos.quantity != 0 else None

    def open_symbols(self) -> frozenset[str]:
        return frozenset(s.strip().upper() for s, p in self.open_positions.items() if p.quantity != 0)


@dataclass(frozen=True)
class Reason:
    """Why: ``code`` is for programs, ``message`` is plain English for the trader."""

    code: str
    message: str


@dataclass(frozen=True)
class Decision:
    """The verdict for one follower and one signal.

    ``quantity`` is 0 whenever ``approved`` is False, and also for approved
    modify/cancel (they carry no new quantity).  ``reasons`` is never empty:
    an approval starts with code ``"approved"`` explaining the size.
    ``side`` is the order side (for a close it comes from the position).
    ``limit_price``/``stop_price`` are the signal's prices rounded to the tick
    toward the safer side.  ``flatten`` asks the caller to close every
    position (daily loss breached with ``flatten_on_daily_loss``).
    """

    approved: bool
    quantity: Decimal
    reasons: tuple[Reason, ...]
    inputs: Mapping[str, Any]
    new_trading_state: TradingState | None = None
    flatten: bool = False
    side: str | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None

    def __post_init__(self) -> None:
        _set(self, "reasons", tuple(self.reasons))
        if not self.reasons:
            raise ValueError("A decision always carries at least one reason.")
        if not self.approved and self.quantity != 0:
            raise ValueError("A denied decision has quantity 0.")

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(r.code for r in self.reasons)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (Decimals as strings), the shape stored in ``risk_decisions``."""
        return {
            "approved": self.approved,
            "quantity": str(self.quantity),
            "side": self.side,
            "limit_price": jsonable(self.limit_price),
            "stop_price": jsonable(self.stop_price),
            "reasons": [{"code": r.code, "message": r.message} for r in self.reasons],
            "inputs": jsonable(self.inputs),
            "new_trading_state": jsonable(self.new_trading_state),
            "flatten": self.flatten,
        }


def iter_reasons(items: Iterable[Reason | None]) -> list[Reason]:
    """Drop the ``None`` results of limit checks and repeated codes, keep order."""
    seen: set[str] = set()
    out: list[Reason] = []
    for r in items:
        if r is not None and r.code not in seen:
            seen.add(r.code)
            out.append(r)
    return out
