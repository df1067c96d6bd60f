"""Who is who: users, communities (the tenant), memberships, API keys."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from backend.db.models._fields import now_field, fk, timestamp


class PlatformRole(str, Enum):
    USER = "user"
    ADMIN = "admin"


class CommunityRole(str, Enum):
    """Ordered from most to least powerful; see ``backend.services.access``."""

    OWNER = "owner"
    ADMIN = "admin"
    TRADER = "trader"
    VIEWER = "viewer"


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: int | None = Field(default=None, primary_key=True)
    discord_id: str | None = Field(default=None, unique=True, index=True, max_length=32)
    username: str = Field(max_length=100)
    display_name: str | None = Field(default=None, max_length=100)
    email: str | None = Field(default=None, max_length=255)
    avatar_url: str | None = Field(default=None, max_length=500)
    platform_role: str = Field(default=PlatformRole.USER.value, max_length=16)
    dm_enabled: bool = Field(default=True)
    is_demo: bool = Field(default=False)
    created_at: datetime = now_field()
    last_login_at: datetime | None = timestamp()


class OAuthToken(SQLModel, table=True):
    """Discord OAuth tokens, encrypted by the credential vault, refreshed before expiry."""

    __tablename__ = "oauth_tokens"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = fk("users.id", ondelete="CASCADE")
    provider: str = Field(default="discord", max_length=32)
    token_enc: str = Field(sa_type=sa.Text)
    expires_at: datetime | None = timestamp()
    updated_at: datetime = now_field()


class Community(SQLModel, table=True):
    __tablename__ = "communities"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100)
    slug: str = Field(unique=True, index=True, max_length=100)
    discord_guild_id: str | None = Field(default=None, unique=True, index=True, max_length=32)
    owner_id: int = fk("users.id")
    paid_role_id: str | None = Field(default=None, max_length=32, description="Discord role granted to paying members")
    created_at: datetime = now_field()


class Membership(SQLModel, table=True):
    __tablename__ = "memberships"
    __table_args__ = (sa.UniqueConstraint("community_id", "user_id", name="uq_membership"),)

    id: int | None = Field(default=None, primary_key=True)
    community_id: int = fk("communities.id", ondelete="CASCADE")
    user_id: int = fk("users.id", ondelete="CASCADE")
    role: str = Field(default=CommunityRole.TRADER.value, max_length=16)
    joined_at: datetime = now_field()


class ApiKey(SQLModel, table=True):
    """Only a hash of the key is stored; the key itself is shown once."""

    __tablename__ = "api_keys"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = fk("users.id", ondelete="CASCADE")
    name: str = Field(max_length=100)
    prefix: str = Field(max_length=16, index=True)
    key_hash: str = Field(unique=True, max_length=128)
    scopes: str = Field(default="read", max_length=200)
    created_at: datetime = now_field()
    last_used_at: datetime | None = timestamp()
    revoked_at: datetime | None = timestamp()


class DiscordLinkCode(SQLModel, table=True):
    """One-time code a member types in ``/link`` to join Discord and dashboard accounts."""

    __tablename__ = "discord_link_codes"

    code: str = Field(primary_key=True, max_length=16)
    user_id: int = fk("users.id", ondelete="CASCADE")
    expires_at: datetime = timestamp(nullable=False)
    used_at: datetime | None = timestamp()


class UserSession(SQLModel, table=True):
    """A signed-in browser.  The cookie carries only a signed random id; sign-out revokes the row."""

    __tablename__ = "user_sessions"

    id: str = Field(primary_key=True, max_length=64)
    user_id: int = fk("users.id", ondelete="CASCADE")
    created_at: datetime = now_field()
    expires_at: datetime = timestamp(nullable=False)
    revoked_at: datetime | None = timestamp()
    user_agent: str | None = Field(default=None, max_length=300)
