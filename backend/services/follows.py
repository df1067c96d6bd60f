"""Signal providers a trader can follow, their track record, and the trader's follows.

The one set of follow use cases: the Providers page and the bot's
``/follow``, ``/unfollow``, ``/pause`` and ``/resume`` (``backend.bot.commands``,
which first turns a provider's name into a source with
``members.find_source``) call these same functions, so both write the same
rows and the same audit events (``follow.created``, ``follow.deleted``,
``follow.auto_trade`` once per follow changed, ``follow.sizing``).

Every function takes the *acting* user's id.  A source is visible only when
the user is a member of its community (any role); following it, or changing
a follow, needs the trader role there, and a follow can only be changed by
the user who owns it (``PermissionDenied`` otherwise, without saying whether
the id exists).  Nothing here commits: the caller's ``session_scope`` does,
so the change and its audit event land in one transaction or not at all.

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
from backend.db.models import (AccountStatus, BrokerAccount, Community, CommunityRole, Follow, Membership,
                               SignalSource, User)
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


@dataclass(frozen=True)
class Followed:
    follow: Follow
    source: SignalSource
    created: bool  # False: the user already followed it (nothing changed)


def _require_trading_account(session: Session, user_id: int) -> None:
    """A follow with no account of its own trades through the first connected one: there must be one."""
    connected = session.exec(select(BrokerAccount.id).where(
        BrokerAccount.user_id == user_id, BrokerAccount.permissions == "trade",
        BrokerAccount.status == AccountStatus.CONNECTED.value).limit(1)).first()
    if connected is None:
        raise ValidationError("Connect a broker account (or the paper account) on the dashboard's Brokers page "
                              "before following a provider.", field="broker_account")


def follow(session: Session, user_id: int, source_id: int, *, broker_account_id: int | None = None) -> Followed:
    """Follow a source of one of the user's communities with auto-trade on (idempotent).

    Without ``broker_account_id`` the follow trades through the user's first connected account at
    each signal (``execution.decisions.pick_account``), so reconnecting or replacing an account needs
    no new follow; one connected account with trade permission must exist now, so that the first
    signal is not simply denied.
    """
    source = _source_for(session, user_id, source_id)
    existing = session.exec(select(Follow).where(Follow.follower_id == user_id,
                                                 Follow.source_id == source_id)).first()
    if existing is not None:
        return Followed(existing, source, False)
    if broker_account_id is not None:
        account = session.get(BrokerAccount, broker_account_id)
        if account is None or account.user_id != user_id:
            raise PermissionDenied("That broker account is not yours.")
    else:
        _require_trading_account(session, user_id)
    row = Follow(follower_id=user_id, source_id=source_id, broker_account_id=broker_account_id, auto_trade=True)
    session.add(row)
    session.flush()
    audit(session, "follow.created", subject_type="follow", subject_id=row.id, actor_user_id=user_id,
          community_id=source.community_id, data={"source_id": source_id, "broker_account_id": broker_account_id})
    return Followed(row, source, True)


def follow_of(session: Session, user_id: int, source_id: int) -> Follow | None:
    """The user's follow of a source, if any (the bot names providers, not follow ids)."""
    return session.exec(select(Follow).where(Follow.follower_id == user_id, Follow.source_id == source_id)).first()


def unfollow(session: Session, user_id: int, follow_id: int) -> SignalSource | None:
    """Stop following; returns the source.  Open positions stay open."""
    row = _own_follow(session, user_id, follow_id)
    source = session.get(SignalSource, row.source_id)
    audit(session, "follow.deleted", subject_type="follow", subject_id=row.id, actor_user_id=user_id,
          community_id=source.community_id if source else None, data={"source_id": row.source_id})
    session.delete(row)
    session.flush()
    return source


def _switch(session: Session, user_id: int, row: Follow, on: bool) -> None:
    row.auto_trade = bool(on)
    session.add(row)
    audit(session, "follow.auto_trade", subject_type="follow", subject_id=row.id, actor_user_id=user_id,
          data={"auto_trade": row.auto_trade, "source_id": row.source_id})


def set_auto_trade(session: Session, user_id: int, follow_id: int, on: bool) -> Follow:
    """Auto-trade on or off for one of the user's follows."""
    row = _own_follow(session, user_id, follow_id)
    _switch(session, user_id, row, on)
    session.flush()
    return row


def set_auto_trade_all(session: Session, user_id: int, on: bool, *, source_id: int | None = None) -> int:
    """Pause or resume every follow of the user (or the one of ``source_id``); how many changed."""
    query = select(Follow).where(Follow.follower_id == user_id, Follow.auto_trade.is_(not on))
    if source_id is not None:
        query = query.where(Follow.source_id == source_id)
    rows = list(session.exec(query.order_by(Follow.id)))
    for row in rows:
        _switch(session, user_id, row, on)
    session.flush()
    return len(rows)


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
    session.flush()
    return row
