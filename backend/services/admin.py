"""Read models for the platform admin area: users, communities, revenue, audit trail.

Only users with ``platform_role == "admin"`` get anything from here (checked
inside, not by the page).  Monthly recurring revenue is computed from the
subscriptions table: every active or trialing subscription's amount is
normalised to one month (a yearly plan counts 1/12 per month, a weekly one
52/12) and summed per currency, since adding dollars to euros means nothing.
Amounts stay ``Decimal`` end to end.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

import sqlalchemy as sa
from sqlmodel import Session, select

from backend.db.models import AuditEvent, BillingCustomer, Community, Membership, SignalSource, Subscription, User
from backend.services.access import require_platform_admin
from backend.services.worker_health import WorkerHealth, worker_health

REVENUE_STATUSES = ("active", "trialing", "past_due")
_MONTHS_PER_INTERVAL = {
    "day": Decimal("365") / Decimal("12"),
    "week": Decimal("52") / Decimal("12"),
    "month": Decimal("1"),
    "quarter": Decimal("1") / Decimal("3"),
    "year": Decimal("1") / Decimal("12"),
}
CENT = Decimal("0.01")


def monthly_amount(amount: Decimal, interval: str) -> Decimal:
    """The amount a subscription brings in per month, to the cent."""
    factor = _MONTHS_PER_INTERVAL.get((interval or "month").lower())
    if factor is None:
        return Decimal("0")
    return (amount * factor).quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class CommunityRow:
    id: int
    name: str
    owner_name: str
    members: int
    sources: int
    created_at: datetime


@dataclass(frozen=True)
class SubscriptionRow:
    id: int
    customer_name: str
    community_name: str | None
    provider: str
    plan: str
    status: str
    amount: Decimal
    currency: str
    interval: str
    monthly: Decimal
    started_at: datetime


@dataclass(frozen=True)
class AuditRow:
    seq: int
    created_at: datetime
    action: str
    actor_name: str | None
    subject: str | None


@dataclass(frozen=True)
class PlatformOverview:
    users_count: int
    communities_count: int
    active_subscriptions: int
    mrr: dict[str, Decimal]
    communities: list[CommunityRow]
    subscriptions: list[SubscriptionRow]
    subscriptions_total: int
    audit_events: list[AuditRow]
    workers: list[WorkerHealth]


def mrr_by_currency(session: Session) -> dict[str, Decimal]:
    rows = session.exec(
        select(Subscription.amount, Subscription.interval, Subscription.currency)
        .where(Subscription.status.in_(REVENUE_STATUSES))
    ).all()
    totals: dict[str, Decimal] = {}
    for amount, interval, currency in rows:
        key = (currency or "usd").upper()
        totals[key] = totals.get(key, Decimal("0")) + monthly_amount(amount, interval)
    return totals


def _communities(session: Session, limit: int) -> list[CommunityRow]:
    members = {cid: n for cid, n in session.exec(
        select(Membership.community_id, sa.func.count()).group_by(Membership.community_id)).all()}
    sources = {cid: n for cid, n in session.exec(
        select(SignalSource.community_id, sa.func.count()).group_by(SignalSource.community_id)).all()}
    rows = session.exec(
        select(Community, User).join(User, User.id == Community.owner_id).order_by(Community.id).limit(limit)
    ).all()
    return [CommunityRow(id=c.id, name=c.name, owner_name=u.display_name or u.username,
                         members=members.get(c.id, 0), sources=sources.get(c.id, 0), created_at=c.created_at)
            for c, u in rows]


def subscription_rows(session: Session, *, limit: int = 50, offset: int = 0) -> list[SubscriptionRow]:
    rows = session.exec(
        select(Subscription, User, Community.name)
        .join(BillingCustomer, BillingCustomer.id == Subscription.customer_id)
        .join(User, User.id == BillingCustomer.user_id)
        .outerjoin(Community, Community.id == Subscription.community_id)
        .order_by(Subscription.started_at.desc(), Subscription.id.desc())
        .offset(offset).limit(limit)
    ).all()
    return [SubscriptionRow(
        id=s.id, customer_name=u.display_name or u.username, community_name=cname, provider=s.provider,
        plan=s.plan, status=s.status, amount=s.amount, currency=(s.currency or "usd").upper(), interval=s.interval,
        monthly=monthly_amount(s.amount, s.interval) if s.status in REVENUE_STATUSES else Decimal("0"),
        started_at=s.started_at,
    ) for s, u, cname in rows]


def recent_audit(session: Session, *, limit: int = 20) -> list[AuditRow]:
    rows = session.exec(
        select(AuditEvent, User).outerjoin(User, User.id == AuditEvent.actor_user_id)
        .order_by(AuditEvent.seq.desc()).limit(limit)
    ).all()
    return [AuditRow(
        seq=e.seq, created_at=e.created_at, action=e.action,
        actor_name=(u.display_name or u.username) if u is not None else None,
        subject=f"{e.subject_type} #{e.subject_id}" if e.subject_type else None,
    ) for e, u in rows]


def platform_overview(session: Session, user_id: int, *, subscription_limit: int = 50,
                      subscription_offset: int = 0, audit_limit: int = 20) -> PlatformOverview:
    """The admin area's first page; refuses anyone who is not a platform admin."""
    require_platform_admin(session, user_id)
    count = lambda model: session.exec(select(sa.func.count()).select_from(model)).one()  # noqa: E731
    return PlatformOverview(
        users_count=count(User),
        communities_count=count(Community),
        active_subscriptions=session.exec(select(sa.func.count()).select_from(Subscription)
                                          .where(Subscription.status.in_(REVENUE_STATUSES))).one(),
        mrr=mrr_by_currency(session),
        communities=_communities(session, limit=50),
        subscriptions=subscription_rows(session, limit=subscription_limit, offset=subscription_offset),
        subscriptions_total=count(Subscription),
        audit_events=recent_audit(session, limit=audit_limit),
        workers=worker_health(session),
    )
