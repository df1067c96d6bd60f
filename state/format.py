"""How numbers and times look on the pages: one place, so every table agrees.

State classes turn the services' ``Decimal``/``datetime`` values into display
strings here; the browser never does arithmetic on money.
"""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

DASH = "—"


def money(value: Decimal | None, currency: str | None = None) -> str:
    if value is None:
        return DASH
    text = f"{value:,.2f}"
    return f"{text} {currency}" if currency else text


def signed_money(value: Decimal | None) -> str:
    if value is None:
        return DASH
    return f"{value:+,.2f}"


def quantity(value: Decimal | None) -> str:
    """Quantities without trailing zeros: 10, 0.5, 0.00012."""
    if value is None:
        return DASH
    text = format(value.normalize(), "f")
    return text


def price(value: Decimal | None) -> str:
    if value is None:
        return DASH
    if value != 0 and abs(value) < 1:
        return format(value.normalize(), "f")
    return f"{value:,.2f}"


def when(value: datetime | None) -> str:
    if value is None:
        return DASH
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def tone(value: Decimal | None) -> str:
    """A colour name for gains and losses (Radix color scheme names)."""
    if value is None or value == 0:
        return "gray"
    return "green" if value > 0 else "red"


SOURCE_KINDS = {"discord": "Discord", "tradingview": "TradingView", "console": "Console"}
BROKERS = {"paper": "Paper", "alpaca": "Alpaca", "ccxt": "Crypto exchange", "ibkr": "Interactive Brokers"}


def source_kind(kind: str | None) -> str:
    return SOURCE_KINDS.get(kind or "", humanize(kind))


def broker(name: str | None) -> str:
    return BROKERS.get(name or "", humanize(name))


def status_text(status: str, held_by_engine: bool = False) -> str:
    """An order's status in words; a take-profit the engine holds until its price is not just "New"."""
    return "Held until target price" if held_by_engine else humanize(status)


def humanize(code: str | None) -> str:
    """``partially_filled`` -> ``Partially filled``."""
    if not code:
        return DASH
    text = code.replace("_", " ").replace(".", " ")
    return text[:1].upper() + text[1:]
