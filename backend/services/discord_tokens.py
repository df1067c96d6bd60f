"""Keep members' Discord OAuth tokens alive: refresh them before they expire.

Signing in stores the member's Discord token encrypted (``oauth_tokens``).
Our own sessions do not depend on it, but anything that acts on the
member's behalf at Discord (reading their guilds for role sync, for
instance) does, and Discord's access tokens live seven days.  The scheduler
runs ``refresh_expiring`` every hour: tokens that expire within
``REFRESH_AHEAD`` are refreshed with the ``refresh_token`` grant (authlib),
and the rotated pair replaces the old one in the same transaction.

Outcomes per token, so an operator can tell them apart:
* refreshed  -- new token sealed, ``expires_at`` moved on, audited;
* revoked    -- Discord answered ``invalid_grant`` (the member removed the
  app, or the refresh token was already used): the row is deleted and the
  member simply signs in again next time; audited;
* failed     -- Discord unreachable or answered 5xx: kept as it was, tried
  again at the next run (nothing is lost by waiting an hour).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, select

from backend.config import get_settings
from backend.db.models import OAuthToken
from backend.db.types import utcnow

log = logging.getLogger(__name__)

REFRESH_AHEAD = timedelta(days=1)


@dataclass
class RefreshReport:
    refreshed: list[int] = field(default_factory=list)   # user ids
    revoked: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)


def _refresh_client():
    from authlib.integrations.httpx_client import OAuth2Client

    from backend.services.discord_login import HTTP_TIMEOUT

    s = get_settings()
    return OAuth2Client(client_id=s.discord_client_id, client_secret=s.discord_client_secret, timeout=HTTP_TIMEOUT)


def _refresh_one(session: Session, row: OAuthToken, vault, now: datetime) -> str:
    """Refresh one row in the caller's transaction; returns the outcome name."""
    from authlib.integrations.base_client import OAuthError
    import httpx

    from backend import audit
    from backend.security.vault import open_oauth_token
    from backend.services.discord_login import store_token

    refresh_token = open_oauth_token(row, vault).get("refresh_token")
    if not refresh_token:
        session.delete(row)
        audit.record(session, "auth.discord_token_revoked", subject_type="user", subject_id=row.user_id,
                     data={"reason": "no refresh token"})
        return "revoked"
    try:
        with _refresh_client() as client:
            token = client.refresh_token(get_settings().discord_token_url, refresh_token=refresh_token)
    except OAuthError as exc:
        if exc.error in ("invalid_grant", "invalid_client", "unauthorized_client"):
            session.delete(row)
            audit.record(session, "auth.discord_token_revoked", subject_type="user", subject_id=row.user_id,
                         data={"reason": exc.error})
            return "revoked"
        log.warning("Discord refused to refresh the token of user %s: %s", row.user_id, exc.error)
        return "failed"
    except (httpx.HTTPError, ValueError) as exc:
        log.warning("Discord token refresh for user %s failed, will retry: %s", row.user_id, type(exc).__name__)
        return "failed"
    store_token(session, row.user_id, dict(token), now)
    audit.record(session, "auth.discord_token_refreshed", subject_type="user", subject_id=row.user_id, data={})
    return "refreshed"


def refresh_expiring(engine: sa.Engine, *, now: datetime | None = None,
                     ahead: timedelta = REFRESH_AHEAD) -> RefreshReport:
    """Refresh every Discord token expiring before ``now + ahead``; one transaction per token."""
    from backend.security.vault import Vault
    from backend.services.discord_login import is_configured

    report = RefreshReport()
    if not is_configured():
        return report
    now = now or utcnow()
    vault = Vault.from_settings(get_settings())
    with Session(engine) as session:
        due = session.exec(select(OAuthToken.id).where(
            OAuthToken.provider == "discord", OAuthToken.expires_at < now + ahead)).all()
    for token_id in due:
        with Session(engine, expire_on_commit=False) as session:
            row = session.get(OAuthToken, token_id)
            if row is None:
                continue
            outcome = _refresh_one(session, row, vault, now)
            session.commit()
            getattr(report, outcome).append(row.user_id)
    return report


def refresh_job(engine: sa.Engine) -> None:
    report = refresh_expiring(engine)
    if report.refreshed or report.revoked or report.failed:
        log.info("Discord tokens: %d refreshed, %d revoked, %d failed (retried next run)",
                 len(report.refreshed), len(report.revoked), len(report.failed))
