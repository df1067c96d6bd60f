"""Page states called directly, as Reflex would: the right user sees data, anyone else does not."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from backend.db.models import Community, User, UserSession
from backend.services import auth
from backend.services.demo_seed import seed_demo
from state.admin import AdminState
from state.auth import AuthState
from state.community import CommunityState
from state.login import LoginState, safe_next
from state.trader import TraderOverviewState


@pytest.fixture
def db(engine, settings_env):
    """The demo world, with the app's settings pointing at this test database."""
    settings_env(DATABASE_URL=engine.url.render_as_string(hide_password=False))
    seed_demo(engine)
    return engine


@pytest.fixture
def users(db):
    with Session(db) as s:
        return {u.username: u for u in s.exec(select(User)).all()}


def signed_in(state_cls, db, user):
    state = state_cls()
    with Session(db) as s:
        state.session_token = auth.create_session(s, user.id)
        s.commit()
    return state


def redirect_target(spec) -> str | None:
    specs = spec if isinstance(spec, list) else [spec]
    for item in specs:
        args = {k._js_expr: getattr(v, "_var_value", None) for k, v in getattr(item, "args", ())}
        if {"path", "external", "replace"} <= args.keys():  # the shape of rx.redirect's event
            return args["path"]
    return None


@pytest.mark.parametrize("state_cls", [TraderOverviewState, CommunityState, AdminState])
def test_every_area_sends_anonymous_visitors_to_login(db, state_cls):
    state = state_cls()
    assert redirect_target(state.load()).startswith("/login")
    state.session_token = "forged.cookie"
    assert redirect_target(state.load()).startswith("/login")


def test_trader_overview_shows_the_users_own_money(db, users):
    state = signed_in(TraderOverviewState, db, users["dana"])
    assert state.load() is None
    assert (state.equity, state.cash, state.today_pnl, state.today_tone) == ("100,050.00", "98,100.00", "+50.00", "green")
    assert [p["symbol"] for p in state.positions] == ["AAPL"]
    assert state.latest_orders[0]["status_text"] == "Filled"
    assert state.follows[0]["provider"] == "Pat Provider"
    assert state.user_name == "Dana Host" and state.is_platform_admin and state.manages_community


def test_trader_overview_of_another_user_has_none_of_danas_data(db, users):
    state = signed_in(TraderOverviewState, db, users["sam"])
    state.load()
    assert state.positions == [] and state.latest_orders == []
    assert state.equity == "100,000.00"
    assert not state.is_platform_admin and not state.manages_community


def test_community_page_refuses_a_trader_even_with_the_communitys_id(db, users):
    with Session(db) as s:
        demo_id = s.exec(select(Community.id)).one()
    state = signed_in(CommunityState, db, users["alex"])
    state.load()
    assert "do not host" in state.error and state.members == []
    state.select_community(demo_id)
    assert "admin role" in state.error
    assert state.members == [] and state.sources == [] and state.community_name == ""


def test_community_page_shows_the_hosts_community(db, users):
    state = signed_in(CommunityState, db, users["dana"])
    state.load()
    assert state.error == ""
    assert state.community_name == "Demo Trading Club"
    assert {m["name"] for m in state.members} >= {"Alex Trader", "Pat Provider"}
    assert state.role_summary == "1 owner, 1 admin, 2 traders, 1 viewer"
    assert {s["kind"] for s in state.sources} == {"Discord", "TradingView"}


def test_admin_page_refuses_non_admins_and_shows_mrr_to_admins(db, users):
    pat = signed_in(AdminState, db, users["pat"])
    pat.load()
    assert "platform administrators" in pat.error and pat.subscriptions == [] and pat.mrr == []
    dana = signed_in(AdminState, db, users["dana"])
    dana.load()
    assert dana.error == ""
    assert dana.mrr == [{"currency": "USD", "amount": "89.83"}]
    assert dana.users_count == 5 and len(dana.subscriptions) == 3


