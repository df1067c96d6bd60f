"""The paper broker: a simulated venue whose books live in the database.

It is the embedded default and the fake every test of the money path uses,
so it behaves like a real venue rather than a stub: durable state shared by
every process (paper_accounts, paper_orders, paper_fills, paper_positions, paper_quotes),
idempotent placement, resting orders matched on each quote, OCO groups,
bracket ladders, partial fills, fees, slippage and buying-power checks.  The
matching rules are in ``paper_book``, the SQL in ``paper_store``.

Choices worth knowing:
* Idempotency: paper_orders is unique on (paper account, client order id);
  placement inserts with ``ON CONFLICT DO NOTHING`` and, if a row already
  existed, rolls back and returns the stored order.  A rejected order is
  stored as ``rejected`` *and* its error is raised; a retry with the same
  client order id returns that rejected snapshot without raising again.
* Prices: ``set_quote``/``on_quote`` (or the demo's random walk) write the
  last price and match resting orders on that symbol for every account of
  the venue.  A market order with no quote uses the request's
  ``reference_price`` (the signal's price) and records it as the quote.
* Positions are the fills folded by average cost, kept per (account,
  symbol) in paper_positions as the fills are written; equity is cash plus
  the market value of positions at the last quotes; buying power is cash.
  Shorts are allowed: their proceeds are credited to cash and opening one
  needs its notional in buying power (a lenient margin model: no maintenance
  margin, no borrow fees).  ``time_in_force`` is not modelled: orders rest until
  filled or cancelled.
* ``place_orders`` is a paper-only extension (check with ``hasattr``): many
  orders in one transaction with batched statements, with exactly the
  results of placing them one by one in the same order.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa

from backend.brokers import paper_store as store
from backend.brokers import paper_venue as venue
from backend.brokers.base import (
    AccountInfo, BrokerAdapter, BrokerPosition, Capabilities, InstrumentInfo, OrderRequest, OrderSnapshot, VenueFill,
)
from backend.brokers.paper_book import WORKING, Book, BookOrder, FillTerms
from backend.brokers.paper_rules import (
    ASSET_CLASSES, ORDER_TYPES, ZERO, contract_multiplier, instrument_info, q10, random_walk,
)
from backend.brokers.registry import register
from backend.config import get_settings
from backend.db.types import utcnow
from backend.errors import NotFound, OrderRejected, ValidationError


def fill_terms_from_settings() -> FillTerms:
    """Slippage and fees of the paper venue, from ``PAPER_SLIPPAGE_BPS`` / ``PAPER_FEE_*``."""
    settings = get_settings()
    return FillTerms(slippage_bps=Decimal(settings.paper_slippage_bps),
                     fee_per_order=Decimal(settings.paper_fee_per_order), fee_bps=Decimal(settings.paper_fee_bps))


class PaperBroker(BrokerAdapter):
    name = "paper"
    capabilities = Capabilities(
        asset_classes=frozenset(ASSET_CLASSES), order_types=frozenset(ORDER_TYPES), native_brackets=True,
        native_oco=True, fractional=True, short_selling=True, replace_order=True, in_process=True,
    )

    def __init__(
        self, engine: sa.Engine, broker_account_id: int, *, starting_cash: Decimal | None = None,
        slippage_bps: Decimal | None = None, fee_per_order: Decimal | None = None, fee_bps: Decimal | None = None,
        partial_fill_max: Decimal | None = None, rng_seed: int | None = None,
    ) -> None:
        settings = get_settings()
        self._engine = engine
        self._broker_account_id = broker_account_id
        self._starting_cash = Decimal(settings.paper_starting_cash) if starting_cash is None else starting_cash
        defaults = fill_terms_from_settings()
        self._terms = FillTerms(
            slippage_bps=defaults.slippage_bps if slippage_bps is None else slippage_bps,
            fee_per_order=defaults.fee_per_order if fee_per_order is None else fee_per_order,
            fee_bps=defaults.fee_bps if fee_bps is None else fee_bps,
            partial_fill_max=partial_fill_max,
        )
        if partial_fill_max is not None and not ZERO < partial_fill_max <= 1:
            raise ValidationError("partial_fill_max must be a fraction in (0, 1].", field="partial_fill_max")
        self._rng = random.Random(rng_seed)
        self._paper_account_id: int | None = None

    # ------------------------------------------------------------------ account
    def _account_id(self) -> int:
        """The venue's account row, opened with the starting cash on first use."""
        if self._paper_account_id is None:
            try:
                with store.write_transaction(self._engine) as conn:
                    self._paper_account_id = store.ensure_account(
                        conn, self._broker_account_id, self._starting_cash, utcnow()
                    )
            except sa.exc.IntegrityError as exc:
                raise NotFound(
                    f"Broker account {self._broker_account_id} does not exist, "
                    "so the paper venue cannot open its books."
                ) from exc
        return self._paper_account_id

    async def validate(self) -> AccountInfo:
        return await self.account()

    async def account(self) -> AccountInfo:
        account_id = self._account_id()
        with store.read_transaction(self._engine) as conn:
            cash = store.read_cash(conn, account_id)
            held = store.account_positions(conn, account_id)
            quotes = store.read_quotes(conn, held)
        equity = cash + sum(
            (qty * quotes.get(symbol, avg) * contract_multiplier(symbol) for symbol, (qty, avg) in held.items()), ZERO
        )
        return AccountInfo(
            account_id=f"paper-{self._broker_account_id}", currency="USD", cash=cash, equity=q10(equity),
            buying_power=max(cash, ZERO),
        )

    async def positions(self) -> list[BrokerPosition]:
        account_id = self._account_id()
        with store.read_transaction(self._engine) as conn:
            held = store.account_positions(conn, account_id)
            quotes = store.read_quotes(conn, held)
        return [
            BrokerPosition(symbol=symbol, quantity=qty, avg_price=avg, market_price=quotes.get(symbol))
            for symbol, (qty, avg) in sorted(held.items())
        ]

    async def instrument(self, symbol: str, asset_class: str = "stock") -> InstrumentInfo:
        return instrument_info(symbol.upper(), asset_class)

    # ------------------------------------------------------------------ prices
    def reads_quotes_from(self, engine: sa.Engine | None) -> bool:
        """Whether ``quote`` reads ``engine``'s ``paper_quotes`` (the engine may then read them itself)."""
        return engine is not None and engine is self._engine

    async def quote(self, symbol: str) -> Decimal | None:
        # Autocommit: one statement, no transaction to end when the connection goes back to the pool.
        with self._engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            return store.read_quotes(conn, [symbol.upper()]).get(symbol.upper())

    async def set_quote(self, symbol: str, price: Decimal) -> None:
        """Record the last price and match the resting orders on that symbol."""
        if price is None or price <= 0:
            raise ValidationError(f"A quote must be a positive price (got {price}).", field="price")
        venue.match(self._engine, self._terms, [symbol.upper()], {symbol.upper(): q10(Decimal(price))})

    on_quote = set_quote

    async def match(self, symbol: str | None = None) -> None:
        """Re-run matching at the current quotes (the next pass of partial fills)."""
        venue.match(self._engine, self._terms, None if symbol is None else [symbol.upper()], None)

    async def apply_random_walk(
        self, symbols: Iterable[str] | None = None, *, steps: int = 1, sigma_bps: Decimal = Decimal("25"),
        rng: random.Random | None = None,
    ) -> dict[str, Decimal]:
        """Move the quotes of ``symbols`` (default: all) by ``random_walk`` and match on the new prices."""
        with self._engine.connect() as conn:
            current = store.read_quotes(conn, None if symbols is None else [s.upper() for s in symbols])
        moved = random_walk(current, steps, sigma_bps, rng or self._rng)
        if moved:
            venue.match(self._engine, self._terms, sorted(moved), moved)
        return moved

    # ------------------------------------------------------------------ placing
    def _place(self, requests: list[OrderRequest]) -> list[OrderSnapshot | Exception]:
        return venue.place_many(self._engine, self._account_id(), self._terms, requests)

    def _with_order(self, client_order_id: str, action) -> OrderSnapshot:
        return venue.with_order(self._engine, self._account_id(), self._terms, client_order_id, action)

    async def place_order(self, request: OrderRequest) -> OrderSnapshot:
        result = self._place([request])[0]
        if isinstance(result, Exception):
            raise result
        return result

    async def place_orders(self, requests: Sequence[OrderRequest]) -> list[OrderSnapshot | Exception]:
        """Paper-only: place many orders in one transaction; errors are returned in place, not raised."""
        return self._place(list(requests))

    @property
    def batch_key(self) -> tuple:
        """Adapters with equal keys share a venue and its terms: ``place_batches`` may serve them together."""
        return ("paper", id(self._engine), self._terms)

    @staticmethod
    async def place_batches(
        work: Sequence[tuple[PaperBroker, Sequence[OrderRequest]]],
    ) -> list[list[OrderSnapshot | Exception]]:
        """Paper-only: the orders of many accounts (adapters with one ``batch_key``) in ONE transaction.

        Each account gets exactly what its own ``place_orders`` would have
        returned; a fan-out to a thousand followers is a handful of statements
        instead of a thousand transactions.  An account the venue cannot open
        gets its error for each of its requests.
        """
        if not work:
            return []
        engine, terms = work[0][0]._engine, work[0][0]._terms
        errors = PaperBroker._open_accounts([adapter for adapter, _ in work])
        results: list[list[OrderSnapshot | Exception] | None] = [
            [errors[id(adapter)]] * len(requests) if id(adapter) in errors else None for adapter, requests in work
        ]
        todo = [(i, adapter._paper_account_id, list(requests))
                for i, (adapter, requests) in enumerate(work) if results[i] is None]
        placed = venue.place_for_accounts(engine, terms, [(account_id, requests) for _, account_id, requests in todo])
        for (i, _, _), answers in zip(todo, placed):
            results[i] = answers
        return results  # type: ignore[return-value]

    @staticmethod
    def _open_accounts(adapters: Sequence[PaperBroker]) -> dict[int, Exception]:
        """Open the venue's books of the adapters not yet opened, in one transaction; errors by adapter."""
        pending = [a for a in adapters if a._paper_account_id is None]
        if not pending:
            return {}
        with store.write_transaction(pending[0]._engine) as conn:
            found = store.ensure_accounts(conn, {a._broker_account_id: a._starting_cash for a in pending}, utcnow())
        errors: dict[int, Exception] = {}
        for adapter in pending:
            if adapter._broker_account_id in found:
                adapter._paper_account_id = found[adapter._broker_account_id]
            else:
                errors[id(adapter)] = NotFound(
                    f"Broker account {adapter._broker_account_id} does not exist, "
                    "so the paper venue cannot open its books.")
        return errors

    # ------------------------------------------------------------------ managing orders
    async def cancel_order(self, client_order_id: str) -> OrderSnapshot:
        """Cancel an open order; a finished order is returned unchanged (cancelling twice is harmless)."""
        return self._with_order(client_order_id, lambda book, order: book.cancel(order))

    async def replace_order(
        self, client_order_id: str, *, quantity: Decimal | None = None,
        limit_price: Decimal | None = None, stop_price: Decimal | None = None,
    ) -> OrderSnapshot:
        """Amend an open order in place (e.g. move a bracket's stop to break-even), then match it."""

        def amend(book: Book, order: BookOrder) -> list[int]:
            if order.status not in ("held", *WORKING):
                raise OrderRejected(f"Order {client_order_id} is {order.status} and can no longer be replaced.")
            if quantity is not None:
                if quantity <= order.filled_quantity or quantity <= 0:
                    raise OrderRejected(
                        f"The new quantity {quantity} must exceed the {order.filled_quantity} already filled.",
                        field="quantity",
                    )
                order.quantity = q10(quantity)
                for leg in book.legs_of(order):
                    if leg.leg == "sl":
                        leg.quantity = order.quantity
            for value, name, types in ((limit_price, "limit_price", ("limit", "stop_limit")),
                                       (stop_price, "stop_price", ("stop", "stop_limit"))):
                if value is None:
                    continue
                if order.order_type not in types or value <= 0:
                    raise OrderRejected(
                        f"A {order.order_type} order has no {name.replace('_', ' ')} to set to {value}.", field=name
                    )
                setattr(order, name, q10(value))
            return [order.id]

        return self._with_order(client_order_id, amend)

    # ------------------------------------------------------------------ reading orders
    async def order_status(self, client_order_id: str) -> OrderSnapshot:
        found = venue.snapshots_by_client_id(self._engine, self._account_id(), {client_order_id})
        if client_order_id not in found:
            raise venue.not_found(client_order_id)
        return found[client_order_id]

    async def open_orders(self) -> list[OrderSnapshot]:
        account_id = self._account_id()
        with store.read_transaction(self._engine) as conn:
            orders = store.load_orders(conn, *store.open_for_account(account_id))
            fills = store.fills_of_orders(conn, [o.id for o in orders])
        return [venue.snapshot(o, fills[o.id]) for o in orders]

    async def fills_since(self, since: datetime) -> list[tuple[str, VenueFill]]:
        account_id = self._account_id()
        with store.read_transaction(self._engine) as conn:
            return store.fills_since(conn, account_id, since)


def create_paper_broker(
    *, broker_account_id: int, engine: sa.Engine | None = None, **options,
) -> PaperBroker:
    """Registry factory: settings supply the venue's terms; ``options`` override them.

    Options other adapters take (credentials, live, exchange_id) mean nothing here and are ignored.
    """
    from backend.db.session import get_engine

    known = {"starting_cash", "slippage_bps", "fee_per_order", "fee_bps", "partial_fill_max", "rng_seed"}
    overrides = {k: v for k, v in options.items() if k in known}
    for key in ("starting_cash", "slippage_bps", "fee_per_order", "fee_bps", "partial_fill_max"):
        if overrides.get(key) is not None:
            overrides[key] = Decimal(str(overrides[key]))
    return PaperBroker(engine or get_engine(), broker_account_id, **overrides)


register("paper", create_paper_broker, PaperBroker.capabilities)

__all__ = ["PaperBroker", "create_paper_broker"]
