"""Sign in with Discord: the OAuth2 authorization-code flow, with authlib.

1. ``start_login(next)`` builds Discord's authorize URL with a random
   ``state`` and returns it with a *flow cookie*: the state and the page to
   return to, signed and timestamped (itsdangerous) so it cannot be forged
   and expires after ten minutes.  Nothing is stored server-side before the
   user comes back.
2. Discord sends the browser to ``/auth/discord/callback?code&state``.
   ``check_state`` compares the state with the flow cookie (constant time):
   a callback that this browser did not start (login CSRF) is refused.
3. ``fetch_profile(code)`` exchanges the code at the token endpoint and
   reads ``/users/@me``; every failure becomes a ``DiscordLoginError`` with a
   short ``reason`` code the login page turns into a sentence.
4. ``sign_in(session, profile)`` finds or creates the user by Discord id,
   keeps the OAuth token encrypted by the credential vault
   (``oauth_tokens``), audits the login and opens a server-side session
   (``backend.services.auth``); the caller puts the returned value in the
   session cookie.

The endpoints come from settings (``DISCORD_AUTHORIZE_URL``,
``DISCORD_TOKEN_URL``, ``DISCORD_API_BASE``), which is how the tests point
the flow at a loopback fake of Discord.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlmodel import Session, select

from backend.config import get_settings
from backend.db.models import OAuthToken, User
from backend.db.types import utcnow
from backend.errors import TradeExecutorError
from backend.services import auth

CALLBACK_PATH = "/auth/discord/callback"
FLOW_COOKIE = "dte_oauth"
FLOW_MAX_AGE = 600
SCOPES = "identify email"
HTTP_TIMEOUT = 10.0
_SALT = "dte.discord-oauth-flow"


class DiscordLoginError(TradeExecutorError):
    """The sign-in did not complete; ``reason`` is a short code for the login page."""

    code = "discord_login"

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class LoginStart:
    authorize_url: str
    flow_cookie: str


@dataclass(frozen=True)
class DiscordProfile:
    discord_id: str
    username: str
    display_name: str | None
    email: str | None
    avatar_url: str | None
    token: dict[str, Any]


def is_configured() -> bool:
    s = get_settings()
    return bool(s.discord_client_id and s.discord_client_secret)


def redirect_uri() -> str:
    return get_settings().public_url.rstrip("/") + CALLBACK_PATH


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(get_settings().session_secret, salt=_SALT)


def _client(**kwargs):
    from authlib.integrations.httpx_client import AsyncOAuth2Client

    s = get_settings()
    return AsyncOAuth2Client(client_id=s.discord_client_id, client_secret=s.discord_client_secret,
                             scope=SCOPES, redirect_uri=redirect_uri(), timeout=HTTP_TIMEOUT, **kwargs)


def start_login(next_path: str) -> LoginStart:
    if not is_configured():
        raise DiscordLoginError("not_configured", "Sign-in with Discord is not set up on this server.")
    state = secrets.token_urlsafe(24)
    client = _client()
    url, _ = client.create_authorization_url(get_settings().discord_authorize_url, state=state, prompt="none")
    cookie = _serializer().dumps({"state": state, "next": auth.safe_next_path(next_path)})
    return LoginStart(authorize_url=url, flow_cookie=cookie)


def check_state(flow_cookie: str | None, state: str | None) -> str:
    """The page to return to, if ``state`` matches this browser's flow cookie."""
    if not flow_cookie or not state:
        raise DiscordLoginError("state", "The sign-in link expired or was opened in another browser. Try again.")
    try:
        flow = _serializer().loads(flow_cookie, max_age=FLOW_MAX_AGE)
    except SignatureExpired:
        raise DiscordLoginError("expired", "The sign-in took longer than 10 minutes. Try again.") from None
    except BadSignature:
        raise DiscordLoginError("state", "The sign-in link was not started here. Try again.") from None
    if not isinstance(flow, dict) or not secrets.compare_digest(str(flow.get("state", "")), state):
        raise DiscordLoginError("state", "The sign-in link was not started here. Try again.")
    return auth.safe_next_path(flow.get("next"))


def _avatar_url(user: dict[str, Any]) -> str | None:
    if not user.get("avatar"):
        return None
    return f"https://cdn.discordapp.com/avatars/{user['id']}/{user['avatar']}.png"


async def fetch_profile(code: str) -> DiscordProfile:
    """Exchange the authorization code and read the Discord user it belongs to."""
    from authlib.integrations.base_client import OAuthError
    import httpx

    s = get_settings()
    try:
        async with _client() as client:
            token = await client.fetch_token(s.discord_token_url, code=code, grant_type="authorization_code")
            response = await client.get(f"{s.discord_api_base.rstrip('/')}/users/@me")
    except OAuthError as exc:
        raise DiscordLoginError("refused", f"Discord refused the sign-in ({exc.error}). Try again.") from None
    except httpx.HTTPError:
        raise DiscordLoginError("unreachable", "Discord could not be reached. Try again in a moment.") from None
    if response.status_code != 200:
        raise DiscordLoginError("refused", f"Discord did not return your profile (HTTP {response.status_code}).")
    try:
        user = response.json()
        discord_id = str(int(user["id"]))
    except (ValueError, KeyError, TypeError):
        raise DiscordLoginError("refused", "Discord returned a profile we could not read.") from None
    return DiscordProfile(
        discord_id=discord_id,
        username=str(user.get("username") or discord_id)[:100],
        display_name=(user.get("global_name") or None) and str(user["global_name"])[:100],
        email=str(user["email"])[:255] if user.get("email") and user.get("verified") else None,
        avatar_url=_avatar_url(user),
        token={k: token.get(k) for k in ("access_token", "refresh_token", "token_type", "scope", "expires_at")},
    )


def store_token(session: Session, user_id: int, token: dict[str, Any], now: datetime) -> None:
    from backend.security.vault import Vault, seal_oauth_token

    row = session.exec(select(OAuthToken).where(OAuthToken.user_id == user_id,
                                                OAuthToken.provider == "discord")).first()
    row = row or OAuthToken(user_id=user_id, provider="discord", token_enc="")
    expires_at = token.get("expires_at")
    row.expires_at = datetime.fromtimestamp(expires_at, tz=now.tzinfo) if isinstance(expires_at, (int, float)) \
        else now + timedelta(days=7)
    row.updated_at = now
    seal_oauth_token(session, row, token, Vault.from_settings(get_settings()))
    session.add(row)


def sign_in(session: Session, profile: DiscordProfile, *, now: datetime | None = None,
            user_agent: str | None = None) -> tuple[User, str]:
    """Find or create the user for this Discord account; returns (user, session cookie value)."""
    from backend import audit

    now = now or utcnow()
    user = session.exec(select(User).where(User.discord_id == profile.discord_id)).first()
    created = user is None
    if created:
        user = User(discord_id=profile.discord_id, username=profile.username, created_at=now)
    user.username = profile.username
    user.display_name = profile.display_name or user.display_name
    user.avatar_url = profile.avatar_url
    if profile.email:
        user.email = profile.email
    session.add(user)
    session.flush()
    store_token(session, user.id, profile.token, now)
    audit.record(session, "auth.discord_login", subject_type="user", subject_id=user.id, actor_user_id=user.id,
                 data={"new_user": created})
    return user, auth.create_session(session, user.id, now=now, user_agent=user_agent)
