"""The parsed signal: one immutable value shared by the chat parser and TradingView.

``Signal`` carries exactly the attributes of ``shared/contracts/signals.md``.
Prices are ``Decimal`` (never float: ``185.50 == Decimal("185.5")``), lists
are real ``list`` objects so that ``signal.entry_prices == [Decimal("185.5")]``
holds, and the dataclass is frozen so a stored signal cannot be mutated
between the risk decision and the order.  (The lists are copied on
construction; ``__hash__`` hashes them as tuples.)

``to_dict``/``from_dict`` are the JSON form the execution engine stores:
Decimals as strings (no float rounding on the way through JSON), the expiry
as an ISO date, ``None`` as ``null``.  ``from_dict`` validates everything, so
a corrupted row is refused loudly instead of being traded.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

ACTIONS = ("open", "close", "modify", "cancel")
SIDES = ("buy", "sell")
ASSET_CLASSES = ("stock", "crypto", "option")
ORDER_TYPES = ("market", "limit")
QUANTITY_UNITS = ("units", "usd", "percent_equity", "percent_position")
OPTION_RIGHTS = ("call", "put")
_ACTION_SET, _SIDE_SET, _ASSET_SET = frozenset(ACTIONS), frozenset(SIDES + (None,)), frozenset(ASSET_CLASSES)
_ORDER_SET, _UNIT_SET = frozenset(ORDER_TYPES), frozenset(QUANTITY_UNITS + (None,))
_RIGHT_SET = frozenset(OPTION_RIGHTS + (None,))
_DECIMALS = ("stop_loss", "quantity", "leverage", "strike")
_DECIMAL_LISTS = ("entry_prices", "take_profits")


@dataclass(frozen=True)
class Signal:
    action: str
    symbol: str
    asset_class: str
    side: str | None = None
    order_type: str = "market"
    entry_prices: list[Decimal] = field(default_factory=list)
    stop_loss: Decimal | None = None
    take_profits: list[Decimal] = field(default_factory=list)
    quantity: Decimal | None = None
    quantity_unit: str | None = None
    leverage: Decimal | None = None
    option_right: str | None = None
    strike: Decimal | None = None
    expiry: date | None = None
    # Beyond the contract (it allows more attributes): what the message says
    # that the contract's fields cannot.  ``partial_close``: a trim / scale-out
    # with no amount (the engine must not read it as "close everything");
    # ``breakeven``: a modify moving the stop to the entry price.
    partial_close: bool = False
    breakeven: bool = False

    def __post_init__(self) -> None:
        # One cheap combined test on the hot path; the detailed checks only
        # run to word the error message.
        try:
            ok = (self.action in _ACTION_SET and self.side in _SIDE_SET and self.asset_class in _ASSET_SET
                  and self.order_type in _ORDER_SET and self.quantity_unit in _UNIT_SET
                  and self.option_right in _RIGHT_SET)
        except TypeError:  # an unhashable value
            ok = False
        if not ok:
            _check(self.action, ACTIONS, "action")
            _check(self.side, SIDES + (None,), "side")
            _check(self.asset_class, ASSET_CLASSES, "asset_class")
            _check(self.order_type, ORDER_TYPES, "order_type")
            _check(self.quantity_unit, QUANTITY_UNITS + (None,), "quantity_unit")
            _check(self.option_right, OPTION_RIGHTS + (None,), "option_right")
        if not isinstance(self.symbol, str) or not self.symbol:
            raise ValueError("symbol must be a non-empty string")
        for name in _DECIMAL_LISTS:
            values = list(getattr(self, name))
            for v in values:
                if not isinstance(v, Decimal):
                    raise ValueError(f"{name} must contain Decimals")
            object.__setattr__(self, name, values)
        for name in _DECIMALS:
            value = getattr(self, name)
            if value is not None and not isinstance(value, Decimal):
                raise ValueError(f"{name} must be a Decimal or None")
        if self.expiry is not None and (not isinstance(self.expiry, date) or isinstance(self.expiry, datetime)):
            raise ValueError("expiry must be a date or None")

    def __hash__(self) -> int:
        return hash(tuple(tuple(v) if isinstance(v, list) else v for v in self._values()))

    def _values(self) -> list[Any]:
        return [getattr(self, f.name) for f in fields(self)]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: Decimals as strings, expiry as ``YYYY-MM-DD``."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in _DECIMAL_LISTS:
                out[f.name] = [str(v) for v in value]
            elif isinstance(value, Decimal):
                out[f.name] = str(value)
            elif isinstance(value, date):
                out[f.name] = value.isoformat()
            else:
                out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Signal:
        """Inverse of :meth:`to_dict`; raises ``ValueError`` on any malformed field."""
        if not isinstance(data, dict):
            raise ValueError("a signal must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown signal field(s): {', '.join(sorted(unknown))}")
        kwargs: dict[str, Any] = {}
        for name, value in data.items():
            if name in _DECIMAL_LISTS:
                if not isinstance(value, list):
                    raise ValueError(f"{name} must be a list of decimal strings")
                kwargs[name] = [_decimal(v, name) for v in value]
            elif name in _DECIMALS:
                kwargs[name] = None if value is None else _decimal(value, name)
            elif name == "expiry":
                kwargs[name] = None if value is None else _date(value)
            else:
                kwargs[name] = value
        try:
            return cls(**kwargs)
        except TypeError as exc:  # a required field is missing
            raise ValueError(f"incomplete signal: {exc}") from None


def _check(value: Any, allowed: tuple, name: str) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")


def _decimal(value: Any, name: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        raise ValueError(f"{name} must be a decimal string, got {value!r}")
    try:
        result = Decimal(value)
    except InvalidOperation:
        raise ValueError(f"{name} must be a decimal string, got {value!r}") from None
    if not result.is_finite():
        raise ValueError(f"{name} must be finite, got {value!r}")
    return result


def _date(value: Any) -> date:
    if not isinstance(value, str):
        raise ValueError(f"expiry must be an ISO date string, got {value!r}")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"expiry must be an ISO date (YYYY-MM-DD), got {value!r}") from None
