"""A follower's risk settings (the ``risk_profiles`` row): read as form text, validate, save.

Validation is field by field so the page can put each message next to its
input: ``RiskSettingsInvalid`` is a ``ValidationError`` whose ``field`` and
``message`` are the first problem and whose ``errors`` maps every bad field to
its message.  The checks are the ones a trader most often gets wrong: a
negative or zero size, a percentage over 100, a daily loss limit larger than
the equity it is meant to protect, a close-only threshold without a daily
loss limit, symbols the parser would never produce, and market hours that
are not ``HH:MM``.

Sizing mode ``provider_default`` means "use the signal source's default"
(the value is then not needed); any other mode is the follower's own and
wins over the source's (a follow's override wins over both).

The trading state (ACTIVE/REDUCING/HALTED) belongs to the risk engine, with
one exception the follower controls: the close-only switch (``close_only``,
also ``set_close_only``).  On, the account is REDUCING (closes, stop moves
and cancels only) until switched off; off, it is ACTIVE again, unless the
engine has halted it or made it close-only for the day (the daily loss
limit and its soft threshold), which only a new trading day lifts.

Fields added after the first version of the form (``LATER_FIELDS``) are left
as they are when a form does not carry them, so an older form never
switches a safety check off by omission.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlmodel import Session, select

from backend.db.models import RiskProfileRecord
from backend.db.models.trading import PROVIDER_DEFAULT_SIZING
from backend.db.types import utcnow
from backend.errors import ValidationError
from backend.execution.journal import Journal
from backend.execution.trading_state import ACTIVE, CLOSE_ONLY_REASON, REDUCING, change_state, until_text
from backend.services import dashboard

SIZING_MODES = {"fixed_units": "Fixed quantity", "fixed_notional": "Fixed amount ($)",
                "percent_equity": "% of equity", "risk_percent": "% of equity at risk (needs a stop)"}
# The follower's profile may also leave sizing to the provider (a follow's override never does).
PROFILE_SIZING_MODES = {PROVIDER_DEFAULT_SIZING: "Provider's default", **SIZING_MODES}
PERCENT_MODES = {"percent_equity", "risk_percent"}
SYMBOL = re.compile(r"^[A-Z][A-Z0-9]{0,9}(?:[./-][A-Z0-9]{1,10})?$")
HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
HUNDRED = Decimal(100)
PERCENT_FIELDS = ("reduce_at_loss_percent", "max_price_deviation_percent", "max_option_price_deviation_percent")
DECIMAL_FIELDS = ("sizing_value", "max_position_notional", "max_leverage", "daily_loss_limit", *PERCENT_FIELDS)
INT_FIELDS = ("max_open_positions", "max_signals_per_minute")
BOOL_FIELDS = ("enforce_market_hours", "flatten_on_daily_loss", "use_signal_quantity", "close_only")
LATER_FIELDS = (*PERCENT_FIELDS, "close_only")
TEXT_FIELDS = ("sizing_mode", "market_open", "market_close", "market_tz")
LIST_FIELDS = ("allowed_symbols", "denied_symbols")


class RiskSettingsInvalid(ValidationError):
    code = "risk_settings_invalid"

    def __init__(self, errors: dict[str, str]) -> None:
        field, message = next(iter(errors.items()))
        super().__init__(message, field=field)
        self.errors = errors


def as_form(profile: RiskProfileRecord | None) -> dict[str, Any]:
    """The row as the form shows it: text for numbers and lists, bools for switches."""
    p = profile or RiskProfileRecord(user_id=0)
    form: dict[str, Any] = {}
    for name in DECIMAL_FIELDS:
        value = getattr(p, name)
        form[name] = "" if value is None else format(value.normalize(), "f")
    for name in INT_FIELDS:
        value = getattr(p, name)
        form[name] = "" if value is None else str(value)
    for name in TEXT_FIELDS:
        form[name] = getattr(p, name) or ""
    for name in BOOL_FIELDS:
        form[name] = bool(getattr(p, name))
    for name in LIST_FIELDS:
        form[name] = ", ".join(getattr(p, name) or [])
    form["trading_state"], form["state_reason"] = p.trading_state, ((p.state_reason or "") + until_text(p)).strip()
    return form


def _decimal(errors, form, name, *, required=False) -> Decimal | None:
    raw = str(form.get(name) or "").strip().replace(",", "")
    if not raw:
        if required:
            errors[name] = "Required."
        return None
    try:
        value = Decimal(raw)
    except InvalidOperation:
        errors[name] = "Type a number."
        return None
    if not value.is_finite():
        errors[name] = "Type a number."
        return None
    if value <= 0:
        errors[name] = "Must be more than 0 (leave empty for no limit)." if not required else "Must be more than 0."
        return None
    return value


def _int(errors, form, name) -> int | None:
    raw = str(form.get(name) or "").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) <= 0:
        errors[name] = "A whole number above 0 (leave empty for no limit)."
        return None
    return int(raw)


def _symbols(errors, form, name) -> list[str]:
    items = [s.strip().upper().lstrip("$") for s in re.split(r"[,\s]+", str(form.get(name) or "")) if s.strip()]
    bad = [s for s in items if not SYMBOL.match(s)]
    if bad:
        errors[name] = f"Not a symbol: {', '.join(bad[:3])}. Use tickers like AAPL, BRK.B or BTC/USDT."
    return list(dict.fromkeys(items))


def validate(form: Mapping[str, Any], equity: Decimal | None) -> dict[str, Any]:
    """Clean values for every field, or ``RiskSettingsInvalid`` naming each bad field."""
    errors: dict[str, str] = {}
    clean: dict[str, Any] = {}
    mode = str(form.get("sizing_mode") or "")
    if mode not in PROFILE_SIZING_MODES:
        errors["sizing_mode"] = "Choose a sizing mode."
    clean["sizing_mode"] = mode
    if mode == PROVIDER_DEFAULT_SIZING:  # the value is the provider's; keep whatever was typed, if usable
        size = _decimal({}, form, "sizing_value")
        if size is not None:
            clean["sizing_value"] = size
    else:
        size = _decimal(errors, form, "sizing_value", required=True)
        if size is not None and mode in PERCENT_MODES and size > HUNDRED:
            errors["sizing_value"] = "A percentage cannot be over 100."
        clean["sizing_value"] = size
    for name in ("max_position_notional", "max_leverage", "daily_loss_limit"):
        clean[name] = _decimal(errors, form, name)
    loss = clean["daily_loss_limit"]
    if loss is not None and equity is not None and equity > 0 and loss > equity:
        errors["daily_loss_limit"] = f"Above your equity ({equity:,.2f}): this limit could never stop anything."
    for name in PERCENT_FIELDS:
        if name in form:
            clean[name] = _decimal(errors, form, name)
    soft = clean.get("reduce_at_loss_percent")
    if soft is not None and soft >= HUNDRED:
        errors["reduce_at_loss_percent"] = ("A share of the daily loss limit, below 100 (at 100 the limit itself "
                                            "halts trading).")
    elif soft is not None and loss is None and "daily_loss_limit" not in errors:
        errors["reduce_at_loss_percent"] = "Set a daily loss limit first: this is a percentage of it."
    for name in INT_FIELDS:
        clean[name] = _int(errors, form, name)
    for name in LIST_FIELDS:
        clean[name] = _symbols(errors, form, name)
    both = set(clean["allowed_symbols"]) & set(clean["denied_symbols"])
    if both and "denied_symbols" not in errors:
        errors["denied_symbols"] = f"Both allowed and denied: {', '.join(sorted(both))}."
    for name in ("market_open", "market_close"):
        value = str(form.get(name) or "").strip()
        if not HHMM.match(value):
            errors[name] = "Use 24-hour HH:MM, e.g. 09:30."
        clean[name] = value
    if "market_open" not in errors and "market_close" not in errors and clean["market_open"] >= clean["market_close"]:
        errors["market_close"] = "The close must be after the open."
    tz = str(form.get("market_tz") or "").strip()
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        errors["market_tz"] = "Unknown time zone; use a name like America/New_York."
    clean["market_tz"] = tz
    for name in BOOL_FIELDS:
        if name in form or name not in LATER_FIELDS:
            clean[name] = bool(form.get(name))
    if errors:
        raise RiskSettingsInvalid(errors)
    return clean


def load(session: Session, user_id: int) -> RiskProfileRecord | None:
    return session.exec(select(RiskProfileRecord).where(RiskProfileRecord.user_id == user_id)).first()


def user_equity(session: Session, user_id: int) -> Decimal | None:
    accounts = dashboard.account_views(session, user_id)
    known = [a.equity for a in accounts if a.equity is not None]
    return sum(known, Decimal(0)) if known else None


def save(session: Session, user_id: int, form: Mapping[str, Any]) -> RiskProfileRecord:
    """Validate against the user's current equity, then create or update their one row."""
    clean = validate(form, user_equity(session, user_id))
    profile = load(session, user_id) or RiskProfileRecord(user_id=user_id)
    close_only = clean.pop("close_only", profile.close_only)
    for name, value in clean.items():
        setattr(profile, name, value)
    profile.updated_at = utcnow()
    session.add(profile)
    return _apply_close_only(session, profile, close_only)


