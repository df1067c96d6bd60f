"""What a member does about their own trading, from Discord or the dashboard.

Slash commands and dashboard pages call these same functions with the
caller's ``users.id`` (the bot first turns a Discord id into a user with
``user_for_discord``, which refuses unlinked accounts) and get plain data
back; the read side reuses the dashboard's read models so ``/positions``
and the Positions page can never disagree.

Linking: the dashboard's Notifications page (Discord card) shows a one-time
code (``create_link_code``, valid 15 minutes, a new one replaces the old);
the member types ``/link CODE`` in
Discord, which joins the two accounts (``redeem_link_code``).  A Discord
account linked to another dashboard account is refused rather than moved:
taking over someone's trading identity must not be one command away.

Following, unfollowing, pausing and resuming are not here: the bot calls
``backend.services.follows`` for them, exactly as the Providers page does
(this module only turns a provider's name in a server into a source,
``find_source``).  Every change (link, DM preference) appends an audit event
in the same transaction.  Nothing here commits: the caller's
``session_scope`` does.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, select

from backend import audit
from backend.config import get_settings
from backend.db.models import Community, DiscordLinkCode, SignalSource, User
from backend.db.types import utcnow
from backend.errors import NotFound, PermissionDenied, ValidationError
from backend.services import dashboard

LINK_CODE_TTL = timedelta(minutes=15)
LINK_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O or 1/I: codes are typed by hand
LINK_CODE_LENGTH = 8


class NotLinked(PermissionDenied):
    """The Discord account is not joined to a dashboard account yet."""

    code = "not_linked"


@dataclass(frozen=True)
class LinkCode:
    code: str
    expires_at: datetime


@dataclass(frozen=True)
class MemberStatus:
    user_id: int
    name: str
    dm_enabled: bool
    accounts: list[dashboard.AccountView]
    follows: list[dashboard.FollowView]
    risk: dashboard.RiskStateView | None

    @property
    def auto_trading(self) -> bool:
        return any(f.auto_trade for f in self.follows)


# ------------------------------------------------------------------ linking
def create_link_code(session: Session, user_id: int, *, now: datetime | None = None) -> LinkCode:
    """A new code for ``/link`` (any unused older one is deleted); refused once the account is linked."""
    now = now or utcnow()
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("That user does not exist.")
    if user.discord_id:
        raise ValidationError("Your dashboard account is already linked to Discord: the bot's commands work "
                              "for you already.")
    session.execute(sa.delete(DiscordLinkCode).where(DiscordLinkCode.user_id == user_id,
                                                     DiscordLinkCode.used_at.is_(None)))
    code = "".join(secrets.choice(LINK_CODE_ALPHABET) for _ in range(LINK_CODE_LENGTH))
    row = DiscordLinkCode(code=code, user_id=user_id, expires_at=now + LINK_CODE_TTL)
    session.add(row)
    session.flush()
    return LinkCode(code=code, expires_at=row.expires_at)


def redeem_link_code(session: Session, discord_user_id: str, code: str, *, now: datetime | None = None) -> User:
    """Join ``discord_user_id`` to the code's dashboard account; the code works once."""
    now = now or utcnow()
    wanted = (code or "").strip().upper().replace("-", "").replace(" ", "")
    row = session.get(DiscordLinkCode, wanted) if wanted else None
    if row is None or row.used_at is not None or row.expires_at <= now:
        raise ValidationError("That link code is unknown, used or expired. Get a new one on the dashboard "
                              "(Notifications > Discord) and run /link again within 15 minutes.", field="code")
    discord_user_id = str(discord_user_id)
    holder = session.exec(select(User).where(User.discord_id == discord_user_id)).first()
    if holder is not None and holder.id != row.user_id:
        raise PermissionDenied("This Discord account is already linked to another dashboard account: sign in "
                               "with Discord to use that one, or ask a platform admin to move the link.")
    user = session.get(User, row.user_id)
    if user.discord_id not in (None, discord_user_id):
        raise PermissionDenied("Your dashboard account is already linked to a different Discord account; run "
                               "/link from that one, or ask a platform admin to move the link.")
    user.discord_id = discord_user_id
    row.used_at = now
    audit.record(session, "member.discord_linked", subject_type="user", subject_id=user.id,
                 actor_user_id=user.id, data={"discord_id": discord_user_id})
    session.flush()
    return user


def user_for_discord(session: Session, discord_user_id: str | int) -> User:
    user = session.exec(select(User).where(User.discord_id == str(discord_user_id))).first()
    if user is None:
        raise NotLinked(f"Your Discord account is not linked to a dashboard account yet. Sign in at "
                        f"{get_settings().public_url}, open Notifications > Discord to get a code, then run /link CODE here.")
    return user


def community_for_guild(session: Session, guild_id: str | int | None) -> Community:
    if guild_id is None:
        raise ValidationError("Run this command in your community's Discord server, not in a direct message.")
    community = session.exec(select(Community).where(Community.discord_guild_id == str(guild_id))).first()
    if community is None:
        raise NotFound("This Discord server is not connected to a community on the dashboard yet; "
                       "ask a host to connect it.")
    return community


# ------------------------------------------------------------------ reading
def member_status(session: Session, user_id: int) -> MemberStatus:
    user = session.get(User, user_id)
    return MemberStatus(
        user_id=user_id, name=user.display_name or user.username, dm_enabled=user.dm_enabled,
        accounts=dashboard.account_views(session, user_id), follows=dashboard.follow_views(session, user_id),
        risk=dashboard.risk_state(session, user_id),
    )


def open_positions(session: Session, user_id: int) -> list[dashboard.PositionView]:
    return dashboard.position_views(session, user_id, open_only=True)


def pnl_summary(session: Session, user_id: int, *, now: datetime | None = None) -> dashboard.Totals:
    """Today's and total P&L, computed exactly as the dashboard's Overview computes them."""
    positions = dashboard.position_views(session, user_id)
    accounts = dashboard.account_views(session, user_id, positions)
    return dashboard.totals_for(session, user_id, accounts, positions, now=now)


def providers(session: Session, community_id: int) -> list[SignalSource]:
    """The community's active sources, by name: what ``/follow`` offers."""
    return list(session.exec(select(SignalSource).where(SignalSource.community_id == community_id,
                                                        SignalSource.active.is_(True)).order_by(SignalSource.name)))


def find_source(session: Session, community_id: int, name: str) -> SignalSource:
    """A source of this community by name (case-insensitive)."""
    wanted = (name or "").strip().lower()
    sources = providers(session, community_id)
    match = next((s for s in sources if s.name.lower() == wanted), None)
    if match is None:
        names = ", ".join(s.name for s in sources) or "none yet"
        raise NotFound(f"No provider named '{name}' in this community. Providers: {names}.", field="provider")
    return match


# ------------------------------------------------------------------ changing
def set_dm_enabled(session: Session, user_id: int, enabled: bool) -> None:
    user = session.get(User, user_id)
    if user.dm_enabled != enabled:
        user.dm_enabled = enabled
        audit.record(session, "member.dm_preference", subject_type="user", subject_id=user_id,
                     actor_user_id=user_id, data={"dm_enabled": enabled})
        session.flush()
