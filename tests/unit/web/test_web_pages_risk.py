"""Risk page state called directly: field errors on the field, own row only."""

from __future__ import annotations

from decimal import Decimal

from sqlmodel import Session, select

from backend.db.models import RiskProfileRecord
from state.risk import RiskState
from webstate import sign_in


def signed_in(db, user) -> RiskState:
    state = sign_in(RiskState, db, user)
    return state


def test_invalid_value_shows_on_its_field_and_nothing_is_saved(db, users):
    state = signed_in(db, users["alex"])
    state.load()
    assert state.form["daily_loss_limit"] == "2000" and state.trading_state == "ACTIVE"
    state.set_field("sizing_value", "-1")
    state.set_field("daily_loss_limit", "999999")
    state.save()
    assert set(state.field_errors) == {"sizing_value", "daily_loss_limit"} and state.saved == ""
    with Session(db) as s:
        row = s.exec(select(RiskProfileRecord).where(RiskProfileRecord.user_id == users["alex"].id)).one()
        assert row.sizing_value == Decimal("2")


def test_valid_save_touches_only_the_signed_in_users_row(db, users):
    state = signed_in(db, users["sam"])
    state.load()
    state.set_field("sizing_value", "3")
    state.set_switch("flatten_on_daily_loss", True)
    state.save()
    assert state.field_errors == {} and state.saved.startswith("Saved")
    with Session(db) as s:
        rows = {r.user_id: r for r in s.exec(select(RiskProfileRecord)).all()}
        assert rows[users["sam"].id].sizing_value == Decimal("3") and rows[users["sam"].id].flatten_on_daily_loss
        assert rows[users["alex"].id].sizing_value == Decimal("2")


def test_anonymous_gets_login_and_no_form(db):
    state = RiskState()
    assert state.load() is not None and state.form == {}
    assert state.save() is not None
