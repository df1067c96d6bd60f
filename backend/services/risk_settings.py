"""A follower's risk settings (the ``risk_profiles`` row): read as form text, validate, save.

Validation is field by field so the page can put each message next to its
input: ``RiskSettingsInvalid`` is a ``ValidationError`` whose ``field`` and
``message`` are the first problem and whose ``errors`` maps every bad field to
its message.  The checks are the ones a trader most often gets wrong: a
negative or zero size, a percentage over 100, a daily loss limit larger than
the equity it is meant to protect, symbols the parser would never produce,
and market hours that are not ``HH:MM``.  Saving never touches the trading
state (ACTIVE/REDUCING/HALTED): that belongs to the risk engine.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlmodel import Session, select

from backend.db.models import RiskProfileRecord
from backend.db.types import utcnow
from backend.errors import ValidationError
from backend.services import dashboard

SIZING_MODES = {"fixed_units": "Fixed quantity", "fixed_notional": "Fixed amount ($)",
                "percent_equity": "% of equity", "risk_percent": "% of equity at risk (needs a stop)"}
PERCENT_MODES = {"percent_equity", "risk_percent"}
SYMBOL = re.compile(r"^[A-Z][A-Z0-9]{0,9}(?:[./-][A-Z0-9]{1,10})?$")
HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
HUNDRED = Decimal(100)
DECIMAL_FIELDS = ("sizing_value", "max_position_notional", "max_leverage", "daily_loss_limit")
INT_FIELDS = ("max_open_positions", "max_signals_per_minute")
BOOL_FIELDS = ("enforce_market_hours", "flatten_on_daily_loss", "use_signal_quantity")
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
    form["trading_state"], form["state_reason"] = p.trading_state, p.state_reason or ""
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
    if mode not in SIZING_MODES:
        errors["sizing_mode"] = "Choose a sizing mode."
    clean["sizing_mode"] = mode
    size = _decimal(errors, form, "sizing_value", required=True)
    if size is not None and mode in PERCENT_MODES and size > HUNDRED:
        errors["sizing_value"] = "A percentage cannot be over 100."
    clean["sizing_value"] = size
    for name in ("max_position_notional", "max_leverage", "daily_loss_limit"):
        clean[name] = _decimal(errors, form, name)
    loss = clean["daily_loss_limit"]
    if loss is not None and equity is not None and equity > 0 and loss > equity:
        errors["daily_loss_limit"] = f"Above your equity ({equity:,.2f}): this limit could never stop anything."
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
    for name, value in clean.items():
        setattr(profile, name, value)
    profile.updated_at = utcnow()
    session.add(profile)
    session.commit()
    session.refresh(profile)
    return profile
