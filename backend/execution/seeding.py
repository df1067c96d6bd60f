"""Build a small trading world (community, provider, source, followers with
paper accounts and risk profiles) for tests, benchmarks and demos.

Kept in the package rather than the tests so the benchmarks, which are
scripts, seed exactly what the integration tests seed.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from backend.db.models import (
    BrokerAccount, Community, Follow, Membership, RiskProfileRecord, SignalSource, SourceKind, User,
)


@dataclass
class World:
    community: Community
    provider: User
    source: SignalSource
    followers: list[User] = field(default_factory=list)
    accounts: list[BrokerAccount] = field(default_factory=list)
    follows: list[Follow] = field(default_factory=list)
    profiles: list[RiskProfileRecord] = field(default_factory=list)


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def seed_world(session: Session, *, followers: int = 1, profile: dict[str, Any] | None = None,
               source: dict[str, Any] | None = None, broker: str = "paper", tag: str = "w",
               webhook_secret: str | None = None) -> World:
    """Commit a world with ``followers`` auto-trading followers, each with one connected account.

    ``profile`` overrides risk-profile fields (default: 10 units a trade, market hours off, no
    leverage cap issues); ``source`` overrides signal-source fields.
    """
    provider = User(username=f"{tag}-provider", discord_id=f"{tag}-p")
    session.add(provider)
    session.flush()
    community = Community(name=f"{tag} community", slug=f"{tag}-community", owner_id=provider.id)
    session.add(community)
    session.flush()
    source_fields = {"kind": SourceKind.DISCORD.value, "discord_channel_id": f"{tag}-chan",
                     "webhook_token": f"{tag}-token", "max_signals_per_minute": None,
                     "webhook_secret_hash": secret_hash(webhook_secret) if webhook_secret else None, **(source or {})}
    src = SignalSource(community_id=community.id, provider_id=provider.id, name=f"{tag} signals", **source_fields)
    session.add(src)
    session.flush()
    if src.max_signals_per_minute != source_fields["max_signals_per_minute"]:  # a None would take the column default
        src.max_signals_per_minute = source_fields["max_signals_per_minute"]
        session.flush()
    world = World(community, provider, src)
    users = [User(username=f"{tag}-f{i}", discord_id=f"{tag}-d{i}") for i in range(followers)]
    session.add_all(users)
    session.flush()
    accounts = [BrokerAccount(user_id=u.id, broker=broker, label="Paper") for u in users]
    session.add_all(accounts)
    settings = {"sizing_mode": "fixed_units", "sizing_value": Decimal(10), "enforce_market_hours": False,
                "max_leverage": Decimal(4), "max_open_positions": 50, **(profile or {})}
    profiles = [RiskProfileRecord(user_id=u.id, **settings) for u in users]
    session.add_all(profiles)
    session.add_all([Membership(community_id=community.id, user_id=u.id) for u in users])
    session.flush()
    follows = [Follow(follower_id=u.id, source_id=src.id, broker_account_id=a.id) for u, a in zip(users, accounts)]
    session.add_all(follows)
    keep, session.expire_on_commit = session.expire_on_commit, False  # the world stays readable
    session.commit()
    session.expire_on_commit = keep
    world.followers, world.accounts, world.follows, world.profiles = users, accounts, follows, profiles
    return world


def trade_through(engine: sa.Engine, world: World, account_id: int) -> None:
    """Point the world's first follow at ``account_id`` (a venue a test or benchmark connected) and
    disconnect the seeded paper account, so the follower's signals trade at that venue only."""
    with Session(engine) as s:
        s.get(Follow, world.follows[0].id).broker_account_id = account_id
        s.get(BrokerAccount, world.accounts[0].id).status = "disconnected"
        s.commit()


async def connect_followed(engine: sa.Engine, world: World, kind: str, label: str, credentials: dict,
                           **connect: Any) -> dict[str, Any]:
    """Connect an account of ``kind`` for the world's first follower (``services.accounts.connect_account``,
    which checks the credentials at the venue) and make the follow trade through it (``trade_through``)."""
    from backend.services.accounts import connect_account

    account = await connect_account(engine, world.followers[0].id, kind, label, credentials, **connect)
    trade_through(engine, world, account["id"])
    return account


def store_signal(engine, source: SignalSource, parsed: Any, *, message_id: str, now, sent_at=None) -> int:
    """Store a hand-built parsed signal as if its message had just arrived; returns the signal id."""
    from backend.execution.intake import ingest
    from backend.execution.journal import Journal

    journal = Journal()
    with Session(engine, expire_on_commit=False) as session:
        intake = ingest(session, session.get(SignalSource, source.id), source_message_id=message_id,
                        text=repr(parsed), sent_at=sent_at or now, journal=journal, now=now, parsed=parsed,
                        parse_text=False)
        journal.flush_audit(session)
        session.commit()
    return intake.signal_id


@contextmanager
def temporary_database(admin_url: str, prefix: str = "dte_bench") -> Iterator[sa.Engine]:
    """A throw-away Postgres database with every table created; dropped on exit (benchmarks)."""
    import backend.db.models as models

    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    engine = sa.create_engine(url, pool_size=10, max_overflow=20)
    try:
        models.metadata.create_all(engine)
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


class StatementCounter:
    """Counts the statements an engine sends and the round trips they take, for the benchmarks.

    ``count``: statements (``before_cursor_execute``, an executemany counting once, plus those sent
    in ``pipeline`` round trips, which SQLAlchemy does not see, a COMMIT sent there included).
    ``round_trips``: each statement sent alone, each pipeline, each COMMIT that travels alone (not
    with a ``pipeline.commit``), and the driver's BEGIN when it travels alone (psycopg
    opens a transaction with a BEGIN of its own before the first statement, except in a pipeline).
    """

    def __init__(self, engine: sa.Engine) -> None:
        from backend.execution import pipeline

        self.engine = engine
        self.count = 0
        self.round_trips = 0
        self._committed_key = ("dte_committed_in_pipeline", id(self))
        sa.event.listen(engine, "before_cursor_execute", self._statement)
        sa.event.listen(engine, "begin", self._begin)
        sa.event.listen(engine, "commit", self._commit)
        pipeline.listeners.append(self._pipeline)

    def _begin(self, conn) -> None:
        conn.info["dte_begin_pending"] = True

    def _statement(self, conn, *args, **kwargs) -> None:
        self.count += 1
        self.round_trips += 1 + bool(conn.info.pop("dte_begin_pending", False))

    def _pipeline(self, conn, statements: int, committed: bool = False) -> None:
        if conn.engine is self.engine:
            conn.info.pop("dte_begin_pending", None)  # the BEGIN went with the pipeline
            self.count += statements
            self.round_trips += 1
            if committed:  # the COMMIT went with it too: SQLAlchemy's commit event that follows sends nothing
                conn.info[self._committed_key] = True

    def _commit(self, conn) -> None:
        if not conn.info.pop(self._committed_key, False):
            self.round_trips += 1


class DbTimer:
    """Wall time spent inside statements (cursor execute to its return), in milliseconds."""

    def __init__(self, engine: sa.Engine) -> None:
        import time

        self.ms = 0.0
        self._clock = time.perf_counter
        self._start = 0.0
        sa.event.listen(engine, "before_cursor_execute", self._before)
        sa.event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, *args, **kwargs) -> None:
        self._start = self._clock()

    def _after(self, *args, **kwargs) -> None:
        self.ms += (self._clock() - self._start) * 1000
