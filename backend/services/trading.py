"""Money-path use cases: what the Discord bot, the webhook route, the dashboard and jobs call.

Each function takes plain values, does one thing end to end and returns a
plain dict (no ORM objects), so a Reflex handler, a slash command and a
scheduled job that do the same thing share one implementation.

Ingestion stores the signal in its own transaction first and only then
dispatches it (fan-out, then broker calls), so a crash after the store never
loses the signal: the worker's ``recover`` dispatches whatever is still
``received``.  ``dispatch=False`` leaves the dispatch to the worker (a web
process that must answer a webhook fast can choose that).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import uuid
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from backend.db.models import BrokerAccount, Order, Position, SignalSource, SourceKind
from backend.db.session import get_engine
from backend.db.types import utcnow
from backend.errors import InvalidSignal, NotFound, PermissionDenied, ValidationError, WebhookAuthError
from backend.execution import intents as legs
from backend.execution.adapters import Adapters, accounts_that_replace, accounts_where, shared_adapters
from backend.execution.commands import open_orders, plan_cancel, plan_close, plan_modify
from backend.execution.crash_hook import crash_point
from backend.execution.fanout import fan_out_in, legs_per_follower
from backend.execution import loading
from backend.execution.intake import (
    CURSOR_ADVANCE, RECEIVED, Intake, cursor_params, ingest, ingest_delete, ingest_edit, parse, signal_row,
)
from backend.execution.intents import command_order_id, round_down
from backend.execution.journal import Journal
from backend.execution.planner import Plan, order_fields
from backend.execution.runner import Report, execute, execute_dispatch, recover
from backend.execution.settle import Followups, record_intents

HUNDRED = Decimal(100)
log = logging.getLogger(__name__)


def _engine(engine: sa.Engine | None) -> sa.Engine:
    return engine or get_engine()


def _report_dict(report: Report | None) -> dict[str, Any]:
    if report is None:
        return {}
    d = report.dispatches[0] if report.dispatches else None
    return {"decisions": d.decisions if d else 0, "approved": d.approved if d else 0,
            "orders_submitted": report.submitted, "retries_pending": len(report.retries_pending)}


# --------------------------------------------------------------------------- ingestion
_SOURCE_BY_CHANNEL = select(SignalSource).where(SignalSource.discord_channel_id == sa.bindparam("channel"))


async def ingest_discord_message(*, channel_id: str, message_id: str, content: str, sent_at: datetime | None,
                                 author_id: str | None = None, now: datetime | None = None, dispatch: bool = True,
                                 engine: sa.Engine | None = None, adapters: Adapters | None = None,
                                 advance_cursor: bool = False) -> dict[str, Any]:
    """A message posted in a source channel: stored once, traded if it is a fresh signal.

    ``advance_cursor``: also move the source's catch-up cursor to this message (forward only), in
    the transaction that stores it (the bot: one commit per message instead of two).
    """

    def store(session: Session, journal: Journal) -> tuple[Intake, SignalSource, loading.FanoutData | None]:
        received = now or utcnow()
        parsed, error = parse(content, sent_at or received)
        data = None
        if parsed is not None:  # a signal: its source, what its fan-out reads and its row, in one round trip
            instrument = legs.position_key(parsed.symbol, parsed.asset_class, parsed.option_right, parsed.strike,
                                           parsed.expiry)
            row = signal_row(None, source_message_id=str(message_id), text=content, parsed=parsed, sent_at=sent_at,
                             author_id=author_id, now=received)
            data = loading.read(session, channel=str(channel_id), instrument=instrument,
                                open_orders=parsed.action != "open", signal=row,
                                legs_per_follower=legs_per_follower(parsed))
            source = data.source
        else:
            source = session.exec(_SOURCE_BY_CHANNEL, params={"channel": str(channel_id)}).first()
        if source is None:
            raise NotFound("No signal source is set up for this channel.")
        if advance_cursor:
            journal.late(CURSOR_ADVANCE, cursor_params(source.id, message_id))
        return ingest(session, source, source_message_id=str(message_id), text=content, sent_at=sent_at,
                      author_id=author_id, journal=journal, now=received, parsed=parsed, parse_text=False,
                      error=error, stored=data.stored if data else None), source, data

    return await _store_and_dispatch(_engine(engine), adapters, now, store, dispatch)


async def _store_and_dispatch(engine: sa.Engine, adapters: Adapters | None, now: datetime | None,
                              store: Callable[[Session, Journal], tuple],
                              dispatch: bool) -> dict[str, Any]:
    """Store a message and, in the same transaction, fan it out; then send the orders.

    One transaction holds the signal, its decisions and its order intents, so
    they are durable before any broker call.  If the fan-out fails, the
    transaction is rolled back and the message is stored alone (``received``)
    for the worker to dispatch: a bug in the fan-out never loses a signal.
    """
    adapters = adapters or shared_adapters(engine)
    for inline in ((True, False) if dispatch else (False,)):
        journal, fan = Journal(), None
        with Session(engine, expire_on_commit=False) as session:
            intake, source, *prefetched = store(session, journal)
            if inline and intake.created and intake.status == RECEIVED:
                try:
                    fan = await fan_out_in(session, journal, intake.signal_id, source, intake.parsed, adapters,
                                           now or utcnow(), prefetched=prefetched[0] if prefetched else None,
                                           ids=intake.ids)
                except Exception:  # noqa: BLE001 - the signal must survive a failing fan-out
                    log.exception("inline fan-out failed; storing the signal for the worker")
                    session.rollback()
                    continue
            journal.commit(session)  # the signal and its intents: durable before any broker call
        break
    if fan is not None:
        crash_point("fanout_committed")
    journal.publish()
    result: dict[str, Any] = {"signal_id": intake.signal_id, "status": intake.status, "created": intake.created,
                              "reason": intake.reason}
    if fan is not None:
        result.update(_report_dict(await execute_dispatch(engine, adapters, fan)), status="dispatched")
    return result


async def ingest_discord_edit(*, channel_id: str, message_id: str, content: str, edited_at: datetime | None = None,
                              now: datetime | None = None, engine: sa.Engine | None = None) -> dict[str, Any] | None:
    """An edit is recorded as a revision and never traded (see ``execution.intake``)."""
    journal = Journal()
    with Session(_engine(engine), expire_on_commit=False) as session:
        source = _source_by(session, SignalSource.discord_channel_id == str(channel_id))
        intake = ingest_edit(session, source, source_message_id=str(message_id), text=content, journal=journal,
                             edited_at=edited_at, now=now)
        journal.flush_audit(session)
        session.commit()
    journal.publish()
    return None if intake is None else {"signal_id": intake.signal_id, "status": intake.status, "traded": False}


async def ingest_discord_delete(*, channel_id: str, message_id: str, now: datetime | None = None,
                                engine: sa.Engine | None = None) -> dict[str, Any] | None:
    journal = Journal()
    with Session(_engine(engine), expire_on_commit=False) as session:
        source = _source_by(session, SignalSource.discord_channel_id == str(channel_id))
        intake = ingest_delete(session, source, source_message_id=str(message_id), journal=journal, now=now)
        journal.flush_audit(session)
        session.commit()
    journal.publish()
    return None if intake is None else {"signal_id": intake.signal_id, "status": intake.status}


async def ingest_tradingview(source_token: str, body: bytes, now: datetime | None = None, *, dispatch: bool = True,
                             engine: sa.Engine | None = None, adapters: Adapters | None = None) -> dict[str, Any]:
    """A TradingView webhook: authenticated by the source's secret, stored once per alert, traded if fresh.

    Raises ``WebhookAuthError`` (unknown token, missing or wrong secret: answer 401) and
    ``InvalidSignal`` (an authenticated body that is not a valid alert: answer 400, it is
    recorded as ``rejected``).  A retried delivery returns the first one's result.
    """
    from backend.signals import parse_tradingview_alert

    engine = _engine(engine)
    now = now or utcnow()
    with Session(engine, expire_on_commit=False) as session:
        source = session.exec(select(SignalSource).where(SignalSource.webhook_token == source_token,
                                                        SignalSource.kind == SourceKind.TRADINGVIEW.value)).first()
    if source is None or not source.webhook_secret_hash:
        raise WebhookAuthError("Unknown webhook URL.")
    try:  # read only to find the secret; the alert parser reads the body itself
        payload = json.loads(body, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError):
        payload = None
    secret = payload.get("secret") if isinstance(payload, dict) else None
    if not isinstance(secret, str) or not hmac.compare_digest(
            hashlib.sha256(secret.encode()).hexdigest(), source.webhook_secret_hash):
        raise WebhookAuthError("The webhook secret is missing or wrong.")
    message_id = _alert_key(payload, body)
    text = json.dumps({k: v for k, v in payload.items() if k != "secret"}, default=str)  # never store the secret
    error: InvalidSignal | None = None
    parsed = sent_at = None
    try:  # the lag is judged by ``ingest`` (stale alerts are stored and explained, not dropped)
        alert = parse_tradingview_alert(body, secret=secret, max_lag_seconds=10**9, now=now)
        parsed, sent_at = alert.signal, alert.sent_at
        message_id = str(alert.alert_id)[:64] if alert.alert_id else message_id
    except InvalidSignal as exc:
        error = exc

    def store(session: Session, journal: Journal) -> tuple[Intake, SignalSource]:
        src = session.get(SignalSource, source.id)
        return ingest(session, src, source_message_id=message_id, text=text, sent_at=sent_at, journal=journal,
                      now=now, parsed=parsed, parse_text=False, error=error.message if error else None), src

    result = await _store_and_dispatch(engine, adapters, now, store, dispatch and error is None)
    if error is not None:
        raise error
    return result


def _alert_key(payload: dict[str, Any], body: bytes) -> str:
    """The alert's own id, else a hash of the body: a retried delivery has the same key."""
    alert_id = payload.get("alert_id")
    return str(alert_id)[:64] if alert_id else "sha256:" + hashlib.sha256(body).hexdigest()[:40]


