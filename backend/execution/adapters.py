"""Which adapter talks to which broker account, and the market data sizing needs.

``Adapters`` is the seam between the engine and the brokers: it builds one
adapter per broker account (cached for the life of a worker) through a
*provider*.  The default provider builds in-process venues (the paper
broker, ``capabilities.in_process``) from the registry;
real brokers need decrypted credentials, so the process that owns the
credential vault installs its own provider with ``set_default_provider``
(tests install a fake adapter the same way).

``MarketData`` fetches instrument rules and a reference price once per
(broker, exchange, symbol) during a fan-out, however many followers trade
through that venue: a thousand followers on the paper broker cost one
``instrument`` and one ``quote`` call, not a thousand.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

import sqlalchemy as sa

from backend.brokers import registry
from backend.brokers.base import BrokerAdapter
from backend.db.models import BrokerAccount
from backend.errors import ConfigurationError, TradeExecutorError
from backend.execution.intents import contract_multiplier
from backend.risk import InstrumentRules

Provider = Callable[[BrokerAccount, sa.Engine], BrokerAdapter]


def paper_provider(account: BrokerAccount, engine: sa.Engine) -> BrokerAdapter:
    """Builds the venues that need no credentials: those that run in-process (``capabilities.in_process``)."""
    if not registry.capabilities_of(account.broker).in_process:
        raise ConfigurationError(
            f"No credentials provider is configured for {account.broker} accounts in this process; "
            "only the paper broker can trade here.")
    return registry.build(account.broker, engine=engine, broker_account_id=account.id)


_default_provider: Provider = paper_provider


def set_default_provider(provider: Provider | None) -> None:
    """Install the provider that builds real adapters (credential vault + registry); None resets."""
    global _default_provider
    _default_provider = provider or paper_provider


class Adapters:
    """One adapter per broker account, built on first use and reused."""

    def __init__(self, engine: sa.Engine, provider: Provider | None = None) -> None:
        self.engine = engine
        self._provider = provider
        self._cache: dict[int, BrokerAdapter] = {}

    def get(self, account: BrokerAccount) -> BrokerAdapter:
        adapter = self._cache.get(account.id)
        if adapter is None:
            adapter = (self._provider or _default_provider)(account, self.engine)
            self._cache[account.id] = adapter
        return adapter

    def cached(self) -> list[tuple[int, BrokerAdapter]]:
        """The adapters built so far, by account id (the worker watches their sessions)."""
        return list(self._cache.items())

    def forget(self, account_id: int) -> None:
        """Drop a cached adapter (the account was reconnected with new credentials, or removed)."""
        self._cache.pop(account_id, None)

    async def aclose(self) -> None:
        adapters, self._cache = list(self._cache.values()), {}
        for adapter in adapters:
            try:
                await adapter.close()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass


def accounts_where(adapters: Adapters, accounts, test) -> set[int]:
    """Ids of the accounts whose venue's capabilities pass ``test``; an account without an adapter does not."""
    found = set()
    for account in accounts:
        try:
            if test(adapters.get(account).capabilities):
                found.add(account.id)
        except TradeExecutorError:
            pass  # no adapter here: the default (cancel + replace, an unsplit ladder) is the safe one
    return found


def accounts_that_replace(adapters: Adapters, accounts) -> set[int]:
    """Ids of the accounts whose venue amends orders in place (``capabilities.replace_order``)."""
    return accounts_where(adapters, accounts, lambda caps: caps.replace_order)


def venue_key(account: BrokerAccount) -> tuple[str, str | None, bool]:
    """Accounts sharing a venue share its instrument rules and prices."""
    return account.broker, account.exchange_id, account.live


@dataclass(frozen=True)
class Market:
    rules: InstrumentRules | None
    price: Decimal | None
    error: TradeExecutorError | None = None


class MarketData:
    """``paper_quotes``: the paper venue's last prices by symbol, read by the caller from ``engine``'s
    database; a paper adapter of that database is then not asked (its ``quote`` reads the same row)."""

    def __init__(self, adapters: Adapters, *, paper_quotes: dict[str, Decimal | None] | None = None,
                 engine: sa.Engine | None = None) -> None:
        self.adapters = adapters
        self._cache: dict[tuple, Market] = {}
        self._paper_quotes = paper_quotes or {}
        self._engine = engine

    async def get(self, account: BrokerAccount, symbol: str, asset_class: str) -> Market:
        key = (venue_key(account), symbol, asset_class)
        market = self._cache.get(key)
        if market is None:
            market = await self._fetch(account, symbol, asset_class)
            self._cache[key] = market
        return market

    async def _fetch(self, account: BrokerAccount, symbol: str, asset_class: str) -> Market:
        try:
            adapter = self.adapters.get(account)
            info = await adapter.instrument(symbol, asset_class)
            reads_here = getattr(adapter, "reads_quotes_from", None)
            if symbol.upper() in self._paper_quotes and reads_here is not None and reads_here(self._engine):
                price = self._paper_quotes[symbol.upper()]
            else:
                price = await adapter.quote(symbol)
        except TradeExecutorError as exc:
            return Market(None, None, exc)
        rules = InstrumentRules(min_quantity=info.min_quantity, quantity_step=info.quantity_step,
                                price_tick=info.price_tick, min_notional=info.min_notional,
                                fractional=info.fractional, contract_multiplier=contract_multiplier(asset_class))
        return Market(rules, price)


_shared: dict[int, tuple[sa.Engine, Adapters]] = {}


def shared_adapters(engine: sa.Engine) -> Adapters:
    """The process-wide ``Adapters`` for ``engine``, so adapters (and their sessions) are reused
    between calls of the services; the engine is kept referenced so its id is never reused."""
    entry = _shared.get(id(engine))
    if entry is None:
        entry = _shared[id(engine)] = (engine, Adapters(engine))
    return entry[1]
