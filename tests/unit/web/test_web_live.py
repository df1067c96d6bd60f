"""Live updates: a bus event makes the open page's state reload from the database."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from types import MethodType

import pytest
from sqlmodel import Session, select

from backend.db.models import BrokerAccount, Order, User
from backend.db.types import utcnow
from backend.events import RESYNC, InProcessBus, set_bus, user_topic
from backend.services import auth
from backend.services.demo_seed import seed_demo
from state import live
from state.trader import TraderOverviewState


class Proxy:
    """Stands in for Reflex's StateProxy (our seam): ``async with self`` and methods bound to the proxy."""

    def __init__(self, state):
        object.__setattr__(self, "_state", state)

    def __getattr__(self, name):
        value = getattr(self._state, name)
        if isinstance(value, MethodType):
            return MethodType(value.__func__, self)
        return value

    def __setattr__(self, name, value):
        setattr(self._state, name, value)

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        return False


@pytest.fixture
def bus(monkeypatch):
    # Another test may have built the app; no websocket holds "token" here, so say the client is connected.
    monkeypatch.setattr(live, "client_connected", lambda token: True)
    b = InProcessBus()
    set_bus(b)
    yield b
    set_bus(None)


async def wait_for(check, timeout=3.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "state did not reload"
        await asyncio.sleep(0.01)


def alex_overview(engine, settings_env) -> tuple[int, TraderOverviewState]:
    """The demo world, and an Overview state signed in as the demo follower Alex (not loaded yet)."""
    settings_env(DATABASE_URL=engine.url.render_as_string(hide_password=False))
    seed_demo(engine)
    with Session(engine) as s:
        alex_id = s.exec(select(User.id).where(User.username == "alex")).one()
        state = TraderOverviewState()
        state.session_token = auth.create_session(s, alex_id)
        s.commit()
    return alex_id, state


async def test_bus_events_reload_the_overview(engine, settings_env, bus):
    alex_id, state = alex_overview(engine, settings_env)
    state.load()
    assert state.latest_orders and state.equity != "stale"
    state._live_owner = "me"
    task = asyncio.create_task(TraderOverviewState._live_loop(Proxy(state), alex_id, "token", "", "me"))
    await asyncio.sleep(0.05)  # subscribed
    state.latest_orders = []
    bus.publish(user_topic(alex_id), {"type": "order.updated", "order_id": 1})
    await wait_for(lambda: state.latest_orders != [])
    state.equity = "stale"
    bus.publish(user_topic(alex_id), {"type": "position.updated"})
    await wait_for(lambda: state.equity != "stale")
    # Another user's events never reach this page.
    state.equity = "stale"
    bus.publish(user_topic(alex_id + 1000), {"type": "position.updated"})
    await asyncio.sleep(1.2)
    assert state.equity == "stale"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert state._live_owner == ""  # the claim is released when the task ends


async def test_portfolio_refresh_is_throttled_to_one_per_second(monkeypatch, bus):
    calls: list[tuple[bool, bool]] = []

    class Fake:
        _live_owner = "me"
        live_portfolio = True
        router = type("R", (), {"url": type("U", (), {"path": ""})()})()
        _push = live.LiveUpdates._push

        def _live_apply(self, user_id, orders, portfolio, check_session=True):
            calls.append((orders, portfolio))
            return True

    fake = Proxy(Fake())
    task = asyncio.create_task(live.LiveUpdates._live_loop(fake, 7, "token", "", "me"))
    await asyncio.sleep(0.05)
    for _ in range(5):
        bus.publish(user_topic(7), {"type": "position.updated"})
        await asyncio.sleep(0.05)
    bus.publish(user_topic(7), {"type": "order.updated"})
    await asyncio.sleep(1.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    portfolio_refreshes = [c for c in calls if c[1]]
    assert len(portfolio_refreshes) == 2  # the catch-up at once; the five events coalesced one second later
    assert any(o and not p for o, p in calls)  # the order event was not held back


async def test_a_newer_task_for_the_same_client_ends_the_older_one(bus):
    """After a reconnect the new ``start_live`` claims the client; the old task stops without reloading."""
    calls = []

    class Fake:
        _live_owner = "old"
        live_portfolio = True
        router = type("R", (), {"url": type("U", (), {"path": "/trader"})()})()
        _push = live.LiveUpdates._push

        def _live_apply(self, user_id, orders, portfolio, check_session=True):
            calls.append(self._live_owner)
            return True

    state = Fake()
    task = asyncio.create_task(live.LiveUpdates._live_loop(Proxy(state), 7, "token", "/trader", "old"))
    await wait_for(lambda: calls == ["old"])  # the catch-up read
    bus.publish(user_topic(7), {"type": "order.updated"})
    await wait_for(lambda: calls == ["old", "old"])
    state._live_owner = "new"  # what start_live does for the reconnected client
    bus.publish(user_topic(7), {"type": "order.updated"})
    await asyncio.wait_for(task, 2)  # ended by itself
    assert calls == ["old", "old"]
    assert state._live_owner == "new"  # the old task does not release the new one's claim


async def test_a_revoked_session_gets_no_more_pushes(engine, settings_env, bus, monkeypatch):
    """The cookie is re-checked at most every CHECK_INTERVAL seconds: within that, a revoked session's
    task ends and reloads nothing more."""
    monkeypatch.setattr(live, "CHECK_INTERVAL", 0.2)
    alex_id, state = alex_overview(engine, settings_env)
    state._live_owner = "me"
    task = asyncio.create_task(TraderOverviewState._live_loop(Proxy(state), alex_id, "token", "", "me"))
    await wait_for(lambda: state.latest_orders != [])  # the catch-up read
    state.latest_orders = []
    bus.publish(user_topic(alex_id), {"type": "order.updated"})
    await wait_for(lambda: state.latest_orders != [])
    with Session(engine) as s:
        assert auth.revoke(s, state.session_token)
        s.commit()
    state.latest_orders = []
    await asyncio.sleep(0.3)
    bus.publish(user_topic(alex_id), {"type": "order.updated"})
    await asyncio.wait_for(task, 2)  # the task ends: the cookie no longer names a session
    assert state.latest_orders == []


async def test_a_failed_push_is_retried_and_the_task_keeps_running(bus):
    """A push that raises (a Redis state lock that expired, a database hiccup) is logged and retried."""
    calls = []

    class Fake:
        _live_owner = "me"
        live_portfolio = False  # an orders-only page
        router = type("R", (), {"url": type("U", (), {"path": ""})()})()
        _push = live.LiveUpdates._push

        def _live_apply(self, user_id, orders, portfolio, check_session=True):
            calls.append((orders, portfolio))
            if len(calls) == 1:
                raise RuntimeError("Lock expired")
            return True

    task = asyncio.create_task(live.LiveUpdates._live_loop(Proxy(Fake()), 7, "token", "", "me"))
    await wait_for(lambda: len(calls) == 1)  # the catch-up read at once; it fails
    await wait_for(lambda: len(calls) == 2)  # retried about a second later without a new event
    assert calls == [(True, False), (True, False)]
    bus.publish(user_topic(7), {"type": "position.updated"})  # not shown on this page: no reload at all
    await asyncio.sleep(0.2)
    assert len(calls) == 2 and not task.done()
    bus.publish(user_topic(7), {"type": "order.updated"})
    await wait_for(lambda: len(calls) == 3)
    assert calls[-1] == (True, False)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_classify():
    assert live.classify(['{"type":"order.updated"}']) == (True, False)
    assert live.classify(['{"type":"decision.created"}']) == (False, True)  # its order's event follows
    assert live.classify(['{"type":"position.updated"}', "not json"]) == (False, True)
    assert live.classify([]) == (False, False)
    assert live.classify([RESYNC]) == (True, True)  # the bus lost events: reload everything


async def test_a_change_committed_before_the_subscription_is_shown_at_once(engine, settings_env, bus):
    """The page loads, an order is committed and published before the live task subscribes (so no queue
    gets the event): the task's first push reads it anyway, without waiting for another event."""
    alex_id, state = alex_overview(engine, settings_env)
    state.load()
    shown = {r["id"] for r in state.latest_orders}
    with Session(engine) as s:
        account = s.exec(select(BrokerAccount).where(BrokerAccount.user_id == alex_id)).first()
        order = Order(client_order_id="between-load-and-live", user_id=alex_id, broker_account_id=account.id,
                      symbol="NVDA", side="buy", quantity=Decimal(1), status="filled", created_at=utcnow())
        s.add(order)
        s.commit()
        new_id = str(order.id)
    bus.publish(user_topic(alex_id), {"type": "order.updated", "order_id": int(new_id)})  # nobody listens yet
    assert new_id not in shown
    state._live_owner = "me"
    task = asyncio.create_task(TraderOverviewState._live_loop(Proxy(state), alex_id, "token", "", "me"))
    await wait_for(lambda: new_id in {r["id"] for r in state.latest_orders}, timeout=1.0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