def _source_by(session: Session, condition) -> SignalSource:
    source = session.exec(select(SignalSource).where(condition)).first()
    if source is None:
        raise NotFound("No signal source is set up for this channel.")
    return source


async def process_pending(*, engine: sa.Engine | None = None, adapters: Adapters | None = None) -> dict[str, Any]:
    """The worker's tick, callable from a job: dispatch, send, confirm and re-read what is unfinished."""
    engine = _engine(engine)
    report = await recover(engine, adapters or shared_adapters(engine), inline_retries=False)
    return {"signals": report.signals, "orders_submitted": report.submitted,
            "retries_pending": len(report.retries_pending)}


# --------------------------------------------------------------------------- manual commands
def _own_account(session: Session, user_id: int, broker_account_id: int) -> BrokerAccount:
    account = session.get(BrokerAccount, broker_account_id)
    if account is None:
        raise NotFound("That broker account does not exist.")
    if account.user_id != user_id:
        raise PermissionDenied("That broker account belongs to someone else.")
    return account


def _position(session: Session, account: BrokerAccount, symbol: str) -> Position:
    pos = session.exec(select(Position).where(Position.broker_account_id == account.id,
                                              Position.symbol == symbol)).first()
    if pos is None or pos.quantity == 0:
        raise ValidationError(f"You hold no {symbol} position in {account.label}.", field="symbol")
    return pos


