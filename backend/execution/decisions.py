"""Per-follower risk decisions of a fan-out: inputs, verdicts, records and state changes.

The pure risk engine (``backend.risk``) decides; this module gathers what it
needs for each follower (which account, which sizing, today's loss, the
source's signal rate), records every verdict (``risk_decisions``, unique per
signal and follower), audits it together with the order intents it
produced, and applies trading-state changes (HALTED on a daily-loss breach,
lifted on the next trading day).

Which account trades: the follow's ``broker_account_id`` when set (a
disconnected chosen account is a denial, never a silent switch to another
account), else the follower's first connected account with trade permission.
Sizing, first that applies (``sizing_for``): the follow's own override; the
follower's explicit sizing (any mode but ``provider_default``); the source's
default; the built-in default (2 % of equity) when the source has none.
Denied verdicts are told to the follower (``denial_note``): one notification
per follower and signal, with the reasons in plain words.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from backend.db.models import (
    BrokerAccount, Follow, Notification, RiskDecisionRecord, RiskProfileRecord, Signal, SignalSource,
)
from backend.db.models.trading import PROVIDER_DEFAULT_SIZING
from backend.execution.accounts import realized_today
from backend.execution.ids import IdPool
from backend.execution.intake import DISPATCHED, RECEIVED
from backend.execution.journal import Journal
from backend.execution.planner import Plan
from backend.execution.sqlutil import insert_ignore
from backend.execution.trading_state import change_state, lift_if_expired, notification_row
from backend.risk import Decision, MarketHours, Reason, RiskProfile

ZERO = Decimal(0)
BUILT_IN_SIZING = ("percent_equity", Decimal(2))
# Denials that are not news: a close of a position the follower never took.
QUIET_DENIALS = frozenset({"no_position"})


@dataclass
class Follower:
    follow: Follow
    profile_row: RiskProfileRecord
    account: BrokerAccount | None = None
    decision: Decision | None = None
    decision_id: int | None = None
    rules: Any = None
    sizing_from: str | None = None


def default_profile(user_id: int) -> RiskProfileRecord:
    """Settings for a follower who never saved any (not added to the session)."""
    return RiskProfileRecord(user_id=user_id)


def pick_account(follow: Follow, connected: list[BrokerAccount]) -> tuple[BrokerAccount | None, str]:
    if follow.broker_account_id is not None:
        chosen = next((a for a in connected if a.id == follow.broker_account_id), None)
        if chosen is None:
            return None, ("The broker account you chose for this source is not connected (or is read-only); "
                          "reconnect it or choose another.")
        return chosen, ""
    if not connected:
        return None, "You have no connected broker account with trading permission."
    return connected[0], ""


def sizing_for(row: RiskProfileRecord, follow: Follow, source: SignalSource) -> tuple[str, Decimal, str]:
    """(mode, value, where it came from): ``follow`` > ``profile`` > ``source`` > ``default``.

    The follower's profile counts only when they chose a sizing (its mode is
    not ``provider_default``, the mode of a profile nobody set a sizing on).
    """
    if follow.sizing_mode and follow.sizing_value is not None:
        return follow.sizing_mode, follow.sizing_value, "follow"
    if row.sizing_mode != PROVIDER_DEFAULT_SIZING:
        return row.sizing_mode, row.sizing_value, "profile"
    if source.default_sizing_mode and source.default_sizing_value is not None:
        return source.default_sizing_mode, source.default_sizing_value, "source"
    return (*BUILT_IN_SIZING, "default")


def risk_profile(row: RiskProfileRecord, follow: Follow, source: SignalSource, *, row_saved: bool) -> tuple[RiskProfile, str]:
    mode, value, origin = sizing_for(row, follow, source)
    hours = MarketHours(open_time=row.market_open, close_time=row.market_close, timezone=row.market_tz)
    profile = RiskProfile(
        sizing_mode=mode, sizing_value=value, max_position_notional=row.max_position_notional,
        max_open_positions=row.max_open_positions,
        max_leverage=row.max_leverage if row_saved else Decimal(1),
        allowed_symbols=frozenset(row.allowed_symbols or ()), denied_symbols=frozenset(row.denied_symbols or ()),
        enforce_market_hours=row.enforce_market_hours, market_hours=hours,
        max_signals_per_minute=row.max_signals_per_minute, daily_loss_limit=row.daily_loss_limit,
        flatten_on_daily_loss=row.flatten_on_daily_loss, use_signal_quantity=row.use_signal_quantity,
        reduce_at_loss_percent=row.reduce_at_loss_percent, max_price_deviation_percent=row.max_price_deviation_percent,
        max_option_price_deviation_percent=row.max_option_price_deviation_percent)
    return profile, origin


def denied(code: str, message: str, parsed: Any) -> Decision:
    return Decision(False, ZERO, (Reason(code, message),), {"signal": parsed.to_dict()}, side=parsed.side)


def lift_expired_halts(followers: list[Follower], journal: Journal, now: datetime) -> None:
    """End yesterday's halts (and day-long close-only states) before deciding (``trading_state``)."""
    for fl in followers:
        if fl.profile_row.id is not None:
            lift_if_expired(journal, fl.profile_row, now)


