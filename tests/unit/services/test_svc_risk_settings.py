"""Risk settings validation: each common mistake is refused on its own field."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlmodel import Session, select

from backend.db.models import RiskProfileRecord, User
from backend.services import risk_settings as svc
from backend.services.demo_seed import seed_demo

GOOD = {"sizing_mode": "percent_equity", "sizing_value": "2", "max_position_notional": "10000",
        "max_open_positions": "10", "max_leverage": "", "daily_loss_limit": "2000", "max_signals_per_minute": "",
        "allowed_symbols": "aapl, $msft BTC/USDT", "denied_symbols": "GME", "market_open": "09:30",
        "market_close": "16:00", "market_tz": "America/New_York", "enforce_market_hours": True}


@pytest.mark.parametrize("change,field,words", [
    ({"sizing_value": "-5"}, "sizing_value", "more than 0"),
    ({"sizing_value": "150"}, "sizing_value", "over 100"),
    ({"sizing_mode": "yolo"}, "sizing_mode", "Choose"),
    ({"daily_loss_limit": "500000"}, "daily_loss_limit", "Above your equity"),
    ({"allowed_symbols": "AAPL, not a ticker!"}, "allowed_symbols", "Not a symbol"),
    ({"denied_symbols": "AAPL"}, "denied_symbols", "Both allowed and denied"),
    ({"market_open": "9.30"}, "market_open", "HH:MM"),
    ({"market_close": "08:00"}, "market_close", "after the open"),
    ({"market_tz": "Mars/Olympus"}, "market_tz", "time zone"),
    ({"max_open_positions": "2.5"}, "max_open_positions", "whole number"),
])
def test_each_mistake_names_its_field(change, field, words):
    with pytest.raises(svc.RiskSettingsInvalid) as err:
        svc.validate({**GOOD, **change}, Decimal("100000"))
    assert err.value.field == field and words in err.value.errors[field]


def test_valid_form_is_cleaned():
    clean = svc.validate(GOOD, Decimal("100000"))
    assert clean["allowed_symbols"] == ["AAPL", "MSFT", "BTC/USDT"]
    assert clean["sizing_value"] == Decimal("2") and clean["max_leverage"] is None
    assert clean["enforce_market_hours"] is True and clean["flatten_on_daily_loss"] is False


def test_save_updates_only_that_users_row_and_keeps_the_state(session, engine):
    seed_demo(engine)
    users = {u.username: u.id for u in session.exec(select(User)).all()}
    svc.save(session, users["alex"], {**GOOD, "sizing_mode": "fixed_notional", "sizing_value": "750"})
    rows = {r.user_id: r for r in session.exec(select(RiskProfileRecord)).all()}
    assert rows[users["alex"]].sizing_value == Decimal("750") and rows[users["alex"]].trading_state == "ACTIVE"
    assert rows[users["sam"]].sizing_mode == "percent_equity"
    form = svc.as_form(rows[users["alex"]])
    assert form["sizing_value"] == "750" and form["allowed_symbols"] == "AAPL, MSFT, BTC/USDT"