async def _run(engine, adapters, plan: Plan, session: Session, journal: Journal, now: datetime) -> list[int]:
    ids = plan.write(session, journal)
    record_intents(session, Followups(set(), set(plan.cancel_order_ids), plan.replace), now)
    journal.flush_audit(session)
    session.commit()
    journal.publish()
    await execute(engine, adapters or shared_adapters(engine), submit_ids=ids, cancel_ids=plan.cancel_order_ids,
                  replace=plan.replace)
    return [i.id for i in plan.intents]


def _orders(engine, ids: list[int]) -> list[dict[str, Any]]:
    with Session(engine) as session:
        rows = session.exec(select(Order).where(Order.id.in_(ids)).order_by(Order.id)).all() if ids else []
        return [{"id": o.id, "client_order_id": o.client_order_id, "leg": o.leg, "side": o.side,
                 "symbol": o.symbol, "quantity": o.quantity, "status": o.status,
                 "filled_quantity": o.filled_quantity, "avg_fill_price": o.avg_fill_price,
                 "error_message": o.error_message} for o in rows]


async def close_position(user_id: int, broker_account_id: int, symbol: str, percent: Decimal | int = 100, *,
                         request_id: str | None = None, now: datetime | None = None,
                         engine: sa.Engine | None = None, adapters: Adapters | None = None) -> dict[str, Any]:
    """Close all (100) or a percentage of a position with a reduce-only market order.

    ``request_id`` (e.g. the UI's idempotency key) makes a double click one order.
    """
    engine, now = _engine(engine), now or utcnow()
    percent = Decimal(str(percent))
    if not Decimal(0) < percent <= HUNDRED:
        raise ValidationError("The percentage to close must be above 0 and at most 100.", field="percent")
    adapters = adapters or shared_adapters(engine)
    journal, plan = Journal(), Plan()
    with Session(engine, expire_on_commit=False) as session:
        account = _own_account(session, user_id, broker_account_id)
        pos = _position(session, account, symbol)
        held = abs(pos.quantity)
        qty = held if percent == HUNDRED else await _rounded(adapters, account, pos, held * percent / HUNDRED)
        if qty <= 0:
            raise ValidationError(f"{percent}% of your {held} {symbol} rounds down to nothing.", field="percent")
        cid = command_order_id("close", account.id, symbol, request_id or uuid.uuid4().hex)
        frees_first = bool(accounts_where(adapters, [account], lambda caps: caps.exits_reserve_quantity))
        plan_close(plan, session, journal, position=pos, quantity=qty, orders=open_orders(session, [account.id])[account.id],
                   cid=cid, leg=legs.CLOSE, now=now, frees_first=frees_first,
                   replaceable=accounts_that_replace(adapters, [account]) if frees_first else set())
        journal.audit("position.close_requested", subject_type="position", subject_id=pos.id, actor_user_id=user_id,
                      data={"symbol": symbol, "percent": str(percent), "quantity": str(qty)})
        ids = await _run(engine, adapters, plan, session, journal, now)
    return {"orders": _orders(engine, ids)}


