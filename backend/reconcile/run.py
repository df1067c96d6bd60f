"""A reconciliation run: every connected account, one at a time, each isolated from the others.

For one account: read the product's open orders, ask the venue about them
(open orders, order status, fills since the last check, positions), repair
the orders (``orders``), then the positions (``positions``), send what the
engine wants sent as a consequence (a released stop, a cancel of
protection that outlived its position), and finally write an equity
snapshot and the time of this check (``last_checked_at``, the start of the
next run's fill window, with an hour of overlap: fill ids make re-reading
harmless).

Isolation: an account that fails is reported and marked, and the run goes
on with the next one.  A permanent failure (credentials refused or
unreadable, an account the venue closed) sets the account's status to
``error`` with the message, so the dashboard shows it and the engine stops
trading through it; a temporary one (timeout, outage, rate limit) only
records the message, because a five-minute pause in trading for a blip
would cost members more than it protects.  A session adapter's dropped or
logged-out session (IBKR) is stored as ``connection_lost`` / ``logged_out``.
An account in any of these is tried again on every run and is
``connected`` again as soon as a run succeeds; each change of status is
told to the member once (``services.broker_status``).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from backend.brokers.credentials import credentials_provider
from backend.db.models import AccountStatus, BrokerAccount, EquitySnapshot
from backend.db.session import get_engine
from backend.db.types import utcnow
from backend.errors import BrokerDisconnected, NotFound, TradeExecutorError
from backend.execution.adapters import Adapters
from backend.execution.journal import Journal
from backend.execution.runner import execute
from backend.reconcile.orders import repair_orders
from backend.reconcile.positions import (
    find_drifts, price_fallback, price_from_venue, product_positions, repair_positions,
)
from backend.reconcile.report import AccountReport, ReconcileReport
from backend.reconcile.venue import gather, orders_to_check, positions_by_key
from backend.security.redact import safe_error_message
from backend.services.broker_status import TROUBLE, apply_status, status_for_session

log = logging.getLogger(__name__)
OVERLAP = timedelta(hours=1)
MAX_LOOKBACK = timedelta(days=7)
RECONCILED = (AccountStatus.CONNECTED.value, *sorted(TROUBLE))


async def reconcile_account(engine: sa.Engine, adapters: Adapters, account: BrokerAccount, *, clock=utcnow,
                            send_followups: bool = True) -> AccountReport:
    """Compare and repair one account; raises on a failure of the account as a whole."""
    now = clock()
    report = AccountReport(account.id, account.label, account.broker)
    adapter = adapters.get(account)
    since = max((account.last_checked_at or account.created_at) - OVERLAP, now - MAX_LOOKBACK)
    checked = orders_to_check(engine, account.id, now)
    view = await gather(engine, adapter, account.id, checked, since, now)
    report.orders_checked = len(checked)
    report.notes += view.notes
    repairs, followups = repair_orders(engine, adapters, account.id, view, now)
    report.repairs += repairs
    if view.errors:
        report.notes += [f"could not check {e}" for e in view.errors]
        report.notes.append("positions were not compared: an unchecked order could explain a difference.")
    else:
        product = product_positions(engine, account.id)
        expected = {key: p.quantity for key, p in product.items()}
        after = positions_by_key(await adapter.positions())
        drifts = price_from_venue(find_drifts(product, view.positions, after, report.notes), view.foreign)
        for drift in drifts:
            if drift.price is None:
                try:
                    quote = await adapter.quote(drift.symbol)
                except TradeExecutorError:
                    quote = None
                if quote:
                    drift.price, drift.price_source = quote, "quote"
        price_fallback(drifts, product)
        report.positions_checked = len({k for k, p in product.items() if p.quantity != 0} | set(after))
        fixed, more, notes = repair_positions(engine, adapters, account, drifts, expected, view.unverifiable,
                                              adapter.capabilities.asset_classes, now)
        report.repairs += fixed
        report.notes += notes
        followups.merge(more)
    if send_followups and followups:
        await execute(engine, adapters, submit_ids=followups.submit_ids, cancel_ids=followups.cancel_ids,
                      replace=followups.replace, clock=clock, inline_retries=False)
    _succeeded(engine, account.id, await adapter.account(), now)
    return report


def _succeeded(engine: sa.Engine, account_id: int, info, now) -> None:
    journal = Journal()
    with Session(engine, expire_on_commit=False) as session:
        row = session.get(BrokerAccount, account_id)
        row.last_checked_at = now
        # Back to connected from any trouble; a temporary problem of an earlier run is over either way.
        status = AccountStatus.CONNECTED.value if row.status in TROUBLE else row.status
        apply_status(session, journal, row, status, None, now, permissions="trade" if info.can_trade else "read",
                     by="reconcile")
        session.add(EquitySnapshot(broker_account_id=row.id, equity=info.equity, cash=info.cash, taken_at=now))
        journal.flush_audit(session)
        session.commit()
    journal.publish()


def _failed(engine: sa.Engine, account: BrokerAccount, exc: BaseException, now,
            session_state: tuple[str, str] | None = None) -> str:
    """Record a failed account; returns the message shown for it (never a credential).

    ``session_state``: what a session adapter (IBKR) says about its session
    after the failure; a logged-out or dropped session is stored as such.
    """
    if isinstance(exc, TradeExecutorError):
        message, retryable, code = safe_error_message(exc), exc.retryable, exc.code
    else:
        message, retryable, code = f"Reconciliation failed unexpectedly ({type(exc).__name__}).", False, "internal"
    session_status = status_for_session(session_state[0]) if session_state else None
    journal = Journal()
    with Session(engine, expire_on_commit=False) as session:
        row = session.get(BrokerAccount, account.id)
        if row is not None:
            if session_status not in (None, AccountStatus.CONNECTED.value):
                apply_status(session, journal, row, session_status, session_state[1] or message, now, by="reconcile")
            elif retryable:
                row.status_message = f"{message} Reconciliation will try again."[:500]
            else:
                apply_status(session, journal, row, AccountStatus.ERROR.value, message, now, by="reconcile")
            journal.audit("reconcile.failed", subject_type="broker_account", subject_id=row.id,
                          actor_user_id=row.user_id, data={"error": message, "code": code, "retryable": retryable,
                                                           "status": row.status})
            journal.flush_audit(session)
            session.commit()
    journal.publish()
    return message


def _session_state(adapters: Adapters, account: BrokerAccount, exc: BaseException) -> tuple[str, str] | None:
    if not isinstance(exc, BrokerDisconnected):
        return None
    try:
        adapter = adapters.get(account)
    except TradeExecutorError:
        return None
    return adapter.status() if adapter.capabilities.session_status else None


def _accounts(engine: sa.Engine, account_id: int | None) -> list[BrokerAccount]:
    with Session(engine, expire_on_commit=False) as session:
        stmt = select(BrokerAccount).where(BrokerAccount.status.in_(RECONCILED)).order_by(BrokerAccount.id)
        if account_id is not None:
            stmt = stmt.where(BrokerAccount.id == account_id)
        rows = list(session.exec(stmt).all())
    if account_id is not None and not rows:
        raise NotFound(f"There is no connected broker account #{account_id}.")
    return rows


async def reconcile_all(engine: sa.Engine | None = None, adapters: Adapters | None = None, *,
                        account_id: int | None = None, clock=utcnow, send_followups: bool = True,
                        provider: Any = None) -> ReconcileReport:
    """Reconcile every connected account (or one); one account's failure never stops the others.

    Without ``adapters`` the run builds its own from the credential vault
    (``provider``, default ``credentials_provider``) and closes them at the end.
    """
    engine = engine or get_engine()
    own = adapters is None
    adapters = adapters or Adapters(engine, provider=provider or credentials_provider)
    report = ReconcileReport(started_at=clock())
    try:
        for account in _accounts(engine, account_id):
            try:
                result = await reconcile_account(engine, adapters, account, clock=clock,
                                                 send_followups=send_followups)
            except Exception as exc:  # noqa: BLE001 - isolation: the next account still runs
                if not isinstance(exc, TradeExecutorError):
                    log.exception("reconciliation of broker account %s failed", account.id)
                result = AccountReport(account.id, account.label, account.broker)
                try:
                    result.error = _failed(engine, account, exc, clock(), _session_state(adapters, account, exc))
                except Exception:  # noqa: BLE001 - even recording the failure failed (database down)
                    log.exception("could not record the reconciliation failure of account %s", account.id)
                    result.error = f"Reconciliation failed ({type(exc).__name__})."
                log.warning("reconciliation of broker account %s failed: %s", account.id, result.error)
            else:
                if result.repairs:
                    log.info("reconciled broker account %s: %d repair(s)", account.id, len(result.repairs))
            report.accounts.append(result)
    finally:
        if own:
            await adapters.aclose()
    report.finished_at = clock()
    return report
