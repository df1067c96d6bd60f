"""Providers and follows: performance from real follower fills, and nobody changes another's follow."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlmodel import Session, select

from backend.db.models import (AuditEvent, BrokerAccount, Community, Fill, Follow, Membership, Order, RealizedPnl,
                               Signal, SignalSource, User)
from backend.db.types import utcnow
from backend.errors import NotFound, PermissionDenied, ValidationError
from backend.services import follows


@pytest.fixture
def world(session):
    """Two communities; ann (trader) and vic (viewer) in A, bob (trader) only in B."""
    users = {n: User(username=n) for n in ("host", "ann", "vic", "bob")}
    session.add_all(users.values())
    session.flush()
    a = Community(name="Alpha", slug="alpha", owner_id=users["host"].id)
    b = Community(name="Beta", slug="beta", owner_id=users["host"].id)
    session.add_all([a, b])
    session.flush()
    session.add_all([Membership(community_id=a.id, user_id=users["ann"].id, role="trader"),
                     Membership(community_id=a.id, user_id=users["vic"].id, role="viewer"),
                     Membership(community_id=b.id, user_id=users["bob"].id, role="trader")])
    src_a = SignalSource(community_id=a.id, provider_id=users["host"].id, name="Alpha calls")
    src_b = SignalSource(community_id=b.id, provider_id=users["host"].id, name="Beta calls")
    session.add_all([src_a, src_b])
    session.flush()
    acct = BrokerAccount(user_id=users["ann"].id, broker="paper", label="Paper")
    session.add(acct)
    session.commit()
    return {"users": users, "a": src_a, "b": src_b, "acct": acct}


def add_round_trips(session, source, account, amounts, *, status="dispatched"):
    """One signal per amount, an order and a closing fill with a realized_pnl row each."""
    t0 = utcnow() - timedelta(hours=1)
    for i, amount in enumerate(amounts):
        sig = Signal(source_id=source.id, source_message_id=f"m{source.id}-{i}", raw_text="BUY AAPL", status=status)
        session.add(sig)
        session.flush()
        order = Order(client_order_id=f"c{source.id}-{i}", user_id=account.user_id, broker_account_id=account.id,
                      signal_id=sig.id, symbol="AAPL", side="sell", quantity=Decimal(1))
        session.add(order)
        session.flush()
        fill = Fill(order_id=order.id, broker_fill_id=f"f{order.id}", quantity=Decimal(1), price=Decimal(100))
        session.add(fill)
        session.flush()
        session.add(RealizedPnl(user_id=account.user_id, broker_account_id=account.id, fill_id=fill.id,
                                symbol="AAPL", amount=Decimal(amount), realized_at=t0 + timedelta(minutes=i)))
    session.commit()


def test_performance_definitions():
    p = follows.performance_from(4, [Decimal(10), Decimal(-5), Decimal(-10), Decimal(20)])
    assert (p.signals, p.round_trips, p.wins) == (4, 4, 2)
    assert p.win_rate == Decimal(50) and p.avg_return == Decimal("3.75") and p.total_pnl == Decimal(15)
    assert p.max_drawdown == Decimal(15)  # peak 10, trough -5
    assert follows.performance_from(0, []) == follows.Performance()
    assert follows.performance_from(1, [Decimal(-3)]).max_drawdown == Decimal(3)  # peak starts at 0


def test_providers_of_my_communities_with_real_performance(session, world):
    add_round_trips(session, world["a"], world["acct"], ["10", "-5", "-10", "20"])
    session.add(Signal(source_id=world["a"].id, source_message_id="chat", raw_text="gm", status="ignored"))
    session.commit()
    ann = world["users"]["ann"].id
    [view] = follows.provider_views(session, ann)
    assert view.name == "Alpha calls" and view.community_name == "Alpha" and view.can_follow
    assert view.performance.signals == 4 and view.performance.round_trips == 4
    assert view.performance.win_rate == Decimal(50) and view.performance.max_drawdown == Decimal(15)
    assert view.follow_id is None
    [bob_view] = follows.provider_views(session, world["users"]["bob"].id)
    assert bob_view.name == "Beta calls" and bob_view.performance.round_trips == 0
    [vic_view] = follows.provider_views(session, world["users"]["vic"].id)
    assert not vic_view.can_follow


def test_follow_unfollow_and_settings(session, world):
    ann = world["users"]["ann"].id
    first = follows.follow(session, ann, world["a"].id)
    f = first.follow
    assert first.created and first.source.id == world["a"].id and f.broker_account_id is None
    again = follows.follow(session, ann, world["a"].id)  # idempotent
    assert again.follow.id == f.id and not again.created
    assert follows.provider_views(session, ann)[0].follow_id == f.id
    assert follows.set_auto_trade(session, ann, f.id, False).auto_trade is False
    row = follows.set_sizing(session, ann, f.id, "fixed_units", "5")
    assert (row.sizing_mode, row.sizing_value) == ("fixed_units", Decimal(5))
    row = follows.set_sizing(session, ann, f.id, "", "")
    assert (row.sizing_mode, row.sizing_value) == (None, None)
    assert follows.unfollow(session, ann, f.id).id == world["a"].id
    assert session.exec(select(Follow)).first() is None
    actions = session.exec(select(AuditEvent.action).order_by(AuditEvent.seq)).all()
    assert actions == ["follow.created", "follow.auto_trade", "follow.sizing", "follow.sizing", "follow.deleted"]


def test_changes_are_committed_by_the_caller_not_the_service(engine, session, world):
    ann = world["users"]["ann"].id
    follows.follow(session, ann, world["a"].id)
    session.rollback()  # e.g. a later step of the same request failed
    with Session(engine) as other:
        assert other.exec(select(Follow)).all() == [] and other.exec(select(AuditEvent)).all() == []


def test_pause_and_resume_all_or_one(session, world):
    ann = world["users"]["ann"].id
    session.add(Membership(community_id=world["b"].community_id, user_id=ann, role="trader"))
    a = follows.follow(session, ann, world["a"].id).follow
    b = follows.follow(session, ann, world["b"].id).follow
    assert follows.set_auto_trade_all(session, ann, False) == 2
    assert follows.set_auto_trade_all(session, ann, False) == 0  # already paused: nothing written
    assert follows.set_auto_trade_all(session, ann, True, source_id=world["b"].id) == 1
    assert (session.get(Follow, a.id).auto_trade, session.get(Follow, b.id).auto_trade) == (False, True)
    switched = session.exec(select(AuditEvent).where(AuditEvent.action == "follow.auto_trade")
                            .order_by(AuditEvent.seq)).all()
    assert [(e.subject_id, e.data["auto_trade"]) for e in switched] == [
        (str(a.id), False), (str(b.id), False), (str(b.id), True)]
    assert follows.set_auto_trade_all(session, world["users"]["bob"].id, False) == 0  # not bob's follows


def test_following_needs_a_connected_trading_account(session, world):
    ann = world["users"]["ann"]
    world["acct"].status = "disconnected"
    session.add(world["acct"])
    session.flush()
    with pytest.raises(ValidationError) as err:
        follows.follow(session, ann.id, world["a"].id)
    assert err.value.field == "broker_account" and "Connect a broker account" in err.value.message
    assert session.exec(select(Follow)).all() == []


@pytest.mark.parametrize("mode,value,field", [
    ("fixed_units", "-1", "sizing_value"), ("percent_equity", "150", "sizing_value"),
    ("fixed_notional", "abc", "sizing_value"), ("bogus", "1", "sizing_mode"), ("", "5", "sizing_mode"),
])
def test_bad_sizing_is_refused_on_its_field(mode, value, field):
    with pytest.raises(ValidationError) as err:
        follows.clean_sizing(mode, value)
    assert err.value.field == field


def test_outsiders_are_refused(session, world):
    users = world["users"]
    with pytest.raises(PermissionDenied):
        follows.follow(session, users["bob"].id, world["a"].id)  # not a member of Alpha
    with pytest.raises(PermissionDenied):
        follows.follow(session, users["vic"].id, world["a"].id)  # viewer only
    with pytest.raises(NotFound):
        follows.follow(session, users["ann"].id, 99_999)
    f = follows.follow(session, users["ann"].id, world["a"].id).follow
    for change in (lambda: follows.unfollow(session, users["bob"].id, f.id),
                   lambda: follows.set_auto_trade(session, users["bob"].id, f.id, False),
                   lambda: follows.set_sizing(session, users["bob"].id, f.id, "fixed_units", "1")):
        with pytest.raises(PermissionDenied):
            change()
    session.expire_all()
    row = session.get(Follow, f.id)
    assert row.auto_trade and row.sizing_mode is None
    with pytest.raises(PermissionDenied):
        follows.follow(session, users["bob"].id, world["b"].id, broker_account_id=world["acct"].id)