def set_close_only(session: Session, user_id: int, on: bool, *, now: datetime | None = None) -> RiskProfileRecord:
    """The follower's close-only switch (REDUCING): no new positions; closes, stop moves, cancels still work."""
    profile = load(session, user_id) or RiskProfileRecord(user_id=user_id)
    session.add(profile)
    return _apply_close_only(session, profile, bool(on), now=now)


def _apply_close_only(session: Session, profile: RiskProfileRecord, on: bool, *,
                      now: datetime | None = None) -> RiskProfileRecord:
    """Store the switch and move the state with it (audited, pushed to an open dashboard), then commit.

    Switching on makes an ACTIVE account REDUCING, and turns a day-long
    REDUCING into one with no end.  Switching off returns the follower's own
    REDUCING to ACTIVE; a state the engine set for the day (HALTED, or
    REDUCING past the soft threshold) stays until the next trading day.
    """
    now = now or utcnow()
    journal = Journal()
    was = profile.close_only
    profile.close_only = on
    state = profile.trading_state
    if on and (state == ACTIVE or (state == REDUCING and profile.halted_on is not None)):
        change_state(journal, profile, REDUCING, CLOSE_ONLY_REASON, now, for_the_day=False, notify=False)
    elif not on and was and state == REDUCING and profile.halted_on is None:
        change_state(journal, profile, ACTIVE, None, now, for_the_day=False, notify=False)
    if on != was:
        journal.audit("risk.close_only_set", subject_type="user", subject_id=profile.user_id,
                      actor_user_id=profile.user_id, data={"close_only": on, "state": profile.trading_state})
    session.flush()
    journal.flush_audit(session)
    session.commit()
    journal.publish()
    session.refresh(profile)
    return profile
