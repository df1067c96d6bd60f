"""Risk page state called directly: field errors on the field, close-only and the trading state, own row only."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
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


def _row(db, user) -> RiskProfileRecord:
    with Session(db) as s:
        return s.exec(select(RiskProfileRecord).where(RiskProfileRecord.user_id == user.id)).one()


def test_the_new_settings_save_and_come_back_on_the_next_visit(db, users):
    state = signed_in(db, users["alex"])
    state.load()
    assert (state.form["reduce_at_loss_percent"], state.form["max_price_deviation_percent"],
            state.form["max_option_price_deviation_percent"]) == ("", "10", "50")
    assert not state.provider_sizing and state.switches["close_only"] is False
    state.set_field("sizing_mode", "provider_default")
    state.set_field("reduce_at_loss_percent", "75")
    state.set_field("max_price_deviation_percent", "5")
    state.set_field("max_option_price_deviation_percent", "")  # empty: the option check is off
    state.save()
    assert state.field_errors == {} and state.saved.startswith("Saved")
    row = _row(db, users["alex"])
    assert (row.sizing_mode, row.reduce_at_loss_percent, row.max_price_deviation_percent,
            row.max_option_price_deviation_percent) == ("provider_default", Decimal(75), Decimal(5), None)
    again = signed_in(db, users["alex"])
    again.load()
    assert again.provider_sizing and again.form["reduce_at_loss_percent"] == "75"
    assert (again.form["max_price_deviation_percent"], again.form["max_option_price_deviation_percent"]) == ("5", "")


@pytest.mark.parametrize("name,value,words", [
    ("reduce_at_loss_percent", "-5", "more than 0"),
    ("reduce_at_loss_percent", "150", "below 100"),
    ("reduce_at_loss_percent", "three quarters", "Type a number"),
    ("max_price_deviation_percent", "-1", "more than 0"),
    ("max_price_deviation_percent", "10%", "Type a number"),
    ("max_option_price_deviation_percent", "0", "more than 0"),
    ("max_option_price_deviation_percent", "fifty", "Type a number"),
])
def test_a_bad_percentage_shows_its_message_on_its_field_and_saves_nothing(db, users, name, value, words):
    before = _row(db, users["alex"])
    state = signed_in(db, users["alex"])
    state.load()
    state.set_field(name, value)
    state.save()
    assert set(state.field_errors) == {name} and words in state.field_errors[name]
    assert state.error != "" and state.saved == ""
    assert state.form[name] == value  # what the trader typed stays in the box to be fixed
    after = _row(db, users["alex"])
    assert getattr(after, name) == getattr(before, name) and after.updated_at == before.updated_at


def test_soft_threshold_without_a_daily_loss_limit_is_refused_on_the_threshold(db, users):
    state = signed_in(db, users["alex"])
    state.load()
    state.set_field("daily_loss_limit", "")
    state.set_field("reduce_at_loss_percent", "75")
    state.save()
    assert set(state.field_errors) == {"reduce_at_loss_percent"}
    assert "daily loss limit first" in state.field_errors["reduce_at_loss_percent"]


def test_close_only_switch_acts_at_once_and_shows_the_state(db, users):
    state = signed_in(db, users["alex"])
    state.load()
    state.set_field("sizing_value", "7")  # an unsaved edit survives the switch
    state.set_close_only(True)
    assert (state.trading_state, state.switches["close_only"]) == ("REDUCING", True)
    assert "your setting" in state.state_reason and state.state_meaning.startswith("Close-only")
    assert state.form["sizing_value"] == "7" and state.saved.startswith("Close-only mode is on")
    row = _row(db, users["alex"])
    assert (row.close_only, row.trading_state, row.sizing_value) == (True, "REDUCING", Decimal(2))
    assert _row(db, users["sam"]).trading_state == "ACTIVE"
    state.save()  # saving the form keeps the switch as it is
    assert _row(db, users["alex"]).close_only is True and state.trading_state == "REDUCING"
    state.set_close_only(False)
    assert (state.trading_state, state.state_reason) == ("ACTIVE", "")
    assert state.state_meaning.startswith("Trading")


def test_switching_close_only_off_leaves_the_engines_halt_and_says_so(db, users):
    with Session(db) as s:
        row = s.exec(select(RiskProfileRecord).where(RiskProfileRecord.user_id == users["alex"].id)).one()
        row.trading_state, row.state_reason = "HALTED", "Daily loss limit reached: lost 2,100.00 of 2,000.00."
        row.halted_on = date(2025, 1, 6)
        s.add(row)
        s.commit()
    state = signed_in(db, users["alex"])
    state.load()
    assert state.trading_state == "HALTED" and state.state_meaning.startswith("Halted")
    assert "Daily loss limit reached" in state.state_reason and "lifts at the start of Tuesday" in state.state_reason
    state.set_close_only(True)
    state.set_close_only(False)
    assert state.trading_state == "HALTED" and "still applies" in state.saved


def test_a_trader_cannot_reach_another_members_profile(db, users):
    alex_before = _row(db, users["alex"])
    state = signed_in(db, users["sam"])
    state.load()
    state.set_field("user_id", str(users["alex"].id))  # not a form field: ignored
    state.set_field("id", str(alex_before.id))
    state.set_switch("user_id", True)
    assert "user_id" not in state.form and "id" not in state.form and "user_id" not in state.switches
    state.set_field("max_price_deviation_percent", "3")
    state.save()
    state.set_close_only(True)
    alex_after = _row(db, users["alex"])
    assert (alex_after.max_price_deviation_percent, alex_after.close_only, alex_after.updated_at) == (
        alex_before.max_price_deviation_percent, False, alex_before.updated_at)
    sam = _row(db, users["sam"])
    assert (sam.max_price_deviation_percent, sam.close_only) == (Decimal(3), True)


def test_anonymous_cannot_switch_close_only(db, users):
    state = RiskState()
    assert state.set_close_only(True) is not None
    with Session(db) as s:
        assert not any(r.close_only for r in s.exec(select(RiskProfileRecord)).all())


def test_a_halt_while_the_page_is_open_shows_up_without_losing_edits(db, users):
    state = signed_in(db, users["alex"])
    state.load()
    state.set_field("max_open_positions", "4")  # being edited
    with Session(db) as s:
        row = s.exec(select(RiskProfileRecord).where(RiskProfileRecord.user_id == users["alex"].id)).one()
        row.trading_state, row.state_reason = "HALTED", "Daily loss limit reached."
        s.add(row)
        s.commit()
    assert state._live_apply(users["alex"].id, orders=False, portfolio=True)  # a portfolio push arrived
    assert state.trading_state == "HALTED" and state.state_reason == "Daily loss limit reached."
    assert state.form["max_open_positions"] == "4"