def loss_and_rate(session: Session, followers: list[Follower], source: SignalSource, signal_id: int,
                   now: datetime) -> tuple[dict[int, Decimal], int, list[str]]:
    """Today's realised P&L per follower and the source's signals in the last minute.

    Each is read only when some follower has the limit that uses it (a daily
    loss limit, a signals-per-minute cap); the decision's inputs then say it
    was not loaded rather than pretending it was zero.
    """
    not_loaded: list[str] = []
    realized: dict[int, Decimal] = defaultdict(lambda: ZERO)
    if any(fl.profile_row.daily_loss_limit for fl in followers):
        tz_users: dict[str, set[int]] = defaultdict(set)
        for fl in followers:
            tz_users[fl.profile_row.market_tz].add(fl.follow.follower_id)
        realized = realized_today(session, tz_users, now)
    else:
        not_loaded.append("realized_pnl_today")
    recent = 0
    if any(fl.profile_row.max_signals_per_minute for fl in followers):
        recent = session.execute(select(sa.func.count()).select_from(Signal).where(
            Signal.source_id == source.id, Signal.id != signal_id, Signal.received_at >= now - timedelta(seconds=60),
            Signal.status.in_((RECEIVED, DISPATCHED)))).scalar_one()
    else:
        not_loaded.append("recent_signal_count")
    return realized, recent, not_loaded


def write_decisions(session: Session, journal: Journal, signal_id: int, source: SignalSource,
                     followers: list[Follower], now: datetime, not_loaded: list[str], *,
                     ids: IdPool | None = None, decided: set[int] = frozenset()) -> None:
    """Record every verdict, unique per (signal, follower): a follower with a decision already (an
    earlier run; ``decided``, read under the signal's lock) gets none, and so no orders.

    With ``ids`` (drawn ahead, see ``bulk.IdPool``) the rows join the journal's single write."""
    rows = []
    for fl in followers:
        d = fl.decision.to_dict()
        inputs = dict(d["inputs"])
        inputs["decision"] = {k: d[k] for k in ("side", "limit_price", "stop_price", "new_trading_state", "flatten")}
        inputs["sizing_from"] = fl.sizing_from
        if not_loaded:
            inputs["not_loaded"] = not_loaded  # no limit of this follower's needed them
        rows.append({"signal_id": signal_id, "follower_id": fl.follow.follower_id, "follow_id": fl.follow.id,
                     "broker_account_id": fl.account.id if fl.account else None, "approved": fl.decision.approved,
                     "quantity": fl.decision.quantity, "reasons": d["reasons"], "inputs": inputs, "created_at": now})
    rows = [row for row in rows if row["follower_id"] not in decided]
    drawn = ids.take(RiskDecisionRecord.__tablename__, len(rows)) if ids is not None else None
    if drawn is not None:
        for row, decision_id in zip(rows, drawn):
            row["id"] = decision_id
        journal.writes.insert(RiskDecisionRecord.__table__, rows)
        found = {row["follower_id"]: row["id"] for row in rows}
    else:
        found = {follower: did for did, follower in insert_ignore(
            session, RiskDecisionRecord, rows, conflict=("signal_id", "follower_id"),
            returning=("id", "follower_id"))}
    for fl in followers:
        fl.decision_id = found.get(fl.follow.follower_id)
        if fl.decision_id is None:
            continue  # decided by an earlier run: its orders exist already
        note = denial_note(fl, signal_id, source, now)
        if note is not None:
            journal.insert(Notification, note)
        journal.push(fl.follow.follower_id, {"type": "decision.created", "decision": {
            "id": fl.decision_id, "signal_id": signal_id, "approved": fl.decision.approved,
            "quantity": str(fl.decision.quantity), "reasons": [r.message for r in fl.decision.reasons]}},
            key=fl.decision_id)


def audit_decisions(journal: Journal, signal_id: int, source: SignalSource, followers: list[Follower],
                     plan: Plan) -> None:
    """One audit event per follower: the decision and the order intents it produced."""
    intents: dict[int, list[dict]] = defaultdict(list)
    for intent in plan.intents:
        if intent.inserted:
            intents[intent.fields["user_id"]].append(intent.summary())
    for fl in followers:
        if fl.decision_id is None:
            continue
        uid = fl.follow.follower_id
        journal.audit("risk.decision", subject_type="risk_decision", subject_id=fl.decision_id, actor_user_id=uid,
                      community_id=source.community_id,
                      data={"signal_id": signal_id, "approved": fl.decision.approved,
                            "quantity": str(fl.decision.quantity), "codes": list(fl.decision.codes),
                            "orders_created": intents.pop(uid, [])})
    for uid, rest in intents.items():  # e.g. a flatten of another account of the same follower
        for summary in rest:
            journal.audit("order.created", subject_type="order", subject_id=summary["order_id"], actor_user_id=uid,
                          data=summary)


def denial_note(fl: Follower, signal_id: int, source: SignalSource, now: datetime) -> dict[str, Any] | None:
    """The notification telling a follower why this signal was not traded for them (None: approved, or quiet)."""
    d = fl.decision
    if d.approved or not d.reasons or set(d.codes) <= QUIET_DENIALS:
        return None
    signal = d.inputs.get("signal") or {}
    verb = {"open": (signal.get("side") or "trade").title(), "close": "Close", "modify": "Change",
            "cancel": "Cancel"}.get(signal.get("action"), "Signal")
    symbol = signal.get("symbol") or "?"
    body = " ".join(r.message for r in d.reasons if r.code not in QUIET_DENIALS)
    return notification_row(fl.follow.follower_id, "signal.denied", f"{verb} {symbol} from {source.name} not taken",
                            body, now, {"signal_id": signal_id, "decision_id": fl.decision_id,
                                        "codes": list(d.codes)})


STATE_CODES = ("daily_loss_limit", "daily_loss_soft")


def set_state(session: Session, journal: Journal, fl: Follower, d: Decision, now: datetime) -> None:
    """Apply the decision's trading-state change (a loss rule, so it lasts for the trading day)."""
    row = fl.profile_row
    if row.id is None:
        session.add(row)
    reason = next((r.message for r in d.reasons if r.code in STATE_CODES), d.reasons[0].message)
    change_state(journal, row, d.new_trading_state.value, reason, now, for_the_day=True, flatten=d.flatten)
