"""TradingView webhook alerts -> :class:`Signal`.

Payload (a JSON object; the alert's "Message" box in TradingView)::

    {
      "secret":      "<the source's webhook secret>",        required
      "ticker":      "AAPL" | "BTCUSDT" | "BINANCE:BTCUSDT",  required ({{ticker}}; exchange prefix
                                                              and a ".P" perpetual suffix are dropped)
      "action":      "buy" | "long"            -> open, side buy
                     "short"                   -> open, side sell
                     "sell" | "close" | "exit" -> close (reduce or exit a position)
                     "cancel"                  -> cancel pending orders
                     "modify"                  -> move stop / targets   (required)
      "order_type":  "market" | "limit"        default "market"; "limit" needs "price"
      "price":       number                    the limit price (ignored for market orders,
                                               where it is usually just {{close}})
      "quantity":    number                    optional size ...
      "size_mode":   "units" | "usd" | "percent_equity" | "percent_position"
                                               ... and its unit (default "units")
      "stop_loss":   number                    optional; required for "modify" unless take_profits
      "take_profits": [number, ...]            optional (a single number is accepted too)
      "leverage":    number                    optional, 1-200
      "alert_id":    string                    optional; the idempotency key when present
      "time":        ISO-8601 string or epoch seconds / milliseconds ({{timenow}})
      "comment", "strategy", "interval", "exchange", "note": free text, ignored
    }

Numbers may be JSON numbers or numeric strings; they become ``Decimal``
(JSON bodies are decoded with ``parse_float=Decimal``, so ``185.1`` is never
a binary float on the way).  Zero, negative, NaN and infinite prices or
quantities are refused.

Why ``"sell"`` closes instead of opening a short: a long-only TradingView
strategy exits with ``{{strategy.order.action}} == "sell"``; reading that as
"open a short" would flip every follower's position.  The chat parser uses
the same meaning; a short is opened only by ``"short"``.

Checks, in order: body is JSON and an object -> secret (constant-time
compare; before anything else is looked at, so a caller without the secret
learns nothing about the payload rules) -> age (``time`` older than
``max_lag_seconds`` -> :class:`StaleSignal`; no ``time`` -> no age check,
replay protection then rests on ``alert_id``) -> fields.  Unknown fields are
refused: a typo such as ``"stoploss"`` must not silently drop a stop.
"""

from __future__ import annotations

import hmac
import json
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from backend.errors import InvalidSignal, StaleSignal, WebhookAuthError
from backend.signals.model import QUANTITY_UNITS, Signal
from backend.signals.symbols import normalize_ticker

MAX_BODY_BYTES = 64 * 1024
_ACTIONS = {"buy": ("open", "buy"), "long": ("open", "buy"), "short": ("open", "sell"),
            "sell": ("close", None), "close": ("close", None), "exit": ("close", None),
            "cancel": ("cancel", None), "modify": ("modify", None)}
_FIELDS = {"secret", "ticker", "action", "order_type", "price", "quantity", "size_mode", "stop_loss",
           "take_profits", "leverage", "alert_id", "time"}
_IGNORED = {"comment", "strategy", "interval", "exchange", "note"}


@dataclass(frozen=True)
class TradingViewAlert:
    signal: Signal
    alert_id: str | None
    sent_at: datetime | None


def parse_tradingview_alert(payload: dict | bytes | str, *, secret: str, max_lag_seconds: float = 60,
                            now: datetime | None = None) -> TradingViewAlert:
    """Validate one webhook body; raise InvalidSignal / WebhookAuthError / StaleSignal."""
    data = _load(payload)
    _authenticate(data.get("secret"), secret)
    now = now or datetime.now(timezone.utc)
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
    sent_at = _time(data.get("time"))
    if sent_at is not None:
        age = (now - sent_at).total_seconds()
        if age > max_lag_seconds:
            raise StaleSignal(f"This alert was sent {age:.1f} s ago, more than the {max_lag_seconds:g} s allowed; "
                              "it was not traded.", field="time")
        if age < -max_lag_seconds:
            raise InvalidSignal(f"The alert's time is {-age:.1f} s in the future; check the sender's clock.",
                                field="time")
    unknown = sorted(set(data) - _FIELDS - _IGNORED)
    if unknown:
        raise InvalidSignal(f"Unknown field(s) {', '.join(map(repr, unknown))}; expected some of "
                            f"{', '.join(sorted(_FIELDS))}.", field=unknown[0])
    return TradingViewAlert(_signal(data), _alert_id(data.get("alert_id")), sent_at)


def _load(payload: Any) -> dict[str, Any]:
    if isinstance(payload, (bytes, bytearray)):
        if len(payload) > MAX_BODY_BYTES:
            raise InvalidSignal(f"The alert body is larger than {MAX_BODY_BYTES} bytes.")
        try:
            payload = bytes(payload).decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidSignal("The alert body is not UTF-8 text; send a JSON object.") from None
    if isinstance(payload, str):
        if len(payload) > MAX_BODY_BYTES:
            raise InvalidSignal(f"The alert body is larger than {MAX_BODY_BYTES} bytes.")
        try:
            payload = json.loads(payload, parse_float=Decimal, parse_constant=_no_constant)
        except _NotFinite as exc:
            raise InvalidSignal(f"The alert body contains {exc}; numbers must be finite.") from None
        except (ValueError, RecursionError):
            raise InvalidSignal("The alert body is not valid JSON; send a JSON object such as "
                                '{"ticker": "AAPL", "action": "buy", "secret": "..."}.') from None
    if not isinstance(payload, dict):
        raise InvalidSignal("The alert body must be a JSON object, not "
                            f"{type(payload).__name__}.")
    return payload


