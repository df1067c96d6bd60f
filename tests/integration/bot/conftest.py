"""A small community for the bot's tests: a host, a provider with a Discord channel, a follower.

``make_world(engine)`` writes it through the real tables (no fixtures of our
own seams): the follower has a paper account with 100,000, a risk profile
that trades around the clock, and follows the provider's channel with
auto-trade on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from sqlmodel import Session

from backend.db.models import (
    BrokerAccount, Community, CommunityRole, Follow, Membership, PaperAccount, RiskProfileRecord, SignalSource,
    SourceKind, User,
)
from backend.db.types import utcnow

GUILD_ID = "510000000000000001"
CHANNEL_ID = "520000000000000001"
OTHER_CHANNEL_ID = "520000000000000002"
PROVIDER_DISCORD = "530000000000000001"
FOLLOWER_DISCORD = "530000000000000002"
STRANGER_DISCORD = "530000000000000009"


@dataclass
class World:
    community_id: int
    source_id: int
    provider_id: int
    follower_id: int
    account_id: int
    host_id: int
    guild_id: str = GUILD_ID
    channel_id: str = CHANNEL_ID
    provider_discord: str = PROVIDER_DISCORD
    follower_discord: str = FOLLOWER_DISCORD


def add_follower(session: Session, community_id: int, source_id: int | None, *, username: str,
                 discord_id: str | None, role: str = CommunityRole.TRADER.value, cash: Decimal = Decimal("100000"),
                 dm_enabled: bool = True) -> tuple[User, BrokerAccount]:
    user = User(username=username, display_name=username.title(), discord_id=discord_id, dm_enabled=dm_enabled)
    session.add(user)
    session.flush()
    session.add(Membership(community_id=community_id, user_id=user.id, role=role))
    account = BrokerAccount(user_id=user.id, broker="paper", label="Paper account")
    session.add(account)
    session.flush()
    session.add(PaperAccount(broker_account_id=account.id, cash=cash))
    session.add(RiskProfileRecord(user_id=user.id, sizing_mode="fixed_units", sizing_value=Decimal("10"),
                                  enforce_market_hours=False, max_open_positions=50))
    if source_id is not None:
        session.add(Follow(follower_id=user.id, source_id=source_id, broker_account_id=account.id, auto_trade=True))
    session.flush()
    return user, account


def make_world(engine: sa.Engine, *, max_lag_seconds: int = 60, provider_linked: bool = True) -> World:
    with Session(engine, expire_on_commit=False) as session:
        host = User(username="hana", display_name="Hana Host")
        provider = User(username="pat", display_name="Pat Provider",
                        discord_id=PROVIDER_DISCORD if provider_linked else None)
        session.add_all([host, provider])
        session.flush()
        community = Community(name="Club", slug="club", owner_id=host.id, discord_guild_id=GUILD_ID,
                              paid_role_id="540000000000000001")
        session.add(community)
        session.flush()
        session.add(Membership(community_id=community.id, user_id=host.id, role=CommunityRole.OWNER.value))
        source = SignalSource(community_id=community.id, provider_id=provider.id, name="Pat Calls",
                              kind=SourceKind.DISCORD.value, discord_channel_id=CHANNEL_ID,
                              max_lag_seconds=max_lag_seconds, max_signals_per_minute=None,
                              default_sizing_mode="fixed_units", default_sizing_value=Decimal("10"),
                              created_at=utcnow() - timedelta(days=1))
        session.add(source)
        session.flush()
        follower, account = add_follower(session, community.id, source.id, username="alex",
                                         discord_id=FOLLOWER_DISCORD)
        session.commit()
        return World(community_id=community.id, source_id=source.id, provider_id=provider.id,
                     follower_id=follower.id, account_id=account.id, host_id=host.id)


@pytest.fixture
def world(engine) -> World:
    return make_world(engine)


@pytest.fixture
def add_member():
    """``add_member(session, community_id, source_id, username=..., discord_id=..., role=...)``."""
    return add_follower
