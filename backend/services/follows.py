"""Signal providers a trader can follow, their track record, and the trader's follows.

Every function takes the *acting* user's id.  A source is visible only when
the user is a member of its community (any role); following it, or changing
a follow, needs the trader role there, and a follow can only be changed by
the user who owns it (``PermissionDenied`` otherwise, without saying whether
the id exists).

Performance (win rate, average return, signals, drawdown) is computed from
what real followers actually got: ``backend.services.provider_performance``
says how; it is re-exported here for the callers that think of it as part
of following.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from sqlmodel import Session, select

from backend.audit.chain import record as audit
from backend.db.models import BrokerAccount, Community, CommunityRole, Follow, Membership, SignalSource, User
from backend.errors import NotFound, PermissionDenied, ValidationError
from backend.services.access import require_role, role_at_least
from backend.services.provider_performance import Performance, performance_for, performance_from  # noqa: F401
from backend.services.risk_settings import PERCENT_MODES, SIZING_MODES

ZERO = Decimal(0)
HUNDRED = Decimal(100)


@dataclass(frozen=True)
class ProviderView:
    source_id: int
    name: str
    kind: str
    community_name: str
    provider_name: str
    performance: Performance
    follow_id: int | None
    auto_trade: bool
    sizing_mode: str | None
    sizing_value: Decimal | None
    can_follow: bool


def provider_views(session: Session, user_id: int) -> list[ProviderView]:
    """Active sources of every community the user belongs to, with performance and the user's follow."""
    rows = session.exec(
        select(SignalSource, Community.name, User, Membership.role)
        .join(Community, Community.id == SignalSource.community_id)
        .join(Membership, (Membership.community_id == Community.id) & (Membership.user_id == user_id))
        .join(User, User.id == SignalSource.provider_id)
        .where(SignalSource.active == True)  # noqa: E712 - SQL expression
        .order_by(Community.name, SignalSource.name, SignalSource.id)).all()
    follows = {f.source_id: f for f in session.exec(select(Follow).where(Follow.follower_id == user_id)).all()}
    perf = performance_for(session, [src.id for src, *_ in rows])
    views = []
    for src, community_name, provider, role in rows:
        f = follows.get(src.id)
        views.append(ProviderView(
            source_id=src.id, name=src.name, kind=src.kind, community_name=community_name,
            provider_name=provider.display_name or provider.username, performance=perf[src.id],
            follow_id=f.id if f else None, auto_trade=f.auto_trade if f else False,
            sizing_mode=f.sizing_mode if f else None, sizing_value=f.sizing_value if f else None,
            can_follow=role_at_least(role, CommunityRole.TRADER)))
    return views


def _source_for(session: Session, user_id: int, source_id: int) -> SignalSource:
    source = session.get(SignalSource, source_id)
    if source is None or not source.active:
        raise NotFound("That signal provider does not exist (or is no longer active).")
    require_role(session, user_id, source.community_id, CommunityRole.TRADER)
    return source


def _own_follow(session: Session, user_id: int, follow_id: int) -> Follow:
    follow = session.get(Follow, follow_id)
    if follow is None or follow.follower_id != user_id:
        raise PermissionDenied("That follow is not yours.")
    return follow


def follow(session: Session, user_id: int, source_id: int, *, broker_account_id: int | None = None) -> Follow:
    """Follow a source of one of the user's communities (idempotent: returns the existing follow)."""
    source = _source_for(session, user_id, source_id)
    if broker_account_id is not None:
        account = session.get(BrokerAccount, broker_account_id)
        if account is None or account.user_id != user_id:
            raise PermissionDenied("That broker account is not yours.")
    existing = session.exec(select(Follow).where(Follow.follower_id == user_id,
                                                 Follow.source_id == source_id)).first()
    if existing is not None:
        return existing
    row = Follow(follower_id=user_id, source_id=source_id, broker_account_id=broker_account_id, auto_trade=True)
    session.add(row)
    session.flush()
    audit(session, "follow.created", subject_type="follow", subject_id=row.id, actor_user_id=user_id,
          community_id=source.community_id, data={"source_id": source_id})
    session.commit()
    session.refresh(row)
    return row


def unfollow(session: Session, user_id: int, follow_id: int) -> None:
    row = _own_follow(session, user_id, follow_id)
    source = session.get(SignalSource, row.source_id)
    audit(session, "follow.deleted", subject_type="follow", subject_id=row.id, actor_user_id=user_id,
          community_id=source.community_id if source else None, data={"source_id": row.source_id})
    session.delete(row)
    session.commit()


def set_auto_trade(session: Session, user_id: int, follow_id: int, on: bool) -> Follow:
    row = _own_follow(session, user_id, follow_id)
    row.auto_trade = bool(on)
    session.add(row)
    audit(session, "follow.auto_trade", subject_type="follow", subject_id=row.id, actor_user_id=user_id,
          data={"auto_trade": row.auto_trade})
    session.commit()
    session.refresh(row)
    return row


def clean_sizing(mode: str | None, value: str | Decimal | None) -> tuple[str | None, Decimal | None]:
    """``("", "")`` clears the override; otherwise a known mode and a positive value (<= 100 for %)."""
    mode = (mode or "").strip()
    text = "" if value is None else str(value).strip()
    if not mode:
        if text:
            raise ValidationError("Choose a sizing mode for this value, or clear the value.", field="sizing_mode")
        return None, None
    if mode not in SIZING_MODES:
        raise ValidationError("Choose a sizing mode.", field="sizing_mode")
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise ValidationError("Type a number.", field="sizing_value") from None
    if not amount.is_finite() or amount <= 0:
        raise ValidationError("The size must be greater than 0.", field="sizing_value")
    if mode in PERCENT_MODES and amount > HUNDRED:
        raise ValidationError("A percentage cannot be over 100.", field="sizing_value")
    return mode, amount


def set_sizing(session: Session, user_id: int, follow_id: int, mode: str | None,
               value: str | Decimal | None) -> Follow:
    """Override the account's sizing for this provider only (empty mode = use the account default)."""
    row = _own_follow(session, user_id, follow_id)
    row.sizing_mode, row.sizing_value = clean_sizing(mode, value)
    session.add(row)
    audit(session, "follow.sizing", subject_type="follow", subject_id=row.id, actor_user_id=user_id,
          data={"sizing_mode": row.sizing_mode, "sizing_value": None if row.sizing_value is None
                else str(row.sizing_value)})
    session.commit()
    session.refresh(row)
    return row
