"""The signed-in user, for every page: the base of all page states.

The browser keeps one cookie, the signed session id from
``backend.services.auth``; nothing else about the user is trusted from the
client.  Every handler that touches data resolves the cookie against the
``user_sessions`` table again (``_signed_in_user``), so a revoked session
stops working on the next click, not at the next page load, and the display
vars below (name, admin flag) are only ever used to draw the navigation.
"""

from __future__ import annotations

from urllib.parse import quote

import reflex as rx
from sqlmodel import Session

from backend.config import get_settings
from backend.db.models import CommunityRole, PlatformRole, User
from backend.db.session import session_scope
from backend.services import auth as auth_service
from backend.services.access import communities_with_role
from pages import routes

SESSION_MAX_AGE = int(auth_service.SESSION_LIFETIME.total_seconds())


class AuthState(rx.State):
    session_token: str = rx.Cookie(
        "",
        name=auth_service.COOKIE_NAME,
        max_age=SESSION_MAX_AGE,
        same_site="lax",
        secure=get_settings().public_url.startswith("https://"),
    )
    user_name: str = ""
    user_initials: str = ""
    is_platform_admin: bool = False
    manages_community: bool = False

    # ------------------------------------------------------------------ helpers (not events)
    def _signed_in_user(self, session: Session) -> User | None:
        """Resolve the cookie now; refresh the navigation's display vars as a side effect."""
        user = auth_service.user_for_token(session, self.session_token)
        if user is None:
            self._forget_identity()
            return None
        name = user.display_name or user.username
        self.user_name = name
        self.user_initials = "".join(part[0] for part in name.split()[:2]).upper()
        self.is_platform_admin = user.platform_role == PlatformRole.ADMIN.value
        self.manages_community = bool(communities_with_role(session, user.id, CommunityRole.ADMIN))
        return user

    def _forget_identity(self) -> None:
        self.user_name = ""
        self.user_initials = ""
        self.is_platform_admin = False
        self.manages_community = False

    def _to_login(self):
        """Redirect to the login page, coming back here afterwards."""
        path = self.router.url.path or routes.INDEX
        if path == routes.LOGIN:
            return rx.redirect(routes.LOGIN)
        return rx.redirect(f"{routes.LOGIN}?next={quote(path, safe='/')}")

    # ------------------------------------------------------------------ events
    @rx.event
    def require_login(self):
        """``on_load`` guard for pages without their own loader."""
        with session_scope() as session:
            if self._signed_in_user(session) is None:
                return self._to_login()

    @rx.event
    def go_home(self):
        """``/``: the trader overview when signed in, the login page otherwise."""
        with session_scope() as session:
            if self._signed_in_user(session) is None:
                return rx.redirect(routes.LOGIN)
        return rx.redirect(routes.TRADER)

    @rx.event
    def sign_out(self):
        with session_scope() as session:
            auth_service.revoke(session, self.session_token)
        self.session_token = ""
        self._forget_identity()
        return [rx.remove_cookie(auth_service.COOKIE_NAME), rx.redirect(routes.LOGIN)]
