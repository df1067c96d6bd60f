"""One exception tree for the whole product.

Vendor errors (ccxt, alpaca-py, ib_async, stripe ...) are translated into
these classes only at the adapter boundary (``raise X(...) from e``), so the
engine, the services and the UI reason about one vocabulary.  Every message
is written for a person: it says what went wrong and what to do about it,
and never contains a credential.

``retryable`` marks the temporary failures (timeouts, 5xx, rate limits) that
the execution engine retries with exponential backoff; everything else is
permanent and is reported instead of retried.
"""

from __future__ import annotations


class TradeExecutorError(Exception):
    """Base of every error the product raises on purpose."""

    retryable: bool = False
    code: str = "error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def __str__(self) -> str:  # keeps the human message only
        return self.message


# --- configuration ---------------------------------------------------------
class ConfigurationError(TradeExecutorError):
    code = "configuration"


# --- input -----------------------------------------------------------------
class ValidationError(TradeExecutorError):
    """A form field, API body or CLI argument was refused; ``field`` names it."""

    code = "validation"


class InvalidSignal(ValidationError):
    code = "invalid_signal"


class StaleSignal(InvalidSignal):
    code = "stale_signal"


class WebhookAuthError(TradeExecutorError):
    code = "webhook_auth"


class NotFound(TradeExecutorError):
    code = "not_found"


class PermissionDenied(TradeExecutorError):
    code = "permission_denied"


# --- brokers -----------------------------------------------------------------
class BrokerError(TradeExecutorError):
    """Anything a broker or exchange refused or failed to do."""

    code = "broker"


class InsufficientFunds(BrokerError):
    code = "insufficient_funds"


class InvalidSymbol(BrokerError):
    code = "invalid_symbol"


class MarketClosed(BrokerError):
    code = "market_closed"


class OrderTooSmall(BrokerError):
    code = "order_too_small"


class OrderRejected(BrokerError):
    code = "order_rejected"


class OrderNotFound(BrokerError):
    code = "order_not_found"


class AuthenticationFailed(BrokerError):
    code = "authentication_failed"


class TemporaryBrokerError(BrokerError):
    """Timeouts, 5xx and outages: safe to retry with the same client order id."""

    retryable = True
    code = "temporary"


class RateLimited(TemporaryBrokerError):
    code = "rate_limited"


class BrokerDisconnected(TemporaryBrokerError):
    code = "disconnected"


# --- risk / execution ----------------------------------------------------------
class RiskDenied(TradeExecutorError):
    code = "risk_denied"


class DuplicateSignal(TradeExecutorError):
    code = "duplicate"


# --- audit -----------------------------------------------------------------------
class AuditChainBroken(TradeExecutorError):
    code = "audit_chain_broken"


# --- billing ---------------------------------------------------------------------
class BillingError(TradeExecutorError):
    code = "billing"
