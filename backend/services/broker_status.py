"""A broker account's connection status: one writer for the row, the audit, the dashboard and the DM.

Three places learn that an account is in trouble or fine again: a status
check (``accounts.refresh_status``), a reconciliation run (``reconcile.run``)
and the execution worker, whose long-lived session adapters (IBKR's gateway,
``capabilities.session_status``) notice a dropped or logged-out session
between calls (``SessionWatch``).  All of them go through ``apply_status``,
so a change is stored on the ``broker_accounts`` row, audited, pushed to the
member's open dashboard and told to the member ONCE (a ``broker_disconnected``
notification when it goes wrong, ``broker_reconnected`` when it is back),
never on every poll: an unchanged status writes nothing.

Session states (``BrokerAdapter.status()``) map to account statuses:
"connected" -> ``connected``, "logged_out" -> ``logged_out``, "disconnected"
-> ``connection_lost``.  The last is deliberately not ``disconnected``, which
means the member disconnected the account and its credentials are gone.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from backend.brokers.credentials import spec_for
from backend.db.models import AccountStatus, BrokerAccount
from backend.db.types import utcnow
from backend.execution.journal import Journal
from backend.services.notify import queue_notification

BROKER_DISCONNECTED = "broker_disconnected"
BROKER_RECONNECTED = "broker_reconnected"
CONNECTED = AccountStatus.CONNECTED.value
TROUBLE = frozenset({AccountStatus.ERROR.value, AccountStatus.LOGGED_OUT.value, AccountStatus.CONNECTION_LOST.value})
# What a session watcher may move between; ``error`` (a refused key ...) and ``disconnected`` are left alone.
SESSION_STATUSES = frozenset({CONNECTED, AccountStatus.LOGGED_OUT.value, AccountStatus.CONNECTION_LOST.value})
_FROM_SESSION = {"connected": CONNECTED, "logged_out": AccountStatus.LOGGED_OUT.value,
                 "disconnected": AccountStatus.CONNECTION_LOST.value}
_HEADLINE = {AccountStatus.ERROR.value: "has a problem", AccountStatus.LOGGED_OUT.value: "is logged out",
             AccountStatus.CONNECTION_LOST.value: "lost its connection"}


def status_for_session(state: str) -> str | None:
    """The account status for an adapter's session state (None for "unknown": never connected yet)."""
    return _FROM_SESSION.get(state)


def account_dict(account: BrokerAccount) -> dict[str, Any]:
    """The public view of an account: never the ciphertext, never the key id."""
    return {
        "id": account.id, "user_id": account.user_id, "broker": account.broker, "label": account.label,
        "exchange_id": account.exchange_id, "live": account.live, "permissions": account.permissions,
        "status": account.status, "status_message": account.status_message,
        "has_credentials": bool(account.credentials_enc), "created_at": account.created_at,
        "last_checked_at": account.last_checked_at,
    }


def account_event(account: BrokerAccount) -> dict[str, Any]:
    return {"type": "broker_account.updated", "account": account_dict(account)}


def _title(account: BrokerAccount) -> str:
    venue = account.exchange_id.title() if account.exchange_id else spec_for(account.broker).title
    return f"{account.label} ({venue})"


def apply_status(session: Session, journal: Journal, account: BrokerAccount, status: str, message: str | None,
                 now: datetime, *, permissions: str | None = None, by: str) -> bool:
    """Store ``status`` (and ``permissions``) on the row; on a change audit, push and notify once.

    ``message`` is the plain reason shown on the dashboard and in the DM; it
    is cleared when the account is connected.  Returns whether anything changed.
    """
    before = (account.status, account.permissions)
    account.status = status
    account.status_message = None if status == CONNECTED else (message or None) and message[:500]
    if permissions is not None:
        account.permissions = permissions
    if (account.status, account.permissions) == before:
        return False
    journal.audit("broker.status_changed", subject_type="broker_account", subject_id=account.id,
                  actor_user_id=account.user_id, data={"from": before[0], "to": status, "by": by,
                                                       "permissions": account.permissions,
                                                       "message": account.status_message})
    journal.push(account.user_id, account_event(account), key=account.id)
    if status != before[0] and status in TROUBLE:
        _notify(session, journal, account, BROKER_DISCONNECTED, f"{_title(account)} {_HEADLINE[status]}",
                (message or "").strip() + " Trading through this account is paused until it is connected again.",
                now, before[0])
    elif status != before[0] and status == CONNECTED and before[0] in TROUBLE:
        _notify(session, journal, account, BROKER_RECONNECTED, f"{_title(account)} is connected again",
                "Trading through this account has resumed.", now, before[0])
    return True


def _notify(session: Session, journal: Journal, account: BrokerAccount, kind: str, title: str, body: str,
            now: datetime, before: str) -> None:
    note = queue_notification(session, user_id=account.user_id, kind=kind, title=title, body=body.strip(), now=now,
                              data={"broker_account_id": account.id, "status": account.status, "from": before})
    journal.push(account.user_id, {"type": "notification.created", "notification": {
        "id": note.id, "kind": kind, "title": note.title, "body": note.body}}, key=note.id)


def record_status(engine: sa.Engine, account_id: int, status: str, message: str | None, *, by: str,
                  now: datetime | None = None, only_from: frozenset[str] | None = None) -> bool:
    """``apply_status`` in a transaction of its own; ``only_from``: change only a row in one of these."""
    journal = Journal()
    with Session(engine, expire_on_commit=False) as session:
        account = session.get(BrokerAccount, account_id)
        if account is None or (only_from is not None and account.status not in only_from):
            return False
        changed = apply_status(session, journal, account, status, message, now or utcnow(), by=by)
        if changed:
            journal.flush_audit(session)
            session.commit()
    if changed:
        journal.publish()
    return changed


class SessionWatch:
    """Writes what the execution worker's session adapters say about their sessions, once per change.

    ``check`` runs on every worker tick; it remembers the state each adapter
    last reported and touches the database only when that state changes, and
    only for accounts in a session status (``SESSION_STATUSES``).
    """

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self._seen: dict[int, str] = {}

    def check(self, adapters, *, now: datetime | None = None) -> list[int]:
        changed = []
        for account_id, adapter in adapters.cached():
            if not adapter.capabilities.session_status:
                continue
            state, message = adapter.status()
            status = status_for_session(state)
            if status is None or self._seen.get(account_id) == status:
                continue
            if record_status(self.engine, account_id, status, message, by="session", now=now,
                             only_from=SESSION_STATUSES):
                changed.append(account_id)
            self._seen[account_id] = status  # after the write: a failed write is tried again next tick
        return changed
