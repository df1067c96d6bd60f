"""A community's paid Discord role follows its members' subscriptions.

Billing calls ``sync_paid_role`` when a subscription becomes active or
lapses.  The decision is plain data (``PaidRoleChange``: grant or remove
which role of which guild for which Discord user), computed from the
database; applying it goes through a ``RoleApi`` so the same code runs in
the bot (its own connection, ``backend.bot.roles.BotRoleApi``) and in the
web process (a REST-only client, ``backend.bot.roles.RestRoleApi``).
Both Discord calls are idempotent (PUT/DELETE of a member role), so calling
this again after a retry or a replayed webhook is harmless.

Nothing happens (``None``) when the community has no paid role or no
Discord server, or the member has not linked Discord: there is nobody to
give a role to.  Each applied change is audited.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sqlmodel import Session, select

from backend import audit
from backend.db.models import BillingCustomer, Community, Subscription, User

ACTIVE_STATUSES = frozenset({"active", "trialing"})


class RoleApi(Protocol):
    async def add_role(self, guild_id: str, discord_user_id: str, role_id: str, *, reason: str) -> None: ...

    async def remove_role(self, guild_id: str, discord_user_id: str, role_id: str, *, reason: str) -> None: ...


@dataclass(frozen=True)
class PaidRoleChange:
    community_id: int
    user_id: int
    guild_id: str
    discord_user_id: str
    role_id: str
    grant: bool

    @property
    def reason(self) -> str:
        return "subscription active" if self.grant else "subscription lapsed"


def has_active_subscription(session: Session, user_id: int, community_id: int) -> bool:
    statuses = session.exec(
        select(Subscription.status)
        .join(BillingCustomer, BillingCustomer.id == Subscription.customer_id)
        .where(BillingCustomer.user_id == user_id, Subscription.community_id == community_id)
    ).all()
    return any(s in ACTIVE_STATUSES for s in statuses)


def paid_role_change(session: Session, user_id: int, community_id: int, *,
                     active: bool | None = None) -> PaidRoleChange | None:
    """What the member's role should be; ``active=None`` reads the subscriptions to decide."""
    community = session.get(Community, community_id)
    user = session.get(User, user_id)
    if community is None or user is None or not community.paid_role_id or not community.discord_guild_id \
            or not user.discord_id:
        return None
    grant = has_active_subscription(session, user_id, community_id) if active is None else active
    return PaidRoleChange(community_id=community_id, user_id=user_id, guild_id=community.discord_guild_id,
                          discord_user_id=user.discord_id, role_id=community.paid_role_id, grant=grant)


async def apply_change(change: PaidRoleChange, api: RoleApi) -> None:
    if change.grant:
        await api.add_role(change.guild_id, change.discord_user_id, change.role_id, reason=change.reason)
    else:
        await api.remove_role(change.guild_id, change.discord_user_id, change.role_id, reason=change.reason)


async def sync_paid_role(session: Session, api: RoleApi, *, user_id: int, community_id: int,
                         active: bool | None = None) -> PaidRoleChange | None:
    """Grant or remove the paid role on Discord, then audit it in ``session`` (the caller commits).

    A Discord failure propagates (``discord.HTTPException``) and nothing is
    audited, so billing can retry; the decision is re-read each time.
    """
    change = paid_role_change(session, user_id, community_id, active=active)
    if change is None:
        return None
    await apply_change(change, api)
    audit.record(session, "community.paid_role_granted" if change.grant else "community.paid_role_removed",
                 subject_type="user", subject_id=user_id, community_id=community_id,
                 data={"role_id": change.role_id, "guild_id": change.guild_id, "reason": change.reason})
    return change