def test_dev_login_sets_the_cookie_and_returns_to_the_requested_page(db, users):
    state = LoginState()
    assert state.load() is None
    assert state.dev_login_enabled
    assert {u["name"] for u in state.demo_users} >= {"Dana Host", "Alex Trader"}
    target = redirect_target(state.sign_in_as(users["alex"].id))
    assert target == "/trader"
    with Session(db) as s:
        assert auth.user_for_token(s, state.session_token).username == "alex"


def test_dev_login_refuses_a_non_demo_account(db):
    with Session(db) as s:
        real = User(username="someone-real")
        s.add(real)
        s.commit()
        real_id = real.id
    state = LoginState()
    assert state.sign_in_as(real_id) is None
    assert "demo users" in state.error and state.session_token == ""


def test_dev_login_does_not_exist_in_production(db, settings_env):
    settings_env(APP_ENV="production", SESSION_SECRET="s" * 40, CREDENTIAL_KEYS="k1:" + "A" * 44)
    state = LoginState()
    state.load()
    assert not state.dev_login_enabled and state.demo_users == []
    assert state.sign_in_as(1) is None and "disabled in production" in state.error


def test_sign_out_revokes_the_server_side_session(db, users):
    state = signed_in(AuthState, db, users["alex"])
    token = state.session_token
    events = state.sign_out()
    assert redirect_target(events) == "/login"
    assert state.session_token == "" and state.user_name == ""
    with Session(db) as s:
        assert auth.user_for_token(s, token) is None
        assert s.exec(select(UserSession)).one().revoked_at is not None


@pytest.mark.parametrize("value,expected", [
    ("/community", "/community"), ("/trader/orders?x=1", "/trader/orders?x=1"), (None, "/trader"),
    ("https://evil.example/", "/trader"), ("//evil.example", "/trader"), ("/\\evil", "/trader"),
    ("/login?next=/x", "/trader"), ("javascript:alert(1)", "/trader"),
])
def test_login_only_returns_to_local_pages(value, expected):
    assert safe_next(value) == expected


def at(state, url: str):
    """Put the state on a page, as Reflex does from the browser's router data."""
    from reflex.istate.data import RouterData

    state.router = RouterData.from_router_data({"pathname": url.split("?")[0], "asPath": url, "query": {},
                                                "headers": {}})
    return state


@pytest.mark.parametrize("reason,text", [("denied", "cancelled"), ("state", "not started in this browser"),
                                         ("unreachable", "could not be reached"), ("odd", "did not complete")])
def test_login_page_explains_a_failed_discord_sign_in(db, reason, text):
    state = at(LoginState(), f"/login?error={reason}")
    state.load()
    assert text in state.error


def test_login_page_offers_discord_only_when_configured_and_keeps_next(db, settings_env):
    state = at(LoginState(), "/login?next=/community")
    state.load()
    assert not state.discord_enabled and state.error == ""
    settings_env(DISCORD_CLIENT_ID="123", DISCORD_CLIENT_SECRET="shh")
    state.load()
    assert state.discord_enabled
    assert state.discord_href == "/auth/discord/login?next=/community"


def test_admin_page_shows_each_worker_alive_or_not(db, users):
    from datetime import timedelta

    import sqlalchemy as sa

    from backend.db.types import utcnow
    from backend.workers.heartbeat import beat

    beat(db, "bot", {"connected": False, "guilds": 1, "source_channels": 2, "catching_up": 1})
    beat(db, "execution", {"retries_pending": 3})
    with db.begin() as conn:
        conn.execute(sa.text("UPDATE worker_heartbeats SET last_seen = :t WHERE name = 'execution'"),
                     {"t": utcnow() - timedelta(minutes=5)})
    dana = signed_in(AdminState, db, users["dana"])
    dana.load()
    by_name = {w["name"]: w for w in dana.workers}
    assert by_name["Bot"]["alive"] == "Running" and by_name["Execution"]["alive"] == "Not responding"
    assert by_name["Bot"]["details"] == ("disconnected from Discord, 1 server(s), 2 signal channel(s), "
                                         "catching up 1 channel(s), no message yet")
    assert by_name["Execution"]["details"] == "3 retry(ies) pending"
    pat = signed_in(AdminState, db, users["pat"])
    pat.load()
    assert pat.workers == []
