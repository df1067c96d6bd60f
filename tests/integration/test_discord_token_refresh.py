"""Discord OAuth tokens are refreshed before expiry: authlib against the loopback fake of Discord."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import pytest
from sqlmodel import Session, select

from backend.config import get_settings
from backend.db.models import AuditEvent, OAuthToken
from backend.db.types import utcnow
from backend.security.vault import Vault, open_oauth_token
from backend.services import discord_login
from backend.services.discord_tokens import refresh_expiring
from backend.workers.jobs import JOBS, run_safely
from fakes.fake_discord_oauth import FakeDiscordOAuth, running

PUBLIC = "http://testserver"


@pytest.fixture
def discord():
    with running(FakeDiscordOAuth(redirect_uri=PUBLIC + discord_login.CALLBACK_PATH, expires_in=3600)) as fake:
        yield fake


@pytest.fixture
def db(engine, settings_env, discord):
    settings_env(DATABASE_URL=engine.url.render_as_string(hide_password=False), PUBLIC_URL=PUBLIC, **discord.env())
    return engine


def sign_in_through_discord(engine, discord) -> int:
    """The real sign-in: consent on the fake, code exchange by authlib, token sealed in the vault."""
    start = discord_login.start_login("/trader")
    consent = httpx.get(start.authorize_url, follow_redirects=False)
    code = httpx.URL(consent.headers["location"]).params["code"]
    profile = asyncio.run(discord_login.fetch_profile(code))
    with Session(engine, expire_on_commit=False) as s:
        user, _cookie = discord_login.sign_in(s, profile)
        s.commit()
        return user.id


def stored(engine, user_id: int) -> tuple[OAuthToken | None, dict]:
    with Session(engine) as s:
        row = s.exec(select(OAuthToken).where(OAuthToken.user_id == user_id)).first()
        return row, (open_oauth_token(row, Vault.from_settings(get_settings())) if row else {})


def test_a_token_about_to_expire_is_refreshed_and_rotated(db, discord):
    user_id = sign_in_through_discord(db, discord)
    before, old = stored(db, user_id)
    assert before.expires_at - utcnow() < timedelta(hours=2)      # the fake issues one-hour tokens
    discord.expires_in = 7 * 24 * 3600                           # ... and a week-long one on refresh

    report = refresh_expiring(db)

    assert report.refreshed == [user_id] and not report.revoked and not report.failed
    after, new = stored(db, user_id)
    assert new["access_token"] != old["access_token"] and new["refresh_token"] != old["refresh_token"]
    assert after.expires_at - before.expires_at > timedelta(days=6)
    assert new["access_token"] not in after.token_enc
    me = httpx.get(f"{discord.base_url}/api/v10/users/@me", headers={"Authorization": f"Bearer {new['access_token']}"})
    assert me.status_code == 200 and me.json()["username"] == "jordan"
    assert discord.token_requests[-1]["grant_type"] == "refresh_token"
    assert old["refresh_token"] not in discord.refresh_tokens, "Discord rotates refresh tokens"
    with Session(db) as s:
        assert s.exec(select(AuditEvent).where(AuditEvent.action == "auth.discord_token_refreshed")).one().subject_id \
            == str(user_id)


def test_a_token_far_from_expiry_is_left_alone(db, discord):
    user_id = sign_in_through_discord(db, discord)
    _, old = stored(db, user_id)
    report = refresh_expiring(db, ahead=timedelta(minutes=5))
    assert (report.refreshed, report.revoked, report.failed) == ([], [], [])
    assert stored(db, user_id)[1] == old
    assert [r["grant_type"] for r in discord.token_requests] == ["authorization_code"]


def test_a_revoked_refresh_token_removes_the_stored_token(db, discord):
    user_id = sign_in_through_discord(db, discord)
    discord.refresh_tokens.clear()                               # the member de-authorised the app
    report = refresh_expiring(db)
    assert report.revoked == [user_id] and not report.refreshed
    assert stored(db, user_id)[0] is None
    with Session(db) as s:
        event = s.exec(select(AuditEvent).where(AuditEvent.action == "auth.discord_token_revoked")).one()
        assert event.data["reason"] == "invalid_grant"


def test_discord_unreachable_keeps_the_token_for_the_next_run(db, discord, settings_env):
    user_id = sign_in_through_discord(db, discord)
    before, old = stored(db, user_id)
    settings_env(DISCORD_TOKEN_URL="http://127.0.0.1:9/api/oauth2/token")   # nothing listens on port 9
    report = refresh_expiring(db)
    assert report.failed == [user_id] and not report.refreshed and not report.revoked
    after, kept = stored(db, user_id)
    assert kept == old and after.expires_at == before.expires_at


def test_the_scheduler_runs_the_refresh_hourly(db, discord):
    user_id = sign_in_through_discord(db, discord)
    job = next(j for j in JOBS if j.name == "discord_tokens")
    assert job.seconds == 3600
    _, old = stored(db, user_id)
    run_safely(job, db)
    assert stored(db, user_id)[1]["access_token"] != old["access_token"]
