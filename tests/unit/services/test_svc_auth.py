"""Server-side sessions: the cookie is only a signed id; the table decides."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

from backend.db.models import User, UserSession
from backend.db.types import utcnow
from backend.errors import PermissionDenied
from backend.services import auth
from backend.services.demo_seed import seed_demo


@pytest.fixture
def users(session, engine, settings_env):
    seed_demo(engine)
    return {u.username: u for u in session.exec(select(User)).all()}


def test_a_session_resolves_to_its_user_until_revoked(session, users):
    token = auth.create_session(session, users["alex"].id)
    session.commit()
    assert auth.user_for_token(session, token).username == "alex"
    assert auth.revoke(session, token) is True
    session.commit()
    assert auth.user_for_token(session, token) is None
    assert auth.revoke(session, token) is False, "revoking twice reports nothing revoked"


def test_the_cookie_holds_a_signed_random_id_not_the_user_id(session, users):
    token = auth.create_session(session, users["alex"].id)
    session_id, _, signature = token.rpartition(".")
    assert len(session_id) >= 43 and signature
    row = session.get(UserSession, session_id)
    assert row.user_id == users["alex"].id
    assert row.expires_at - row.created_at == auth.SESSION_LIFETIME


@pytest.mark.parametrize("tamper", [
    lambda t: t + "x",
    lambda t: t.rpartition(".")[0],
    lambda t: ("B" if t[0] == "A" else "A") + t[1:],  # a different first character, always
    lambda t: "",
    lambda t: "not-a-token",
])
def test_a_forged_or_truncated_cookie_is_nobody(session, users, tamper):
    token = auth.create_session(session, users["alex"].id)
    assert auth.user_for_token(session, tamper(token)) is None


def test_a_cookie_signed_with_another_secret_is_refused(session, users, settings_env):
    token = auth.create_session(session, users["alex"].id)
    session.commit()
    settings_env(SESSION_SECRET="a-completely-different-session-secret")
    assert auth.user_for_token(session, token) is None


def test_an_expired_session_is_nobody(session, users):
    past = utcnow() - auth.SESSION_LIFETIME - timedelta(minutes=1)
    token = auth.create_session(session, users["alex"].id, now=past)
    session.commit()
    assert auth.user_for_token(session, token) is None
    assert auth.user_for_token(session, token, now=past + timedelta(days=1)).username == "alex"


def test_revoke_all_signs_a_user_out_everywhere(session, users):
    tokens = [auth.create_session(session, users["sam"].id) for _ in range(3)]
    other = auth.create_session(session, users["alex"].id)
    assert auth.revoke_all_for_user(session, users["sam"].id) == 3
    session.commit()
    assert all(auth.user_for_token(session, t) is None for t in tokens)
    assert auth.user_for_token(session, other).username == "alex"


def test_dev_login_lists_and_accepts_only_demo_users(session, users):
    listed = {u["username"] for u in auth.dev_login_users(session)}
    assert listed == {"dana", "pat", "alex", "sam", "riley"}
    real = User(username="real-person", is_demo=False)
    session.add(real)
    session.commit()
    assert "real-person" not in {u["username"] for u in auth.dev_login_users(session)}
    with pytest.raises(PermissionDenied, match="demo users"):
        auth.dev_login(session, real.id)
    token = auth.dev_login(session, users["dana"].id)
    assert auth.user_for_token(session, token).username == "dana"


def test_dev_login_is_refused_in_production(session, users, settings_env, engine):
    settings_env(APP_ENV="production", SESSION_SECRET="s" * 40, CREDENTIAL_KEYS="k1:" + "A" * 44,
                 DATABASE_URL=engine.url.render_as_string(hide_password=False))
    assert auth.dev_login_users(session) == []
    with pytest.raises(PermissionDenied, match="disabled in production"):
        auth.dev_login(session, users["dana"].id)
