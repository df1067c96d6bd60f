"""Risk settings beyond the first form: provider-default sizing, the close-only switch, the soft loss
threshold and the price-sanity bounds (kept when an older form does not send them)."""

from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal

import pytest
from sqlmodel import select

from backend.db.models import AuditEvent, RiskProfileRecord
from backend.execution.seeding import seed_world
from backend.services import risk_settings as svc

GOOD = {"sizing_mode": "percent_equity", "sizing_value": "2", "max_position_notional": "", "max_open_positions": "",
        "max_leverage": "", "daily_loss_limit": "500", "max_signals_per_minute": "", "allowed_symbols": "",
        "denied_symbols": "", "market_open": "09:30", "market_close": "16:00", "market_tz": "America/New_York"}
NOW = datetime(2025, 1, 6, 15, 0, tzinfo=timezone.utc)


def test_provider_default_sizing_needs_no_size():
    clean = svc.validate({**GOOD, "sizing_mode": "provider_default", "sizing_value": ""}, None)
    assert clean["sizing_mode"] == "provider_default" and "sizing_value" not in clean
    assert "provider_default" in svc.PROFILE_SIZING_MODES and "provider_default" not in svc.SIZING_MODES


@pytest.mark.parametrize("change,words", [
    ({"reduce_at_loss_percent": "100"}, "below 100"),
    ({"reduce_at_loss_percent": "75", "daily_loss_limit": ""}, "Set a daily loss limit first"),
    ({"reduce_at_loss_percent": "-5"}, "more than 0"),
])
def test_the_soft_threshold_is_checked_on_its_field(change, words):
    with pytest.raises(svc.RiskSettingsInvalid) as err:
        svc.validate({**GOOD, **change}, None)
    assert err.value.field == "reduce_at_loss_percent" and words in err.value.errors["reduce_at_loss_percent"]


def test_an_older_form_without_the_new_fields_keeps_them(session):
    world = seed_world(session)
    uid = world.followers[0].id
    saved = svc.save(session, uid, {**GOOD, "reduce_at_loss_percent": "75", "max_price_deviation_percent": "5"})
    assert (saved.reduce_at_loss_percent, saved.max_price_deviation_percent) == (Decimal(75), Decimal(5))
    again = svc.save(session, uid, GOOD)  # no percent fields, no close-only switch in it
    assert (again.reduce_at_loss_percent, again.max_price_deviation_percent) == (Decimal(75), Decimal(5))
    assert again.max_option_price_deviation_percent == Decimal(50) and again.close_only is False
    cleared = svc.save(session, uid, {**GOOD, "max_price_deviation_percent": ""})
    assert cleared.max_price_deviation_percent is None  # an empty field switches the check off


def test_the_close_only_switch_in_the_form_moves_the_state_and_is_audited(session):
    world = seed_world(session)
    uid = world.followers[0].id
    on = svc.save(session, uid, {**GOOD, "close_only": True})
    assert (on.trading_state, on.close_only, on.halted_on) == ("REDUCING", True, None)
    form = svc.as_form(on)
    assert form["close_only"] is True and form["trading_state"] == "REDUCING" and "your setting" in form["state_reason"]
    off = svc.save(session, uid, {**GOOD, "close_only": False})
    assert (off.trading_state, off.close_only) == ("ACTIVE", False)
    actions = session.exec(select(AuditEvent.action).where(AuditEvent.subject_id == str(uid))).all()
    assert actions.count("risk.close_only_set") == 2 and actions.count("risk.state_changed") == 2


def test_switching_close_only_off_never_lifts_the_engines_halt(session):
    world = seed_world(session)
    uid = world.followers[0].id
    row = session.get(RiskProfileRecord, world.profiles[0].id)
    row.trading_state, row.halted_on, row.state_reason = "HALTED", date(2025, 1, 6), "Daily loss limit reached."
    session.commit()
    svc.set_close_only(session, uid, True, now=NOW)
    profile = svc.set_close_only(session, uid, False, now=NOW)
    assert (profile.trading_state, profile.halted_on) == ("HALTED", date(2025, 1, 6))
    assert "lifts at the start of Tuesday 07 January" in svc.as_form(profile)["state_reason"]
