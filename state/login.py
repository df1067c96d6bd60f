"""The login page: Discord sign-in, and the development login outside production.

The development login lists the demo users (``backend.services.auth``
refuses it in production and for non-demo accounts, whatever the browser
sends).  Discord sign-in is plain HTTP (``app/api.py``: the OAuth redirect
dance cannot run over Reflex's websocket); when it fails, it comes back
here with ``?error=<reason>`` and the page says what happened.  After
signing in the user goes back to the page that sent them here (``?next=``),
which must be a local path.
"""

from __future__ import annotations

from urllib.parse import quote

import reflex as rx

from backend.config import get_settings
from backend.db.session import session_scope
from backend.errors import TradeExecutorError
from backend.services import auth as auth_service
from backend.services import discord_login
from pages import routes
from state.auth import AuthState

# ?error=<reason> from the Discord callback -> what the person reads.
LOGIN_ERRORS = {
    "denied": "You cancelled the sign-in on Discord.",
    "state": "The sign-in link was not started in this browser (or was used twice). Try again.",
    "expired": "The sign-in took longer than 10 minutes. Try again.",
    "refused": "Discord refused the sign-in. Try again.",
    "unreachable": "Discord could not be reached. Try again in a moment.",
    "not_configured": "Sign-in with Discord is not set up on this server.",
}


def safe_next(value: str | None) -> str:
    """Only same-site paths; anything else goes to the trader overview."""
    return auth_service.safe_next_path(value)


class LoginState(AuthState):
    demo_users: list[dict[str, str]] = []
    dev_login_enabled: bool = False
    discord_enabled: bool = False
    discord_href: str = routes.DISCORD_LOGIN
    error: str = ""

    @rx.event
    def load(self):
        settings = get_settings()
        self.dev_login_enabled = settings.dev_login_enabled
        self.discord_enabled = discord_login.is_configured()
        self.discord_href = f"{routes.DISCORD_LOGIN}?next={quote(self._next(), safe='/')}"
        reason = self.router.url.query_parameters.get("error", "")
        self.error = LOGIN_ERRORS.get(reason, "The sign-in did not complete. Try again.") if reason else ""
        with session_scope() as session:
            if self._signed_in_user(session) is not None:
                return rx.redirect(self._next())
            self.demo_users = [
                {"id": str(u["id"]), "name": u["name"], "username": u["username"],
                 "role": "Platform admin" if u["platform_role"] == "admin" else "Member"}
                for u in auth_service.dev_login_users(session)
            ]
        return None

    def _next(self) -> str:
        return safe_next(self.router.url.query_parameters.get("next"))

    @rx.event
    def sign_in_as(self, user_id: int):
        try:
            with session_scope() as session:
                token = auth_service.dev_login(session, int(user_id))
        except TradeExecutorError as exc:
            self.error = exc.message
            return None
        self.error = ""
        self.session_token = token
        return rx.redirect(self._next())
