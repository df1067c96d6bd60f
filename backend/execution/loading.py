"""What a fan-out reads, in one round trip where the database allows it.

A fan-out needs the signal's source, every auto-trading follow with its
follower's risk profile and tradable broker accounts (and, for paper
accounts, the venue's cash and its quote of the instrument), the open
positions of those accounts and, for closes, modifies and cancels, their
open orders.  Every one of these reads is keyed by the source alone, so on
Postgres they go together, with the transaction's ``BEGIN``, in one
``pipeline`` round trip; elsewhere they are the same statements run one
after the other.  The ingest path reads by Discord channel before the
signal row exists (the parser has already said the message is a signal).

Rows come back as plain ``rows`` objects with the attributes of their
models.  The fan-out only reads them, except risk profiles (trading state
changes) and open orders (local cancels and edits), which it writes back
with ``rows.queue_write_back`` into the journal.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from backend.db.models import (
    AccountStatus, BrokerAccount, Follow, PaperAccount, PaperQuote, Position, RiskDecisionRecord, RiskProfileRecord,
    Signal, SignalSource,
)
from backend.execution import pipeline
from backend.execution.ids import IdPool
from backend.execution.rows import ORDER_COLUMNS, ORDERS, OrderRow, PositionRow, Row
from backend.execution.state_machine import OPEN

SOURCES, FOLLOWS, PROFILES = SignalSource.__table__, Follow.__table__, RiskProfileRecord.__table__
ACCOUNTS, POSITIONS = BrokerAccount.__table__, Position.__table__
PAPER_CASH, PAPER_QUOTES = PaperAccount.__table__, PaperQuote.__table__
DECISIONS, SIGNALS = RiskDecisionRecord.__table__, Signal.__table__


def _row_class(name: str, table: sa.Table) -> type[Row]:
    columns = tuple(c.name for c in table.columns)
    return type(name, (Row,), {"__slots__": columns, "COLUMNS": columns})


SourceRow = _row_class("SourceRow", SOURCES)
FollowRow = _row_class("FollowRow", FOLLOWS)
ProfileRow = _row_class("ProfileRow", PROFILES)
AccountRow = _row_class("AccountRow", ACCOUNTS)


@dataclass
class FanoutData:
    source: Any | None
    pairs: list[tuple[Any, Any | None]] = field(default_factory=list)  # (follow, risk profile or None)
    accounts: list[Any] = field(default_factory=list)                   # tradable accounts, id order
    paper_cash: dict[int, Decimal] = field(default_factory=dict)
    paper_quote: Decimal | None = None
    positions: list[PositionRow] = field(default_factory=list)          # open (quantity != 0)
    open_orders: dict[int, list[OrderRow]] | None = None                # by account, when asked
    decided: set[int] = field(default_factory=set)  # followers with a decision on the signal already
    stored: tuple[int | None, IdPool | None] | None = None  # the signal stored with the reads (``read``)


# ------------------------------------------------------------------ statements (built once)
def _source_id(by_channel: bool):
    if by_channel:
        return sa.select(SOURCES.c.id).where(SOURCES.c.discord_channel_id == sa.bindparam("channel")) \
            .scalar_subquery()
    return sa.bindparam("source_id")


def _tradable(by_channel: bool):
    return (sa.select(ACCOUNTS.c.id).select_from(FOLLOWS.join(ACCOUNTS, ACCOUNTS.c.user_id == FOLLOWS.c.follower_id))
            .where(FOLLOWS.c.source_id == _source_id(by_channel), FOLLOWS.c.auto_trade.is_(True),
                   ACCOUNTS.c.status == AccountStatus.CONNECTED.value, ACCOUNTS.c.permissions == "trade"))


@lru_cache(maxsize=4)
def _statements(by_channel: bool) -> dict[str, sa.Select]:
    followers = (
        sa.select(FOLLOWS, PROFILES, ACCOUNTS, PAPER_CASH.c.cash, PAPER_QUOTES.c.price)
        .select_from(
            FOLLOWS.outerjoin(PROFILES, PROFILES.c.user_id == FOLLOWS.c.follower_id)
            .outerjoin(ACCOUNTS, sa.and_(ACCOUNTS.c.user_id == FOLLOWS.c.follower_id,
                                         ACCOUNTS.c.status == AccountStatus.CONNECTED.value,
                                         ACCOUNTS.c.permissions == "trade"))
            .outerjoin(PAPER_CASH, PAPER_CASH.c.broker_account_id == ACCOUNTS.c.id)
            .outerjoin(PAPER_QUOTES, PAPER_QUOTES.c.symbol == sa.bindparam("quote_symbol")))
        .where(FOLLOWS.c.source_id == _source_id(by_channel), FOLLOWS.c.auto_trade.is_(True))
        .order_by(FOLLOWS.c.id, ACCOUNTS.c.id)
        .set_label_style(sa.LABEL_STYLE_TABLENAME_PLUS_COL)
    )
    statements = {
        "followers": followers,
        "positions": sa.select(POSITIONS).where(POSITIONS.c.quantity != 0,
                                                POSITIONS.c.broker_account_id.in_(_tradable(by_channel)))
        .order_by(POSITIONS.c.id),
        "orders": sa.select(ORDERS).where(sa.or_(*(ORDERS.c.status == status for status in sorted(OPEN))),
                                          ORDERS.c.broker_account_id.in_(_tradable(by_channel)))
        .order_by(ORDERS.c.id),
    }
    if by_channel:
        statements["source"] = sa.select(SOURCES).where(SOURCES.c.discord_channel_id == sa.bindparam("channel"))
    else:
        statements["decided"] = sa.select(DECISIONS.c.follower_id).where(DECISIONS.c.signal_id == sa.bindparam("signal_id"))
    return statements


@lru_cache(maxsize=16)
def _compiled(by_channel: bool, name: str, dialect: Any) -> tuple[str, dict[str, Any], tuple[str, ...]]:
    """Driver SQL, the parameters its constants need, and its column keys (``pipeline`` reads)."""
    stmt = _statements(by_channel)[name]
    compiled = stmt.compile(dialect=dialect)
    runtime = {"channel": None, "source_id": None, "quote_symbol": None, "signal_id": None}
    constants = {k: v for k, v in compiled.construct_params(runtime).items() if k not in runtime}
    labelled = stmt.get_label_style() == sa.LABEL_STYLE_TABLENAME_PLUS_COL
    keys = tuple(f"{c.table.name}_{c.name}" if labelled else c.name for c in stmt.selected_columns)
    return compiled.string, constants, keys


# ------------------------------------------------------------------ reading
def read(session: Session, *, instrument: str, open_orders: bool, source_id: int | None = None,
         signal_id: int | None = None, channel: str | None = None, signal: dict[str, Any] | None = None,
         legs_per_follower: int = 0) -> FanoutData:
    """Everything a fan-out of a signal of ``source_id`` (or of the source of ``channel``, for a signal
    not stored yet) reads; with ``signal_id``, also who has a decision on it already.

    ``signal`` (with ``channel``; Postgres): the new signal's row (``intake.signal_row``), stored in
    the same round trip as ``received``, after the reads, with the ids its fan-out may need drawn
    (``legs_per_follower`` orders per follower, plus one per open position and open order): see
    ``FanoutData.stored`` and ``intake.ingest(stored=...)``.  A message stored before is not stored
    again (``stored[0]`` is None)."""
    by_channel = channel is not None
    params = {"channel": channel} if by_channel else {"source_id": source_id, "signal_id": signal_id}
    params["quote_symbol"] = instrument.upper()
    names = ((["source"] if by_channel else ["decided"]) + ["followers", "positions"]
             + (["orders"] if open_orders else []))
    conn = session.connection()
    results: dict[str, list[dict[str, Any]]] = {}
    if pipeline.available(conn):
        compiled = [_compiled(by_channel, name, conn.dialect) for name in names]
        reads = [(sql, {**constants, **params}) for sql, constants, _ in compiled]
        if by_channel and signal is not None:
            reads.append(_store_signal(conn, signal, channel, legs_per_follower, open_orders))
        rows = pipeline.read(conn, reads)
        for name, (_, _, keys), found in zip(names, compiled, rows):
            results[name] = [dict(zip(keys, row)) for row in found]
        if len(rows) > len(names):
            stored = rows[-1]
            results["stored"] = (stored[0][0], IdPool({"risk_decisions": stored[0][1], "orders": stored[0][2]})) \
                if stored else (None, None)
    else:
        statements = _statements(by_channel)
        key = "channel" if by_channel else "source_id"
        for name in names:
            if name == "decided":
                wanted = {"signal_id": signal_id}
            else:
                wanted = {key: params[key], **({"quote_symbol": params["quote_symbol"]} if name == "followers" else {})}
            results[name] = [dict(r._mapping) for r in conn.execute(statements[name], wanted)]
    return _assemble(results, open_orders)


_TRADABLE_OF_INSERTED = ("SELECT a.id FROM follows f JOIN broker_accounts a ON a.user_id = f.follower_id "
                         "WHERE f.source_id = ins.source_id AND f.auto_trade "
                         f"AND a.status = '{AccountStatus.CONNECTED.value}' AND a.permissions = 'trade'")
_FOLLOWS_OF_INSERTED = "(SELECT count(*) FROM follows f WHERE f.source_id = ins.source_id AND f.auto_trade)"


@lru_cache(maxsize=8)
def _store_signal_sql(columns: tuple[str, ...], open_orders: bool, dialect: Any) -> str:
    casts = ", ".join(f"CAST(%(s{i})s AS {_scalar_type(SIGNALS.c[c], dialect)})" for i, c in enumerate(columns))
    orders = (f"{_FOLLOWS_OF_INSERTED} * %(legs)s + (SELECT count(*) FROM positions p WHERE p.quantity <> 0 "
              f"AND p.broker_account_id IN ({_TRADABLE_OF_INSERTED}))")
    if open_orders:
        statuses = ", ".join(f"'{status}'" for status in sorted(OPEN))
        orders += (f" + (SELECT count(*) FROM orders o WHERE o.status IN ({statuses}) "
                   f"AND o.broker_account_id IN ({_TRADABLE_OF_INSERTED}))")
    return (f"WITH ins AS (INSERT INTO signals (source_id, {', '.join(columns)}) "
            f"SELECT s.id, {casts} FROM signal_sources s WHERE s.discord_channel_id = %(channel)s "
            "ON CONFLICT (source_id, source_message_id) DO NOTHING RETURNING id, source_id) "
            "SELECT ins.id, "
            f"ARRAY(SELECT nextval(pg_get_serial_sequence('risk_decisions', 'id')) FROM generate_series(1, "
            f"{_FOLLOWS_OF_INSERTED})), "
            f"ARRAY(SELECT nextval(pg_get_serial_sequence('orders', 'id')) FROM generate_series(1, {orders})) "
            "FROM ins")


def _scalar_type(column: sa.Column, dialect: Any) -> str:
    return column.type.compile(dialect=dialect).split("(")[0]


def _store_signal(conn: sa.Connection, row: dict[str, Any], channel: str, legs: int,
                  open_orders: bool) -> tuple[str, dict[str, Any]]:
    columns = tuple(c for c in row if c != "source_id")
    params: dict[str, Any] = {"channel": channel, "legs": legs}
    for i, column in enumerate(columns):
        process = SIGNALS.c[column].type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
        params[f"s{i}"] = process(row[column]) if process is not None else row[column]
    return _store_signal_sql(columns, open_orders, conn.dialect), params


def _assemble(results: dict[str, list[dict[str, Any]]], with_orders: bool) -> FanoutData:
    source = SourceRow(results["source"][0]) if results.get("source") else None
    data = FanoutData(source)
    follows: dict[int, tuple[Any, Any | None]] = {}
    accounts: dict[int, Any] = {}
    for row in results["followers"]:
        follow_id = row["follows_id"]
        if follow_id not in follows:
            profile = ProfileRow(_part(row, "risk_profiles")) if row["risk_profiles_id"] is not None else None
            follows[follow_id] = (FollowRow(_part(row, "follows")), profile)
        account_id = row["broker_accounts_id"]
        if account_id is not None and account_id not in accounts:
            accounts[account_id] = AccountRow(_part(row, "broker_accounts"))
            if row["paper_accounts_cash"] is not None:
                data.paper_cash[account_id] = row["paper_accounts_cash"]
        data.paper_quote = row["paper_quotes_price"]
    data.pairs = list(follows.values())
    data.accounts = [accounts[i] for i in sorted(accounts)]
    data.positions = [PositionRow(row) for row in results["positions"]]
    data.decided = {row["follower_id"] for row in results.get("decided", ())}
    data.stored = results.get("stored")
    if with_orders:
        data.open_orders = defaultdict(list)
        for row in results["orders"]:
            data.open_orders[row["broker_account_id"]].append(OrderRow({k: row[k] for k in ORDER_COLUMNS}))
    return data


class _Part:
    """One table's columns of a joined row (``<table>_<column>`` keys), read by column name by ``Row``."""

    __slots__ = ("row", "prefix")

    def __init__(self, row: dict[str, Any], prefix: str) -> None:
        self.row, self.prefix = row, prefix

    def __getitem__(self, column: str) -> Any:
        return self.row[self.prefix + column]


def _part(row: dict[str, Any], table: str) -> _Part:
    return _Part(row, table + "_")