class _NotFinite(Exception):
    pass


def _no_constant(name: str) -> Any:
    raise _NotFinite(name)


def _authenticate(given: Any, expected: str) -> None:
    if not expected:
        raise WebhookAuthError("This webhook has no secret configured, so no alert is accepted.", field="secret")
    if not isinstance(given, str) or not given:
        raise WebhookAuthError("The alert has no 'secret'; add the webhook secret to the alert message.",
                               field="secret")
    if not hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8")):
        raise WebhookAuthError("The alert's secret does not match this webhook's secret.", field="secret")


def _time(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str) and value.strip() and not _is_number_text(value):
        text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise InvalidSignal(f"'time' must be ISO-8601 (2026-11-01T14:30:00Z) or epoch seconds/ms, "
                                f"got {value!r}.", field="time") from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    number = _number(value, "time", positive=True)
    seconds = float(number) / 1000 if number > Decimal("1e11") else float(number)  # > year 5138 in s: ms
    try:
        return datetime.fromtimestamp(seconds, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        raise InvalidSignal(f"'time' {value!r} is not a valid epoch time.", field="time") from None


def _is_number_text(text: str) -> bool:
    try:
        Decimal(text.strip())
    except InvalidOperation:
        return False
    return True


def _number(value: Any, name: str, *, positive: bool = True) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal, str)):
        raise InvalidSignal(f"'{name}' must be a number, got {type(value).__name__}.", field=name)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidSignal(f"'{name}' must be a finite number, got {value!r}.", field=name)
        value = repr(value)
    try:
        number = Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation:
        raise InvalidSignal(f"'{name}' must be a number, got {value!r}.", field=name) from None
    if not number.is_finite():
        raise InvalidSignal(f"'{name}' must be a finite number, got {value!r}.", field=name)
    if positive and number <= 0:
        raise InvalidSignal(f"'{name}' must be greater than zero, got {value!r}.", field=name)
    return number


def _optional_number(data: dict[str, Any], name: str) -> Decimal | None:
    value = data.get(name)
    return None if value is None else _number(value, name)


def _choice(data: dict[str, Any], name: str, allowed, default: str | None = None) -> str:
    value = data.get(name, default)
    if value is None:
        raise InvalidSignal(f"'{name}' is required; expected one of {', '.join(allowed)}.", field=name)
    if not isinstance(value, str) or value.strip().lower() not in allowed:
        raise InvalidSignal(f"'{name}' must be one of {', '.join(allowed)}, got {value!r}.", field=name)
    return value.strip().lower()


def _alert_id(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InvalidSignal(f"'alert_id' must be a string, got {type(value).__name__}.", field="alert_id")
    text = str(value).strip()
    if not text or len(text) > 200:
        raise InvalidSignal("'alert_id' must be 1 to 200 characters.", field="alert_id")
    return text


def _signal(data: dict[str, Any]) -> Signal:
    ticker = data.get("ticker")
    if not isinstance(ticker, str) or not ticker.strip():
        raise InvalidSignal("'ticker' is required: a symbol such as AAPL, BTCUSDT or BINANCE:BTCUSDT.",
                            field="ticker")
    instrument = normalize_ticker(ticker)
    if instrument is None:
        raise InvalidSignal(f"'ticker' {ticker!r} is not a supported stock or crypto symbol "
                            "(forex, metals and futures are not supported).", field="ticker")
    symbol, asset_class = instrument
    action, side = _ACTIONS[_choice(data, "action", tuple(_ACTIONS))]
    order_type = _choice(data, "order_type", ("market", "limit"), default="market")
    price = _optional_number(data, "price")
    if order_type == "limit" and price is None:
        raise InvalidSignal("'order_type' is limit but no 'price' was given.", field="price")
    quantity = _optional_number(data, "quantity")
    unit = None
    if quantity is not None:
        unit = _choice(data, "size_mode", QUANTITY_UNITS, default="units")
        if unit.startswith("percent") and quantity > 100:
            raise InvalidSignal(f"'quantity' is a percentage ({unit}) and must be at most 100.", field="quantity")
    elif data.get("size_mode") is not None:
        raise InvalidSignal("'size_mode' was given without a 'quantity'.", field="quantity")
    stop = _optional_number(data, "stop_loss")
    targets = data.get("take_profits")
    if targets is None:
        targets = []
    elif not isinstance(targets, list):
        targets = [targets]
    take_profits = [_number(t, "take_profits") for t in targets]
    leverage = _optional_number(data, "leverage")
    if leverage is not None and not Decimal(1) <= leverage <= Decimal(200):
        raise InvalidSignal(f"'leverage' must be between 1 and 200, got {leverage}.", field="leverage")
    if action == "modify" and stop is None and not take_profits:
        raise InvalidSignal("A 'modify' alert needs a new 'stop_loss' or 'take_profits'.", field="stop_loss")
    return Signal(action=action, side=side, symbol=symbol, asset_class=asset_class, order_type=order_type,
                  entry_prices=[price] if order_type == "limit" and price is not None else [],
                  stop_loss=stop, take_profits=take_profits, quantity=quantity, quantity_unit=unit,
                  leverage=leverage)