async def _rounded(adapters: Adapters, account: BrokerAccount, pos: Position, qty: Decimal) -> Decimal:
    info = await adapters.get(account).instrument(pos.symbol, pos.asset_class)
    return round_down(qty, info.quantity_step if info.quantity_step else (None if info.fractional else Decimal(1)))


async def reverse_position(user_id: int, broker_account_id: int, symbol: str, *, request_id: str | None = None,
                           now: datetime | None = None, engine: sa.Engine | None = None,
                           adapters: Adapters | None = None) -> dict[str, Any]:
    """Close the whole position, then (only once the close has filled) open the same size the other way."""
    engine, now = _engine(engine), now or utcnow()
    journal, plan = Journal(), Plan()
    request_id = request_id or uuid.uuid4().hex
    with Session(engine, expire_on_commit=False) as session:
        account = _own_account(session, user_id, broker_account_id)
        pos = _position(session, account, symbol)
        close = plan_close(plan, session, journal, position=pos, quantity=abs(pos.quantity),
                           orders=open_orders(session, [account.id])[account.id],
                           cid=command_order_id("reverse-close", account.id, symbol, request_id), leg=legs.REVERSE, now=now)
        plan.add(order_fields(client_order_id=command_order_id("reverse-open", account.id, symbol, request_id),
                              user_id=user_id, broker_account_id=account.id, symbol=symbol, asset_class=pos.asset_class,
                              side=close.fields["side"], quantity=abs(pos.quantity), leg=legs.ENTRY, now=now,
                              time_in_force="gtc" if pos.asset_class == "crypto" else "day"), wait_for=close)
        journal.audit("position.reverse_requested", subject_type="position", subject_id=pos.id, actor_user_id=user_id,
                      data={"symbol": symbol, "quantity": str(abs(pos.quantity))})
        ids = await _run(engine, adapters, plan, session, journal, now)
    return {"orders": _orders(engine, ids)}


async def move_stop(user_id: int, broker_account_id: int, symbol: str, stop_price: Decimal | None = None, *,
                    request_id: str | None = None, now: datetime | None = None, engine: sa.Engine | None = None,
                    adapters: Adapters | None = None) -> dict[str, Any]:
    """Move the position's stop to ``stop_price``, or to breakeven (the average entry) when None."""
    from backend.signals import Signal as ParsedSignal

    engine, now = _engine(engine), now or utcnow()
    journal, plan = Journal(), Plan()
    with Session(engine, expire_on_commit=False) as session:
        account = _own_account(session, user_id, broker_account_id)
        pos = _position(session, account, symbol)
        adapters = adapters or shared_adapters(engine)
        modify = ParsedSignal(action="modify", symbol=symbol, asset_class=pos.asset_class, stop_loss=stop_price)
        changed = plan_modify(plan, session, journal, signal=modify, signal_id=None,
                              seed=f"cmd-stop:{request_id or uuid.uuid4().hex}",
                              follower_id=user_id, account_id=account.id, position=pos,
                              orders=open_orders(session, [account.id])[account.id], key=pos.symbol, now=now,
                              replaceable=accounts_that_replace(adapters, [account]))
        journal.audit("position.stop_moved", subject_type="position", subject_id=pos.id, actor_user_id=user_id,
                      data={"symbol": symbol, "stop_price": None if stop_price is None else str(stop_price),
                            "breakeven": stop_price is None, "orders_changed": changed})
        ids = await _run(engine, adapters, plan, session, journal, now)
    return {"orders_changed": changed, "orders": _orders(engine, ids)}


async def cancel_pending_entries(user_id: int, broker_account_id: int, symbol: str, *, now: datetime | None = None,
                                 engine: sa.Engine | None = None, adapters: Adapters | None = None) -> dict[str, Any]:
    engine, now = _engine(engine), now or utcnow()
    journal, plan = Journal(), Plan()
    with Session(engine, expire_on_commit=False) as session:
        account = _own_account(session, user_id, broker_account_id)
        count = plan_cancel(plan, session, journal, orders=open_orders(session, [account.id])[account.id], key=symbol,
                            now=now, reason="Cancelled by you.")
        await _run(engine, adapters, plan, session, journal, now)
    return {"cancelled": count}


def run_sync(coro) -> Any:
    """For synchronous callers (a CLI, a sync job): run one of the coroutines above."""
    return asyncio.run(coro)
