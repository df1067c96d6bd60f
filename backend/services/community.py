"""Read models for the community area (hosts and providers).

Only members with the admin role or higher see a community's members,
sources and statistics: ``community_overview`` checks the role itself, so a
page, a bot command or a job cannot forget to.  Counts are done in SQL
(GROUP BY), never by loading rows, and the member list is paginated.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, select

from backend.db.models import (
    Community, CommunityRole, Follow, Membership, Order, Signal, SignalSource, SignalStatus, User,
)
from backend.services.access import ROLE_RANK, communities_with_role, require_role


@dataclass(frozen=True)
class CommunityRef:
    id: int
    name: str
    role: str


@dataclass(frozen=True)
class MemberView:
    user_id: int
    name: str
    role: str
    joined_at: datetime


@dataclass(frozen=True)
class SourceView:
    id: int
    name: str
    kind: str
    provider_name: str
    active: bool
    followers: int
    auto_trading_followers: int
    signals_total: int
    signals_dispatched: int
    signals_rejected: int
    orders_total: int
    last_signal_at: datetime | None


@dataclass(frozen=True)
class CommunityOverview:
    id: int
    name: str
    slug: str
    my_role: str
    member_count: int
    role_counts: dict[str, int]
    members: list[MemberView]
    sources: list[SourceView]
    signals_total: int
    orders_total: int


def managed_communities(session: Session, user_id: int) -> list[CommunityRef]:
    """Communities the user hosts or helps run (admin role or higher)."""
    return [CommunityRef(id=c.id, name=c.name, role=r)
            for c, r in communities_with_role(session, user_id, CommunityRole.ADMIN)]


def _members(session: Session, community_id: int, limit: int, offset: int) -> list[MemberView]:
    rows = session.exec(
        select(Membership, User)
        .join(User, User.id == Membership.user_id)
        .where(Membership.community_id == community_id)
        .order_by(Membership.joined_at, Membership.id)
        .offset(offset).limit(limit)
    ).all()
    members = [MemberView(user_id=u.id, name=u.display_name or u.username, role=m.role, joined_at=m.joined_at)
               for m, u in rows]
    return sorted(members, key=lambda m: (-ROLE_RANK.get(m.role, 0), m.name.lower()))


def _counts(session: Session, query) -> dict:
    return {key: count for key, count in session.exec(query).all()}


def _sources(session: Session, community_id: int) -> list[SourceView]:
    sources = session.exec(
        select(SignalSource, User).join(User, User.id == SignalSource.provider_id)
        .where(SignalSource.community_id == community_id).order_by(SignalSource.id)
    ).all()
    ids = [s.id for s, _ in sources] or [-1]
    followers = _counts(session, select(Follow.source_id, sa.func.count()).where(Follow.source_id.in_(ids))
                        .group_by(Follow.source_id))
    auto = _counts(session, select(Follow.source_id, sa.func.count())
                   .where(Follow.source_id.in_(ids), Follow.auto_trade.is_(True)).group_by(Follow.source_id))
    by_status: dict[tuple[int, str], int] = {
        (sid, status): n for sid, status, n in session.exec(
            select(Signal.source_id, Signal.status, sa.func.count()).where(Signal.source_id.in_(ids))
            .group_by(Signal.source_id, Signal.status)).all()
    }
    last = _counts(session, select(Signal.source_id, sa.func.max(Signal.received_at))
                   .where(Signal.source_id.in_(ids)).group_by(Signal.source_id))
    orders = _counts(session, select(Signal.source_id, sa.func.count(Order.id))
                     .join(Order, Order.signal_id == Signal.id).where(Signal.source_id.in_(ids))
                     .group_by(Signal.source_id))
    views = []
    for src, provider in sources:
        total = sum(n for (sid, _), n in by_status.items() if sid == src.id)
        last_at = last.get(src.id)
        if isinstance(last_at, str):  # SQLite returns MAX() of a datetime column as text
            last_at = datetime.fromisoformat(last_at)
        views.append(SourceView(
            id=src.id, name=src.name, kind=src.kind, provider_name=provider.display_name or provider.username,
            active=src.active, followers=followers.get(src.id, 0), auto_trading_followers=auto.get(src.id, 0),
            signals_total=total, signals_dispatched=by_status.get((src.id, SignalStatus.DISPATCHED.value), 0),
            signals_rejected=by_status.get((src.id, SignalStatus.REJECTED.value), 0),
            orders_total=orders.get(src.id, 0), last_signal_at=last_at,
        ))
    return views


def community_overview(session: Session, user_id: int, community_id: int, *,
                       member_limit: int = 50, member_offset: int = 0) -> CommunityOverview:
    """Members, sources and counts of one community; refuses anyone below the admin role."""
    my_role = require_role(session, user_id, community_id, CommunityRole.ADMIN)
    community = session.get(Community, community_id)
    role_counts = _counts(session, select(Membership.role, sa.func.count())
                          .where(Membership.community_id == community_id).group_by(Membership.role))
    sources = _sources(session, community_id)
    return CommunityOverview(
        id=community.id, name=community.name, slug=community.slug, my_role=my_role,
        member_count=sum(role_counts.values()), role_counts=role_counts,
        members=_members(session, community_id, member_limit, member_offset), sources=sources,
        signals_total=sum(s.signals_total for s in sources), orders_total=sum(s.orders_total for s in sources),
    )
