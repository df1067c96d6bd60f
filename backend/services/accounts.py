"""Broker accounts: connect, list, check and disconnect a member's brokers and exchanges.

The dashboard, slash commands and jobs call these and get plain dicts back.
No dict, message or audit event ever carries a credential: credentials go
in, are checked against the venue, and come out only as a ciphertext in
``broker_accounts.credentials_enc``.

Connecting is "validate, then store": the input is checked field by field,
the adapter makes one harmless authenticated call (an account read), and
only if the venue accepts the keys is the row written.  The ciphertext binds
the row id as associated data, so insert, flush and seal happen in one
transaction: a row never exists without its credentials, nor credentials
without their row.  Permissions (``trade`` or ``read``) come from what the
venue says about the account (``AccountInfo.can_trade``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from backend.brokers.base import AccountInfo, BrokerAdapter
from backend.brokers.credentials import (
    STATUS_CHECK_OPTIONS, adapter_for, build_adapter, clean_credentials, refused_message, settings_vault, spec_for,
)
from backend.config import get_settings
from backend.db.models import (
    AccountStatus, BrokerAccount, EquitySnapshot, Order, PaperAccount, User,
)
from backend.db.session import get_engine
from backend.db.types import utcnow
from backend.errors import (
    AuthenticationFailed, BrokerDisconnected, ConfigurationError, NotFound, PermissionDenied, TradeExecutorError, ValidationError,
)
from backend.execution.journal import Journal
from backend.security.vault import seal_account_credentials
from backend.services.broker_status import account_dict, account_event, apply_status, status_for_session

log = logging.getLogger(__name__)
OPEN_STATUSES = ("new", "submitted", "partially_filled")


class CannotConnect(ValidationError):
    """The venue could not confirm the account; nothing was stored."""

    code = "connect_failed"


def _clean_label(label: Any) -> str:
    text = label.strip() if isinstance(label, str) else ""
    if not text:
        raise ValidationError("Give the account a name (for example 'Alpaca paper').", field="label")
    if len(text) > 100:
        raise ValidationError("The account name is limited to 100 characters.", field="label")
    return text


def _starting_cash(value: Any) -> Decimal:
    raw = get_settings().paper_starting_cash if value is None else value
    try:
        cash = Decimal(str(raw))
    except InvalidOperation:
        cash = Decimal(-1)
    if isinstance(raw, float) or not cash.is_finite() or cash <= 0:
        raise ValidationError("The paper account's starting cash must be a positive amount.", field="starting_cash")
    return cash


async def _check_at_venue(adapter: BrokerAdapter, broker: str, exchange_id: str | None) -> AccountInfo:
    """One harmless authenticated call; every failure becomes a message that says nothing was stored."""
    title = spec_for(broker).title
    try:
        return await adapter.validate()
    except AuthenticationFailed:
        raise CannotConnect(refused_message(broker, exchange_id) + " Nothing was saved.", field="credentials") from None
    except TradeExecutorError as exc:
        tail = " Nothing was saved; try again in a moment." if exc.retryable else " Nothing was saved."
        raise CannotConnect(f"{exc.message}{tail}", field=exc.field) from None
    except Exception as exc:  # noqa: BLE001 - a vendor surprise: name its type only, its text may quote the request
        log.warning("checking a new %s account failed with %s", broker, type(exc).__name__)
        raise CannotConnect(f"Unexpected error while checking the account with {title} ({type(exc).__name__}). "
                            "Nothing was saved.") from None
    finally:
        try:
            await adapter.close()
        except Exception:  # noqa: BLE001 - closing is best effort
            pass


async def connect_account(engine: sa.Engine | None, user_id: int, broker: str, label: str,
                          credentials: Mapping[str, Any] | None, *, live: bool = False,
                          exchange_id: str | None = None, base_url: str | None = None,
                          starting_cash: Decimal | str | None = None,
                          adapter_options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Check the credentials at the venue, then store the account with them sealed by the vault.

    ``adapter_options``: extra keyword arguments for the adapter used for the check (timeouts, and
    in tests the throttles).  Paper accounts take no credentials and open with ``starting_cash``.
    """
    engine = engine or get_engine()
    spec = spec_for(broker)
    clean = _clean_label(label)
    exchange = exchange_id.strip().lower() if broker == "ccxt" and isinstance(exchange_id, str) else None
    creds = clean_credentials(broker, credentials, exchange_id=exchange, base_url=base_url, live=bool(live))
    cash = _starting_cash(starting_cash) if not spec.needs_credentials else None
    with Session(engine) as session:
        if session.get(User, user_id) is None:
            raise NotFound("That user does not exist.")
    info = None
    if spec.needs_credentials:
        try:
            adapter = build_adapter(broker, creds, live=bool(live), exchange_id=exchange, options=adapter_options)
        except ConfigurationError as exc:
            raise CannotConnect(f"{exc.message} Nothing was saved.", field=exc.field) from None
        info = await _check_at_venue(adapter, broker, exchange)
    permissions = "trade" if info is None or info.can_trade else "read"
    now = utcnow()
    journal = Journal()
    with Session(engine, expire_on_commit=False) as session:
        account = BrokerAccount(user_id=user_id, broker=broker, label=clean, exchange_id=exchange, live=bool(live),
                                permissions=permissions, status=AccountStatus.CONNECTED.value, created_at=now)
        session.add(account)
        session.flush()
        if creds:
            seal_account_credentials(account, creds, settings_vault())
        if cash is not None:
            session.add(PaperAccount(broker_account_id=account.id, cash=cash, created_at=now))
        if info is not None:
            session.add(EquitySnapshot(broker_account_id=account.id, equity=info.equity, cash=info.cash, taken_at=now))
        journal.audit("broker.connected", subject_type="broker_account", subject_id=account.id, actor_user_id=user_id,
                      data={"broker": broker, "label": clean, "exchange_id": exchange, "live": bool(live),
                            "permissions": permissions})
        journal.push(user_id, account_event(account), key=account.id)
        journal.flush_audit(session)
        session.commit()
    journal.publish()
    out = account_dict(account)
    if info is not None:
        out.update(currency=info.currency, equity=info.equity, cash=info.cash, buying_power=info.buying_power)
    elif cash is not None:
        out.update(currency="USD", equity=cash, cash=cash, buying_power=cash)
    return out


