"""Discord sign-in over plain HTTP: the OAuth2 redirects cannot travel over Reflex's websocket.

* ``GET /auth/discord/login?next=/page``: sets the signed, short-lived flow
  cookie (HttpOnly, only sent to ``/auth/discord``) and redirects to Discord.
* ``GET /auth/discord/callback?code&state``: checks the state against the
  flow cookie, exchanges the code, signs the user in and sets the session
  cookie, then returns to ``next``.  Any failure returns to
  ``/login?error=<reason>``, never to an error page.

The session cookie is the one ``state.auth.AuthState`` reads with
``rx.Cookie`` (same name, path and lifetime).  It cannot be HttpOnly for
that reason: Reflex reads cookies in the browser and sends them with the
websocket's hydrate event.  What it holds is only a signed random id; the
session itself lives in ``user_sessions`` and sign-out revokes it there.
"""

from __future__ import annotations

import logging
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse
from starlette.routing import Route

from backend.config import get_settings
from backend.db.session import session_scope
from backend.services import auth, discord_login
from backend.services.discord_login import DiscordLoginError
from pages import routes

log = logging.getLogger(__name__)
FLOW_COOKIE_PATH = "/auth/discord"


def _secure() -> bool:
    return get_settings().public_url.startswith("https://")


def _to_login(reason: str, next_path: str | None = None) -> RedirectResponse:
    query = {"error": reason}
    if next_path:
        query["next"] = next_path
    response = RedirectResponse(f"{routes.LOGIN}?{urlencode(query)}", status_code=302)
    response.delete_cookie(discord_login.FLOW_COOKIE, path=FLOW_COOKIE_PATH)
    return response


async def discord_start(request: Request) -> RedirectResponse:
    try:
        start = discord_login.start_login(request.query_params.get("next", ""))
    except DiscordLoginError as exc:
        return _to_login(exc.reason)
    response = RedirectResponse(start.authorize_url, status_code=302)
    response.set_cookie(discord_login.FLOW_COOKIE, start.flow_cookie, max_age=discord_login.FLOW_MAX_AGE,
                        path=FLOW_COOKIE_PATH, httponly=True, samesite="lax", secure=_secure())
    return response


async def discord_callback(request: Request) -> RedirectResponse:
    params = request.query_params
    if params.get("error"):
        return _to_login("denied")
    try:
        next_path = discord_login.check_state(request.cookies.get(discord_login.FLOW_COOKIE), params.get("state"))
        code = params.get("code")
        if not code:
            raise DiscordLoginError("refused", "Discord sent no authorization code.")
        profile = await discord_login.fetch_profile(code)
        token = await run_in_threadpool(_sign_in, profile, request.headers.get("user-agent"))
    except DiscordLoginError as exc:
        log.info("discord sign-in failed: %s", exc.reason)
        return _to_login(exc.reason)
    response = RedirectResponse(next_path, status_code=302)
    response.delete_cookie(discord_login.FLOW_COOKIE, path=FLOW_COOKIE_PATH)
    response.set_cookie(auth.COOKIE_NAME, token, max_age=int(auth.SESSION_LIFETIME.total_seconds()), path="/",
                        httponly=False, samesite="lax", secure=_secure())
    return response


def _sign_in(profile: discord_login.DiscordProfile, user_agent: str | None) -> str:
    with session_scope() as session:
        _user, token = discord_login.sign_in(session, profile, user_agent=user_agent)
    return token


def auth_routes() -> list[Route]:
    return [
        Route(routes.DISCORD_LOGIN, discord_start, methods=["GET"]),
        Route(routes.DISCORD_CALLBACK, discord_callback, methods=["GET"]),
    ]
