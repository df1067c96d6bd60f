"""Vendor errors -> the product's error tree, in one place per vendor.

Each ``translate_*`` returns (never raises) a ``backend.errors`` instance so
the adapter can ``raise translate_x(e) from e`` and keep the vendor error as
the cause for logs.  Messages are written for a member reading the
dashboard: what happened, what to do.  They quote the venue's own reason
(trimmed) because that is often the most useful part, but first scrub it:
URLs lose their query strings (signatures, timestamps) and any configured
secret is blanked, so a credential can never reach a message.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

import ccxt
import requests
from alpaca.common.exceptions import APIError

from backend.errors import (
    AuthenticationFailed,
    BrokerError,
    InsufficientFunds,
    InvalidSymbol,
    MarketClosed,
    OrderNotFound,
    OrderRejected,
    OrderTooSmall,
    RateLimited,
    TemporaryBrokerError,
)


class DuplicateClientOrderId(OrderRejected):
    """The venue already holds an order with this client order id (adapters then fetch it)."""

    code = "duplicate_client_order_id"


_URL_QUERY = re.compile(r"(https?://[^\s?'\"]+)\?[^\s'\"]*")


def scrub(text: str, secrets: Iterable[str | None] = (), limit: int = 300) -> str:
    text = _URL_QUERY.sub(r"\1", str(text))
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- Alpaca (alpaca-py over requests) ---------------------------------------------
_SIZE_WORDS = ("must be >=", "must be greater", "minimum", "at least", "too small", "min notional")
_CLOSED_WORDS = ("market hours", "market is closed", "market closed", "outside of trading hours")


def alpaca_error_body(exc: APIError) -> tuple[int | None, int | None, str]:
    """(http status, alpaca code, message) from an APIError whose body may not be JSON."""
    try:
        body = json.loads(str(exc))
    except (TypeError, ValueError):
        body = {"message": str(exc)}
    if not isinstance(body, dict):
        body = {"message": str(body)}
    return exc.status_code, body.get("code"), str(body.get("message") or "")


def translate_alpaca(exc: BaseException, secrets: Iterable[str | None] = ()) -> BrokerError:
    if isinstance(exc, BrokerError):
        return exc
    if isinstance(exc, requests.Timeout):
        return TemporaryBrokerError("Alpaca did not answer in time. The order will be retried with the same id.")
    if isinstance(exc, requests.ConnectionError):
        return TemporaryBrokerError("Could not reach Alpaca (network error). It will be retried.")
    if not isinstance(exc, APIError):
        return BrokerError(f"Unexpected error talking to Alpaca: {scrub(repr(exc), secrets)}")
    status, _code, message = alpaca_error_body(exc)
    reason = scrub(message, secrets)
    low = reason.lower()
    if status == 429:
        return RateLimited("Alpaca is rate limiting this account; requests will resume shortly.")
    if status is not None and status >= 500:
        return TemporaryBrokerError(f"Alpaca had a server error ({status}); it will be retried.")
    if "client_order_id must be unique" in low:
        return DuplicateClientOrderId("Alpaca already has an order with this client order id.")
    if "insufficient qty" in low:  # shares held by open orders (a stop, a target) are not free to sell
        return OrderRejected(f"Alpaca refused the order: {reason}. The shares are held by other open orders "
                             "of this position (its stop or targets); cancel or resize them first.")
    if "insufficient" in low:
        return InsufficientFunds(f"Alpaca refused the order: {reason}. Add funds or reduce the size.")
    if any(w in low for w in _CLOSED_WORDS):
        return MarketClosed(f"Alpaca refused the order because the market is closed: {reason}.")
    if status == 401 or (status == 403 and low.startswith("forbidden")):
        return AuthenticationFailed(
            "Alpaca rejected the API key (not authorized). Check the key and secret, and that "
            "paper keys are used with a paper account and live keys with a live one."
        )
    if ("asset" in low and "not found" in low) or "invalid symbol" in low:  # trading API / data API wording
        return InvalidSymbol(f"Alpaca does not know this symbol: {reason}.")
    if status == 404:
        return OrderNotFound(f"Alpaca has no such order: {reason}.")
    if any(w in low for w in _SIZE_WORDS):
        return OrderTooSmall(f"Alpaca refused the order size: {reason}.")
    return OrderRejected(f"Alpaca refused the request: {reason}.")


# --- ccxt ----------------------------------------------------------------------------
_CCXT_SIZE_WORDS = ("minimum", "min notional", "notional", "lot_size", "too small", "too_small", "min_qty",
                    "amount must be greater", "cost must be greater")


_CCXT_TEMPORARY_WORDS = ("overloaded", "try again", "temporarily unavailable", "service unavailable",
                         "internal error", "server busy")


def translate_ccxt(exc: BaseException, venue: str, secrets: Iterable[str | None] = ()) -> BrokerError:
    """ccxt's exception classes are already unified across exchanges; map class by class.

    Order matters: ccxt's tree nests (``RateLimitExceeded`` < ``DDoSProtection`` <
    ``NetworkError``; ``InsufficientFunds``/``InvalidOrder``/``OrderNotFound`` <
    ``ExchangeError``), so specific classes are tested before their parents.
    """
    if isinstance(exc, BrokerError):
        return exc
    reason = scrub(str(exc), secrets)
    low = reason.lower()
    if isinstance(exc, (ccxt.DDoSProtection, ccxt.RateLimitExceeded)):
        return RateLimited(f"{venue} is rate limiting this account; requests will resume shortly.")
    if isinstance(exc, ccxt.RequestTimeout):
        return TemporaryBrokerError(f"{venue} did not answer in time. It will be retried with the same order id.")
    if isinstance(exc, (ccxt.ExchangeNotAvailable, ccxt.OnMaintenance)):
        return TemporaryBrokerError(f"{venue} is unavailable right now ({reason}). It will be retried.")
    if isinstance(exc, ccxt.OperationFailed) or any(w in low for w in _CCXT_TEMPORARY_WORDS):
        # ccxt.NetworkError and friends; also venue codes ccxt leaves generic (Binance -1001/-1008 "try again")
        return TemporaryBrokerError(f"{venue} could not process the request right now ({reason}). It will be retried.")
    if isinstance(exc, (ccxt.AuthenticationError, ccxt.PermissionDenied, ccxt.AccountSuspended)):
        return AuthenticationFailed(
            f"{venue} rejected the API key ({type(exc).__name__}). Check the key, the secret, "
            "the trading permission and any IP allow-list on the key."
        )
    if isinstance(exc, ccxt.InsufficientFunds):
        return InsufficientFunds(f"{venue} refused the order for insufficient funds. Add funds or reduce the size.")
    if isinstance(exc, ccxt.BadSymbol):
        return InvalidSymbol(f"{venue} does not list this market: {reason}.")
    if isinstance(exc, ccxt.OrderNotFound):
        return OrderNotFound(f"{venue} has no such order.")
    if isinstance(exc, ccxt.DuplicateOrderId) or "duplicate" in low:
        return DuplicateClientOrderId(f"{venue} already has an order with this client order id.")
    if isinstance(exc, ccxt.InvalidOrder) and any(w in low for w in _CCXT_SIZE_WORDS):
        return OrderTooSmall(f"{venue} refused the order size: {reason}.")
    if isinstance(exc, (ccxt.InvalidOrder, ccxt.BadRequest, ccxt.OperationRejected)):
        if any(w in low for w in _CCXT_SIZE_WORDS):
            return OrderTooSmall(f"{venue} refused the order size: {reason}.")
        return OrderRejected(f"{venue} refused the order: {reason}.")
    if isinstance(exc, ccxt.ExchangeError):
        if any(w in low for w in _CCXT_SIZE_WORDS):
            return OrderTooSmall(f"{venue} refused the order size: {reason}.")
        return OrderRejected(f"{venue} refused the request: {reason}.")
    return BrokerError(f"Unexpected error talking to {venue}: {reason}")


# --- Interactive Brokers (ib_async) -------------------------------------------------------
# https://www.interactivebrokers.com/campus/ibkr-api-page/tws-api-error-codes/
IB_USER_CANCELLED = 202
IB_PACING_CODES = frozenset({100, 101, 102})  # max messages per second / max tickers / duplicate ticker id
# 160/434 size cannot be zero, 355 size does not conform to the market rule, 388 smaller than the minimum
_IB_SIZE_CODES = frozenset({160, 355, 388, 434})
# 203 security not available or allowed for this account, 10015 trading not allowed in the API,
# 10248 no fractional-share permission
_IB_PERMISSION_CODES = frozenset({203, 10015, 10248})
_IB_FUNDS_WORDS = ("insufficient", "equity with loan", "initial margin", "buying power", "margin requirement")
_IB_CLOSED_WORDS = ("market is closed", "outside of regular trading hours", "trading hours", "not open")
_IB_SIZE_WORDS = ("smaller than the minimum", "below the minimum", "minimum size", "size cannot be zero",
                  "size value cannot be zero", "does not conform to market rule", "minimum order size")
_IB_PERMISSION_WORDS = ("trading permission", "no permission", "not allowed for this account",
                        "not available or allowed", "not allowed in the api", "not authorized", "not permitted")


def translate_ib_rejection(code: int | None, text: str) -> BrokerError:
    """An order the gateway refused (ib_async marks it Cancelled with the error in its log)."""
    reason = scrub(text)
    low = reason.lower()
    if code == 200:
        return InvalidSymbol(f"Interactive Brokers does not know this contract: {reason}.")
    if code == 321 and "read-only" in low:
        return OrderRejected("The IB Gateway only allows read-only API access: untick 'Read-Only API' in the "
                             "gateway's API settings so that orders can be placed.")
    if code in IB_PACING_CODES:
        return RateLimited(f"Interactive Brokers is pacing this connection ({code}); requests will resume shortly.")
    if code in _IB_PERMISSION_CODES or any(w in low for w in _IB_PERMISSION_WORDS):
        return AuthenticationFailed(
            f"Interactive Brokers does not let this account place that order ({code}: {reason}). Check the "
            "account's trading permissions in Client Portal and that API trading is enabled.")
    if code in _IB_SIZE_CODES or any(w in low for w in _IB_SIZE_WORDS):
        return OrderTooSmall(f"Interactive Brokers refused the order size ({code}): {reason}.")
    if any(w in low for w in _IB_FUNDS_WORDS):
        return InsufficientFunds(f"Interactive Brokers refused the order for lack of funds or margin: {reason}.")
    if any(w in low for w in _IB_CLOSED_WORDS):
        return MarketClosed(f"Interactive Brokers refused the order because the market is closed: {reason}.")
    return OrderRejected(f"Interactive Brokers refused the order ({code}): {reason}.")
