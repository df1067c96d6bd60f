"""A loopback fake of Discord's OAuth2 endpoints, speaking Discord's wire format.

* ``GET  /oauth2/authorize``  -- the consent screen, already answered: it
  redirects to ``redirect_uri`` with ``code`` and ``state`` (or with
  ``error=access_denied`` when ``deny`` is set), after checking the client
  id and that the redirect URI is the registered one, as Discord does.
* ``POST /api/oauth2/token``  -- ``authorization_code`` grant (a code works
  once, for the redirect URI it was issued to) and ``refresh_token`` grant
  (a refresh token works once: Discord rotates it); client credentials by
  HTTP Basic or in the form body.  Errors are Discord's JSON
  (``{"error": "invalid_grant", "error_description": ...}``).
* ``GET  /api/v10/users/@me`` -- the user behind a Bearer token.

It runs in its own thread with its own event loop (``running()``), because
the code under test is reached through Starlette's synchronous TestClient
or a separate browser and app process; either would block a fake served on
the test's own loop.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

CLIENT_ID = "1100000000000000001"
CLIENT_SECRET = "fake-discord-client-secret"

DEFAULT_USER = {
    "id": "80351110224678912", "username": "jordan", "global_name": "Jordan Discord", "discriminator": "0",
    "avatar": "8342729096ea3675442027381ff50dfe", "email": "jordan@example.com", "verified": True,
    "locale": "en-US", "mfa_enabled": False, "flags": 0, "public_flags": 0,
}


@dataclass
class FakeDiscordOAuth:
    redirect_uri: str = ""
    user: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_USER))
    deny: bool = False
    base_url: str = ""
    codes: dict[str, str] = field(default_factory=dict)      # code -> redirect_uri
    tokens: dict[str, dict] = field(default_factory=dict)    # access token -> user
    refresh_tokens: dict[str, dict] = field(default_factory=dict)  # refresh token -> user
    expires_in: int = 604800
    token_requests: list[dict[str, str]] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        """Settings that point the product at this fake."""
        return {
            "DISCORD_CLIENT_ID": CLIENT_ID, "DISCORD_CLIENT_SECRET": CLIENT_SECRET,
            "DISCORD_AUTHORIZE_URL": f"{self.base_url}/oauth2/authorize",
            "DISCORD_TOKEN_URL": f"{self.base_url}/api/oauth2/token",
            "DISCORD_API_BASE": f"{self.base_url}/api/v10",
        }

    # ------------------------------------------------------------------ handlers
    async def authorize(self, request: web.Request) -> web.Response:
        q = request.query
        if q.get("client_id") != CLIENT_ID or q.get("response_type") != "code":
            return web.json_response({"message": "Invalid OAuth2 application", "code": 50035}, status=400)
        if q.get("redirect_uri") != self.redirect_uri:
            return web.Response(status=400, text="Invalid OAuth2 redirect_uri")
        back = {"state": q.get("state", "")}
        if self.deny:
            back.update(error="access_denied", error_description="The resource owner or authorization server "
                                                                  "denied the request")
        else:
            code = secrets.token_urlsafe(20)
            self.codes[code] = q["redirect_uri"]
            back["code"] = code
        raise web.HTTPFound(f"{q['redirect_uri']}?{urlencode(back)}")

    def _client_ok(self, request: web.Request, form) -> bool:
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            cid, _, secret = base64.b64decode(header[6:]).decode().partition(":")
        else:
            cid, secret = form.get("client_id", ""), form.get("client_secret", "")
        return cid == CLIENT_ID and secret == CLIENT_SECRET

    async def token(self, request: web.Request) -> web.Response:
        form = await request.post()
        self.token_requests.append({k: v for k, v in form.items() if k != "client_secret"})
        if not self._client_ok(request, form):
            return web.json_response({"error": "invalid_client"}, status=401)
        grant = form.get("grant_type")
        if grant == "refresh_token":
            user = self.refresh_tokens.pop(form.get("refresh_token", ""), None)
            if user is None:
                return web.json_response({"error": "invalid_grant"}, status=400)
            return self._issue(user)
        if grant != "authorization_code":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        issued_for = self.codes.pop(form.get("code", ""), None)
        if issued_for is None or issued_for != form.get("redirect_uri"):
            return web.json_response({"error": "invalid_grant",
                                      "error_description": 'Invalid "code" in request.'}, status=400)
        return self._issue(dict(self.user))

    def _issue(self, user: dict) -> web.Response:
        access, refresh = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        self.tokens[access] = user
        self.refresh_tokens[refresh] = user
        return web.json_response({"token_type": "Bearer", "access_token": access, "expires_in": self.expires_in,
                                  "refresh_token": refresh, "scope": "identify email"})

    async def me(self, request: web.Request) -> web.Response:
        header = request.headers.get("Authorization", "")
        user = self.tokens.get(header[7:]) if header.startswith("Bearer ") else None
        if user is None:
            return web.json_response({"message": "401: Unauthorized", "code": 0}, status=401)
        return web.json_response(user)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/oauth2/authorize", self.authorize)
        app.router.add_post("/api/oauth2/token", self.token)
        app.router.add_get("/api/v10/users/@me", self.me)
        return app


@contextmanager
def running(fake: FakeDiscordOAuth) -> Iterator[FakeDiscordOAuth]:
    """Serve ``fake`` on 127.0.0.1 (free port) from a background thread; sets ``fake.base_url``."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict[str, Any] = {}

    async def start() -> None:
        runner = web.AppRunner(fake.app(), handle_signals=False, access_log=None, shutdown_timeout=0.1)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        holder["runner"] = runner
        fake.base_url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, name="fake-discord-oauth", daemon=True)
    thread.start()
    ready.wait(10)
    try:
        yield fake
    finally:
        asyncio.run_coroutine_threadsafe(holder["runner"].cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
