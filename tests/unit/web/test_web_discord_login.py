"""Discord sign-in end to end over HTTP: the real routes, authlib, and a loopback fake of Discord."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlmodel import Session, select
from starlette.testclient import TestClient

from backend.db.models import AuditEvent, OAuthToken, User
from backend.services import auth, discord_login
from backend.services.demo_seed import seed_demo
from fakes.fake_discord_oauth import DEFAULT_USER, FakeDiscordOAuth, running

PUBLIC = "http://testserver"


@pytest.fixture
def discord():
    with running(FakeDiscordOAuth(redirect_uri=PUBLIC + discord_login.CALLBACK_PATH)) as fake:
        yield fake


@pytest.fixture
def db(engine, settings_env, discord):
    settings_env(DATABASE_URL=engine.url.render_as_string(hide_password=False), PUBLIC_URL=PUBLIC,
                 **discord.env())
    seed_demo(engine)
    return engine


@pytest.fixture
def client(reflex_asgi, db):
    with TestClient(reflex_asgi, base_url=PUBLIC, follow_redirects=False) as c:
        yield c


def start(client, next_path="/trader/orders") -> str:
    """Begin the flow; returns Discord's answer (the callback URL) after the consent screen."""
    r = client.get("/auth/discord/login", params={"next": next_path})
    assert r.status_code == 302
    assert discord_login.FLOW_COOKIE in r.cookies
    consent = httpx.get(r.headers["location"], follow_redirects=False)
    assert consent.status_code == 302, consent.text
    return consent.headers["location"]


def callback(client, url: str):
    parts = urlsplit(url)
    assert parts.path == discord_login.CALLBACK_PATH
    return client.get(f"{parts.path}?{parts.query}")


def login_error(response) -> str:
    assert response.status_code == 302
    location = urlsplit(response.headers["location"])
    assert location.path == "/login"
    return parse_qs(location.query)["error"][0]


def test_a_new_discord_user_is_created_and_signed_in(client, db, discord):
    r = callback(client, start(client))
    assert (r.status_code, r.headers["location"]) == (302, "/trader/orders")
    token = r.cookies[auth.COOKIE_NAME]
    set_cookie = r.headers.get_list("set-cookie")
    assert any(c.startswith(f"{auth.COOKIE_NAME}=") and "SameSite=lax" in c and "Path=/" in c for c in set_cookie)
    with Session(db) as s:
        user = auth.user_for_token(s, token)
        assert (user.discord_id, user.username, user.display_name) == (DEFAULT_USER["id"], "jordan", "Jordan Discord")
        assert user.email == "jordan@example.com" and not user.is_demo and user.platform_role == "user"
        stored = s.exec(select(OAuthToken).where(OAuthToken.user_id == user.id)).one()
        access = next(iter(discord.tokens))
        assert access not in stored.token_enc, "the Discord token is stored encrypted"
        assert s.exec(select(AuditEvent).where(AuditEvent.action == "auth.discord_login")).one().actor_user_id == user.id
    [grant] = discord.token_requests
    assert grant["grant_type"] == "authorization_code" and grant["redirect_uri"] == PUBLIC + "/auth/discord/callback"


def test_signing_in_again_reuses_the_account_and_refreshes_the_profile(client, db, discord):
    callback(client, start(client))
    discord.user["global_name"] = "Jordan Renamed"
    r = callback(client, start(client))
    with Session(db) as s:
        [user] = s.exec(select(User).where(User.discord_id == DEFAULT_USER["id"])).all()
        assert user.display_name == "Jordan Renamed"
        assert auth.user_for_token(s, r.cookies[auth.COOKIE_NAME]).id == user.id
        assert len(s.exec(select(OAuthToken).where(OAuthToken.user_id == user.id)).all()) == 1


def test_a_callback_this_browser_did_not_start_is_refused(client, db, discord):
    url = start(client)
    client.cookies.clear()  # the victim's browser never started this flow: login CSRF
    assert login_error(callback(client, url)) == "state"


def test_a_tampered_state_is_refused(client, discord):
    url = start(client)
    assert login_error(callback(client, url.replace("state=", "state=x"))) == "state"


def test_a_code_works_once(client, discord):
    url = start(client)
    flow = client.cookies.get(discord_login.FLOW_COOKIE)
    assert callback(client, url).headers["location"] == "/trader/orders"
    assert discord_login.FLOW_COOKIE not in client.cookies, "the flow cookie is spent after the callback"
    client.cookies.set(discord_login.FLOW_COOKIE, flow, path="/auth/discord")  # a replay with the old cookie
    assert login_error(callback(client, url)) == "refused"


def test_cancelling_on_discord_comes_back_with_a_message(client, discord):
    discord.deny = True
    assert login_error(callback(client, start(client))) == "denied"


def test_a_refused_code_exchange_is_reported(client, discord):
    url = start(client)
    discord.codes.clear()  # Discord no longer knows the code
    assert login_error(callback(client, url)) == "refused"


def test_discord_down_is_reported(client, discord, settings_env):
    url = start(client)
    settings_env(DISCORD_TOKEN_URL="http://127.0.0.1:1/api/oauth2/token")
    assert login_error(callback(client, url)) == "unreachable"


def test_not_configured_sends_back_to_login(client, settings_env):
    settings_env(DISCORD_CLIENT_ID="", DISCORD_CLIENT_SECRET="")
    assert login_error(client.get("/auth/discord/login")) == "not_configured"


def test_next_is_kept_local(client, discord):
    r = callback(client, start(client, next_path="https://evil.example/"))
    assert r.headers["location"] == "/trader"


def test_the_flow_cookie_is_httponly_and_scoped_to_the_callback(client):
    r = client.get("/auth/discord/login")
    [flow] = [c for c in r.headers.get_list("set-cookie") if c.startswith(discord_login.FLOW_COOKIE)]
    assert "HttpOnly" in flow and "Path=/auth/discord" in flow and "Max-Age=600" in flow


def test_routes_module_and_service_agree_on_the_callback_path():
    from pages import routes

    assert routes.DISCORD_CALLBACK == discord_login.CALLBACK_PATH
