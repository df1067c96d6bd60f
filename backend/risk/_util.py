"""Small helpers shared by the risk modules: exact Decimal coercion, the
Decimal contexts used for sizing, human formatting and JSON-ready copies.

Why a private module: these are mechanics, not policy.  Keeping them here
lets ``sizing``, ``limits`` and ``engine`` read as the rules they implement.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from datetime import date, datetime, time
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, Context, Decimal, InvalidOperation
from typing import Any

from backend.errors import ValidationError

ZERO = Decimal(0)
ONE = Decimal(1)
HUNDRED = Decimal(100)

# Sizing arithmetic runs with far more digits than any price or balance has,
# so sums and differences are exact in practice.  Products and quotients are
# rounded toward the *smaller* quantity (FLOOR, all operands positive), so a
# sized order can never exceed what the formula allows, not even by 1e-28.
FLOOR_CTX = Context(prec=80, rounding=ROUND_FLOOR)
# Used where rounding *up* is the conservative direction (a stop distance:
# a larger distance means a smaller position).
CEIL_CTX = Context(prec=80, rounding=ROUND_CEILING)
# Exact-enough context for comparisons and notional values in the limits.
WIDE_CTX = Context(prec=80, rounding=ROUND_FLOOR)


def to_decimal(value: Any, field: str, *, optional: bool = False) -> Decimal | None:
    """Return ``value`` as a finite Decimal or raise ``ValidationError``.

    ints and numeric strings are accepted (they are exact); floats are
    refused because 0.1 is not 0.1 in binary and money must be exact.
    """
    if value is None:
        if optional:
            return None
        raise ValidationError(f"{field} is required.", field=field)
    if isinstance(value, bool):
        raise ValidationError(f"{field} must be a number, not true/false.", field=field)
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except InvalidOperation:
            raise ValidationError(f"{field} must be a number (got {value!r}).", field=field) from None
    else:
        raise ValidationError(
            f"{field} must be an exact decimal number, not {type(value).__name__}; "
            "floats are refused because they cannot hold money amounts exactly.",
            field=field,
        )
    if not result.is_finite():
        raise ValidationError(f"{field} must be a finite number.", field=field)
    return result


def fmt_num(value: Decimal, places: int = 8) -> str:
    """Plain decimal text without exponent, trimmed to ``places`` decimals."""
    d = value
    if d.as_tuple().exponent < -places:  # type: ignore[operator]
        d = d.quantize(Decimal(1).scaleb(-places), rounding=ROUND_DOWN, context=WIDE_CTX)
    text = format(d.normalize(WIDE_CTX), "f")
    return "0" if text in ("-0", "") else text


def fmt_money(value: Decimal) -> str:
    """``$1,234.50`` / ``-$20.00``: amounts of money shown to a trader."""
    sign = "-" if value < 0 else ""
    return f"{sign}${abs(value):,.2f}"


def fmt_price(value: Decimal) -> str:
    """Prices keep all their decimals (crypto prices can be 0.00001234)."""
    text = fmt_num(value, 10)
    whole, _, decimals = text.partition(".")
    return f"${whole}.{decimals.ljust(2, '0')}"


def fmt_pct(value: Decimal) -> str:
    return f"{fmt_num(value, 6)}%"


def jsonable(value: Any) -> Any:
    """A JSON-ready copy: Decimals as strings (exact), dates ISO, sets sorted."""
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        return sorted((jsonable(v) for v in value), key=str)
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return str(value)  # floats (should not appear), ZoneInfo, anything exotic