def _own(session: Session, user_id: int, account_id: int) -> BrokerAccount:
    account = session.get(BrokerAccount, account_id)
    if account is None:
        raise NotFound("That broker account does not exist.")
    if account.user_id != user_id:
        raise PermissionDenied("That broker account belongs to someone else.")
    return account


def list_accounts(engine: sa.Engine | None, user_id: int) -> list[dict[str, Any]]:
    with Session(engine or get_engine()) as session:
        rows = session.exec(select(BrokerAccount).where(BrokerAccount.user_id == user_id)
                            .order_by(BrokerAccount.id)).all()
        return [account_dict(a) for a in rows]


def disconnect_account(engine: sa.Engine | None, user_id: int, account_id: int) -> dict[str, Any]:
    """Stop trading through the account and forget its credentials (reconnecting asks for them again).

    Orders already at the venue are not cancelled (the member may want them to
    work); ``open_orders`` says how many the product still follows there.
    """
    from backend.execution.adapters import shared_adapters

    engine = engine or get_engine()
    journal = Journal()
    with Session(engine, expire_on_commit=False) as session:
        account = _own(session, user_id, account_id)
        open_orders = session.execute(select(sa.func.count()).select_from(Order).where(
            Order.broker_account_id == account.id, Order.status.in_(OPEN_STATUSES))).scalar_one()
        if account.status != AccountStatus.DISCONNECTED.value or account.credentials_enc:
            account.status, account.status_message = AccountStatus.DISCONNECTED.value, "Disconnected by you."
            account.credentials_enc = account.credentials_key_id = None
            journal.audit("broker.disconnected", subject_type="broker_account", subject_id=account.id,
                          actor_user_id=user_id, data={"broker": account.broker, "label": account.label,
                                                       "open_orders": open_orders})
            journal.push(user_id, account_event(account), key=account.id)
            journal.flush_audit(session)
            session.commit()
    journal.publish()
    shared_adapters(engine).forget(account.id)
    return {**account_dict(account), "open_orders": open_orders}


async def refresh_status(engine: sa.Engine | None, user_id: int, account_id: int, *,
                         adapter_options: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """Ask the venue how the account is now: a harmless account read, then the adapter's session state.

    Session-based adapters (IBKR's gateway) report a dropped or logged-out
    session through ``status()``; request/response adapters are "connected"
    whenever the read works.  Stores status, message, permissions and an
    equity snapshot; a status change is audited and told to the member once
    (``broker_status``).  The check opens its own
    connection (``STATUS_CHECK_OPTIONS``: a gateway client id of its own).
    """
    engine = engine or get_engine()
    with Session(engine, expire_on_commit=False) as session:
        account = _own(session, user_id, account_id)
    if account.status == AccountStatus.DISCONNECTED.value:
        raise ValidationError("This account is disconnected; connect it again to use it.", field="account")
    info: AccountInfo | None = None
    try:
        adapter = adapter_for(account, engine, options=STATUS_CHECK_OPTIONS if adapter_options is None
                              else adapter_options)
    except TradeExecutorError as exc:
        state, message = "error", exc.message
    else:
        try:
            info = await adapter.validate()
            state, message = adapter.status()
        except TradeExecutorError as exc:
            state, message = "error", exc.message
            if isinstance(exc, BrokerDisconnected) and adapter.capabilities.session_status:
                state, message = adapter.status()  # a dropped or logged-out session, not a broken account
        finally:
            await adapter.close()
    return _store_status(engine, account.id, state, message, info, utcnow())


def _store_status(engine: sa.Engine, account_id: int, state: str, message: str, info: AccountInfo | None,
                  now: datetime) -> dict[str, Any]:
    """Store what the check found; a change of status is audited, pushed and told to the member once."""
    status = status_for_session(state) if state != "connected" or info is not None else None
    journal = Journal()
    with Session(engine, expire_on_commit=False) as session:
        account = session.get(BrokerAccount, account_id)
        permissions = ("trade" if info.can_trade else "read") if info is not None else None
        apply_status(session, journal, account, status or AccountStatus.ERROR.value, message, now,
                     permissions=permissions, by="status_check")
        if info is not None:
            session.add(EquitySnapshot(broker_account_id=account.id, equity=info.equity, cash=info.cash, taken_at=now))
        journal.flush_audit(session)
        session.commit()
    journal.publish()
    out = {**account_dict(account), "checked_at": now, "session": state}
    if info is not None:
        out.update(currency=info.currency, equity=info.equity, cash=info.cash, buying_power=info.buying_power)
    return out
