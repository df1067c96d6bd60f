"""Who is signed in: server-side sessions behind a signed cookie.

The browser holds only ``<session id>.<signature>``.  The id is 32 random
bytes and names a row in ``user_sessions``; the signature (itsdangerous,
keyed by ``SESSION_SECRET``) lets us refuse a forged or truncated cookie
without touching the database.  Because the truth lives in the table,
signing out (or an admin revoking a session) takes effect immediately on
every web worker; an expired or revoked row is simply not a session.

The development login (pick a demo user from a list) exists only outside
production; in production the same call is refused with a message, so a
misconfigured deployment cannot hand out accounts.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from itsdangerous import BadSignature, Signer
from sqlmodel import Session, select

from backend.config import get_settings
from backend.db.models import User, UserSession
from backend.db.types import utcnow
from backend.errors import NotFound, PermissionDenied

SESSION_LIFETIME = timedelta(days=14)
COOKIE_NAME = "dte_session"
_SALT = "dte.user-session"


def _signer() -> Signer:
    return Signer(get_settings().session_secret, salt=_SALT)


def sign_session_id(session_id: str) -> str:
    return _signer().sign(session_id).decode()


def unsign_token(token: str) -> str | None:
    """The session id inside a cookie value, or None if the signature is wrong."""
    if not token:
        return None
    try:
        return _signer().unsign(token).decode()
    except (BadSignature, UnicodeError, ValueError):
        return None


def create_session(
    session: Session, user_id: int, *, now: datetime | None = None, user_agent: str | None = None
) -> str:
    """Open a session for ``user_id`` and return the cookie value (signed id)."""
    now = now or utcnow()
    session_id = secrets.token_urlsafe(32)
    session.add(
        UserSession(
            id=session_id,
            user_id=user_id,
            created_at=now,
            expires_at=now + SESSION_LIFETIME,
            user_agent=(user_agent or None) and user_agent[:300],
        )
    )
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"There is no user with id {user_id}.")
    user.last_login_at = now
    session.add(user)
    session.flush()
    return sign_session_id(session_id)


def user_for_token(session: Session, token: str | None, *, now: datetime | None = None) -> User | None:
    """The signed-in user for a cookie value; None when forged, unknown, expired or revoked."""
    session_id = unsign_token(token or "")
    if session_id is None:
        return None
    row = session.get(UserSession, session_id)
    if row is None or row.revoked_at is not None or row.expires_at <= (now or utcnow()):
        return None
    return session.get(User, row.user_id)


def revoke(session: Session, token: str | None, *, now: datetime | None = None) -> bool:
    """Sign a browser out; True if a live session was revoked."""
    session_id = unsign_token(token or "")
    if session_id is None:
        return False
    row = session.get(UserSession, session_id)
    if row is None or row.revoked_at is not None:
        return False
    row.revoked_at = now or utcnow()
    session.add(row)
    session.flush()
    return True


def revoke_all_for_user(session: Session, user_id: int, *, now: datetime | None = None) -> int:
    """Sign a user out everywhere (e.g. after a role change or a suspected leak)."""
    now = now or utcnow()
    rows = session.exec(
        select(UserSession).where(UserSession.user_id == user_id, UserSession.revoked_at.is_(None))
    ).all()
    for row in rows:
        row.revoked_at = now
        session.add(row)
    session.flush()
    return len(rows)


# --------------------------------------------------------------------------- where to go after signing in
DEFAULT_LANDING = "/trader"
LOGIN_PATH = "/login"


def safe_next_path(value: str | None) -> str:
    """Only same-site paths: an open redirect would make the login page a phishing tool."""
    if not value or not isinstance(value, str) or not value.startswith("/") or value.startswith("//"):
        return DEFAULT_LANDING
    if "\\" in value or any(ord(c) < 32 for c in value) or value.startswith(LOGIN_PATH):
        return DEFAULT_LANDING
    return value


# --------------------------------------------------------------------------- development login
def _require_dev_login() -> None:
    if not get_settings().dev_login_enabled:
        raise PermissionDenied(
            "The development login is disabled in production; sign in with Discord instead."
        )


def dev_login_users(session: Session) -> list[dict]:
    """The demo users a developer may sign in as (empty list in production)."""
    if not get_settings().dev_login_enabled:
        return []
    users = session.exec(select(User).where(User.is_demo.is_(True)).order_by(User.id)).all()
    return [
        {
            "id": u.id,
            "name": u.display_name or u.username,
            "username": u.username,
            "platform_role": u.platform_role,
        }
        for u in users
    ]


def dev_login(session: Session, user_id: int, *, now: datetime | None = None) -> str:
    """Sign in as a demo user without Discord; only outside production, only demo users."""
    _require_dev_login()
    user = session.get(User, user_id)
    if user is None or not user.is_demo:
        raise PermissionDenied("Only the demo users can be used with the development login.")
    return create_session(session, user_id, now=now, user_agent="dev-login")
