"""Explicit registry: broker kind -> factory building an adapter for one account.

Adapters register themselves here by kind; the engine asks the registry and
never imports a vendor module directly, so a missing optional vendor never
breaks the paper path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from backend.brokers.base import BrokerAdapter, Capabilities
from backend.errors import ValidationError

AdapterFactory = Callable[..., BrokerAdapter]
_FACTORIES: dict[str, AdapterFactory] = {}
_CAPABILITIES: dict[str, Capabilities] = {}


def register(kind: str, factory: AdapterFactory, capabilities: Capabilities | None = None) -> None:
    """``capabilities``: what every adapter of this kind can do, for decisions taken without building one
    (an adapter may know more, e.g. a ccxt exchange's own order types)."""
    _FACTORIES[kind] = factory
    if capabilities is not None:
        _CAPABILITIES[kind] = capabilities


def capabilities_of(kind: str) -> Capabilities:
    """The kind-level capabilities (default ``Capabilities()`` for a kind that registered none)."""
    factory_for(kind)
    return _CAPABILITIES.get(kind, Capabilities())


def factory_for(kind: str) -> AdapterFactory:
    _load_builtin()
    try:
        return _FACTORIES[kind]
    except KeyError:
        raise ValidationError(
            f"Unknown broker '{kind}'. Choose one of: {', '.join(sorted(_FACTORIES))}.", field="broker"
        ) from None


def known_kinds() -> list[str]:
    _load_builtin()
    return sorted(_FACTORIES)


def build(kind: str, **kwargs: Any) -> BrokerAdapter:
    return factory_for(kind)(**kwargs)


def _load_builtin() -> None:
    """Import the built-in adapters once; each module calls ``register`` on import."""
    import importlib

    for module in ("backend.brokers.paper", "backend.brokers.alpaca", "backend.brokers.ccxt_adapter", "backend.brokers.ibkr"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:  # an adapter not written yet, never a vendor SDK missing silently
            if exc.name != module:
                raise
