"""Hosts wire a community to Discord and register its signal sources.

The bot listens only to channels registered here, and a TradingView source
gets its own webhook token and secret.  Every function takes the acting
user's id and requires the community admin role, so the dashboard, the CLI
and later the bot call the same checks.  The TradingView secret is returned
once and only its SHA-256 is stored.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

from sqlmodel import Session, select

from backend import audit
from backend.db.models import Community, CommunityRole, Membership, SignalSource, SourceKind, User
from backend.db.models.signals import default_max_lag_seconds
from backend.errors import NotFound, ValidationError
from backend.services.access import require_role

SNOWFLAKE = re.compile(r"^\d{15,21}$")


@dataclass(frozen=True)
class SourceCreated:
    source_id: int
    name: str
    kind: str
    webhook_path: str | None = None
    webhook_secret: str | None = None   # shown once; only its hash is stored


def _snowflake(value: str, field: str, what: str) -> str:
    value = str(value).strip()
    if not SNOWFLAKE.match(value):
        raise ValidationError(f"The {what} must be Discord's numeric id (15-21 digits; enable Developer Mode, "
                              f"then right-click > Copy ID), not {value!r}.", field=field)
    return value


def _provider(session: Session, community_id: int, provider_id: int) -> User:
    provider = session.get(User, provider_id)
    member = session.exec(select(Membership).where(Membership.community_id == community_id,
                                                   Membership.user_id == provider_id)).first()
    if provider is None or member is None:
        raise ValidationError("The provider must be a member of this community.", field="provider_id")
    return provider


def connect_guild(session: Session, acting_user_id: int, community_id: int, guild_id: str,
                  paid_role_id: str | None = None) -> None:
    require_role(session, acting_user_id, community_id, CommunityRole.ADMIN)
    community = session.get(Community, community_id)
    if community is None:
        raise NotFound("That community does not exist.")
    community.discord_guild_id = _snowflake(guild_id, "guild_id", "server (guild) id")
    community.paid_role_id = _snowflake(paid_role_id, "paid_role_id", "paid role id") if paid_role_id else None
    session.add(community)
    audit.record(session, "community.guild_connected", subject_type="community", subject_id=community_id,
                 actor_user_id=acting_user_id, community_id=community_id,
                 data={"guild_id": community.discord_guild_id, "paid_role_id": community.paid_role_id})


def register_discord_source(session: Session, acting_user_id: int, community_id: int, *, provider_id: int,
                            channel_id: str, name: str, max_lag_seconds: int | None = None) -> SourceCreated:
    require_role(session, acting_user_id, community_id, CommunityRole.ADMIN)
    channel_id = _snowflake(channel_id, "channel_id", "channel id")
    if session.exec(select(SignalSource).where(SignalSource.discord_channel_id == channel_id)).first():
        raise ValidationError("That channel is already a signal source.", field="channel_id")
    source = _new_source(session, community_id, provider_id, name, SourceKind.DISCORD, max_lag_seconds)
    source.discord_channel_id = channel_id
    return _save(session, acting_user_id, source)


def register_tradingview_source(session: Session, acting_user_id: int, community_id: int, *, provider_id: int,
                                name: str, max_lag_seconds: int | None = None) -> SourceCreated:
    require_role(session, acting_user_id, community_id, CommunityRole.ADMIN)
    source = _new_source(session, community_id, provider_id, name, SourceKind.TRADINGVIEW, max_lag_seconds)
    secret = secrets.token_urlsafe(24)
    source.webhook_token = secrets.token_urlsafe(18)
    source.webhook_secret_hash = hashlib.sha256(secret.encode()).hexdigest()
    created = _save(session, acting_user_id, source)
    return SourceCreated(created.source_id, created.name, created.kind,
                         webhook_path=f"/webhooks/tradingview/{source.webhook_token}", webhook_secret=secret)


def _new_source(session: Session, community_id: int, provider_id: int, name: str, kind: SourceKind,
                max_lag_seconds: int | None) -> SignalSource:
    """``max_lag_seconds`` None: the deployment's ``SIGNAL_MAX_LAG_SECONDS``."""
    if max_lag_seconds is None:
        max_lag_seconds = default_max_lag_seconds()
    name = (name or "").strip()
    if not 1 <= len(name) <= 100:
        raise ValidationError("Give the source a name of 1 to 100 characters.", field="name")
    if not 5 <= int(max_lag_seconds) <= 3600:
        raise ValidationError("The max lag must be between 5 and 3,600 seconds.", field="max_lag_seconds")
    _provider(session, community_id, provider_id)
    return SignalSource(community_id=community_id, provider_id=provider_id, name=name, kind=kind.value,
                        max_lag_seconds=int(max_lag_seconds))


def _save(session: Session, acting_user_id: int, source: SignalSource) -> SourceCreated:
    session.add(source)
    session.flush()
    audit.record(session, "source.registered", subject_type="signal_source", subject_id=source.id,
                 actor_user_id=acting_user_id, community_id=source.community_id,
                 data={"kind": source.kind, "name": source.name, "channel_id": source.discord_channel_id})
    return SourceCreated(source.id, source.name, source.kind)
