"""Build the risk engine's ``AccountSnapshot`` for many followers in a few queries.

Where the numbers come from, cheapest first:

* positions, unrealised P&L: our own ``positions`` table (kept from fills);
* realised P&L today: the ``realized_pnl`` ledger since the start of the
  follower's trading day (midnight in the profile's market time zone);
* equity and buying power: for an in-process venue (the paper broker,
  ``capabilities.in_process``) its cash plus our positions at their last
  price; the latest ``equity_snapshots`` row (the reconciliation job
  writes one) for real brokers; and, only when a
  real account has never been snapshotted, one ``account()`` call to the
  broker (``fetch_missing_equity``).

Reading the database rather than asking every broker keeps a fan-out to a
thousand followers within a second; the broker still has the last word on
buying power and refuses an order it cannot fund.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, time, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Session, select

from backend.brokers import registry
from backend.config import get_settings
from backend.db.models import BrokerAccount, EquitySnapshot, PaperAccount, Position, RealizedPnl
from backend.errors import TradeExecutorError, ValidationError
from backend.execution.adapters import Adapters
from backend.execution.intents import contract_multiplier
from backend.execution.positions import unrealized_pnl
from backend.risk import AccountSnapshot, PositionSnapshot, TradingState, trading_day

ZERO = Decimal(0)


@dataclass
class AccountBook:
    account: BrokerAccount
    positions: list[Position] = field(default_factory=list)
    equity: Decimal | None = None
    buying_power: Decimal | None = None


_HELD = select(Position).where(Position.broker_account_id.in_(sa.bindparam("accounts", expanding=True)),
                               Position.quantity != 0)


def load_books(session: Session, accounts: Iterable[BrokerAccount], *,
               paper_cash: dict[int, Decimal] | None = None, positions: Iterable[Any] | None = None
               ) -> dict[int, AccountBook]:
    """``paper_cash``/``positions``: the paper venue's cash by account and the open positions, when the
    caller read them already (``loading``); an account missing from ``paper_cash`` has not opened its
    paper books yet."""
    books = {a.id: AccountBook(a) for a in accounts}
    if not books:
        return books
    ids = list(books)
    held = positions if positions is not None else session.exec(_HELD, params={"accounts": ids})
    for pos in held:
        if pos.broker_account_id in books and pos.quantity != 0:
            books[pos.broker_account_id].positions.append(pos)
    here = {kind for kind in {b.account.broker for b in books.values()} if _books_here(kind)}
    paper_ids = [i for i, b in books.items() if b.account.broker in here]
    if paper_ids:
        cash = paper_cash if paper_cash is not None else dict(session.execute(
            select(PaperAccount.broker_account_id, PaperAccount.cash)
            .where(PaperAccount.broker_account_id.in_(paper_ids))).all())
        start = Decimal(get_settings().paper_starting_cash)
        for i in paper_ids:
            _paper_equity(books[i], cash.get(i, start))
    other = [i for i in ids if i not in set(paper_ids)]
    if other:
        latest = (select(sa.func.max(EquitySnapshot.id)).where(EquitySnapshot.broker_account_id.in_(other))
                  .group_by(EquitySnapshot.broker_account_id))
        for snap in session.exec(select(EquitySnapshot).where(EquitySnapshot.id.in_(latest))):
            books[snap.broker_account_id].equity = snap.equity
            books[snap.broker_account_id].buying_power = snap.cash
    return books


def _books_here(kind: str) -> bool:
    """An in-process venue (the paper broker) keeps its cash in our database: no snapshot needed."""
    try:
        return registry.capabilities_of(kind).in_process
    except ValidationError:  # a kind no adapter registers (a removed venue): treated as remote
        return False


def _paper_equity(book: AccountBook, cash: Decimal) -> None:
    """Cash plus the signed market value of the positions (a short's proceeds sit in cash)."""
    value = sum((p.quantity * (p.last_price or p.avg_price) * contract_multiplier(p.asset_class)
                 for p in book.positions), ZERO)
    book.equity = cash + value
    book.buying_power = max(cash, ZERO)


async def fetch_missing_equity(books: Iterable[AccountBook], adapters: Adapters) -> None:
    """Ask the broker for accounts we have no equity figure for (rare: a just-connected account)."""
    for book in books:
        if book.equity is not None:
            continue
        try:
            info = await adapters.get(book.account).account()
        except TradeExecutorError:
            continue  # left unknown: the risk engine then refuses equity-based sizing with a reason
        book.equity, book.buying_power = info.equity, info.buying_power


def realized_today(session: Session, users_by_tz: dict[str, set[int]], now: datetime) -> dict[int, Decimal]:
    """Realised P&L since the start of each user's trading day, per user."""
    out: dict[int, Decimal] = defaultdict(lambda: ZERO)
    for tz, users in users_by_tz.items():
        if not users:
            continue
        day = trading_day(now, tz)
        start = datetime.combine(day, time(0), tzinfo=ZoneInfo(tz)).astimezone(timezone.utc)
        # Summed in Python: SQLite keeps decimals as text and its SUM would go through float.
        rows = session.execute(select(RealizedPnl.user_id, RealizedPnl.amount)
                               .where(RealizedPnl.user_id.in_(list(users)), RealizedPnl.realized_at >= start)).all()
        for user_id, amount in rows:
            out[user_id] += amount
    return out


def snapshot(book: AccountBook, *, realized: Decimal, state: str,
             contract: tuple[str, str] | None = None) -> AccountSnapshot:
    """The risk engine's view of an account.

    ``contract=(occ_symbol, underlying)``: for an option signal the engine
    looks the position up by the signal's symbol (the underlying), so the
    contract's position is shown under it, and a stock position in the
    underlying is renamed out of the way (it must not be closed instead).
    """
    positions = {}
    for p in book.positions:
        if p.quantity == 0:
            continue
        key = p.symbol
        if contract is not None:
            key = contract[1] if p.symbol == contract[0] else (f"{p.symbol} (stock)" if p.symbol == contract[1]
                                                                else p.symbol)
        positions[key] = PositionSnapshot(p.quantity, p.avg_price, p.last_price or p.avg_price,
                                          contract_multiplier(p.asset_class))
    return AccountSnapshot(
        equity=book.equity if book.equity is not None else ZERO,
        buying_power=book.buying_power if book.buying_power is not None else ZERO,
        open_positions=positions,
        realized_pnl_today=realized,
        unrealized_pnl=sum((unrealized_pnl(p) for p in book.positions), ZERO),
        trading_state=TradingState(state) if state in TradingState.__members__ else TradingState.ACTIVE,
    )
