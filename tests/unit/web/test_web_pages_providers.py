"""Providers page state called directly: follow controls act for the signed-in user only."""

from __future__ import annotations

from sqlmodel import Session

from backend.db.models import Follow
from state.providers import DEFAULT_MODE, ProvidersState
from webstate import sign_in


def signed_in(db, user) -> ProvidersState:
    state = sign_in(ProvidersState, db, user)
    state.load()
    return state


def row(state, name):
    return next(p for p in state.providers if p["name"] == name)


def test_lists_the_community_sources_with_follow_state(db, users):
    alex = signed_in(db, users["alex"])
    names = {p["name"] for p in alex.providers}
    assert names == {"Pat's trade calls", "Pat's TradingView alerts"}
    assert row(alex, "Pat's trade calls")["following"] == "yes"
    assert row(alex, "Pat's TradingView alerts")["following"] == ""


def test_follow_toggle_size_and_unfollow(db, users):
    alex = signed_in(db, users["alex"])
    tv = row(alex, "Pat's TradingView alerts")
    alex.follow(tv["source_id"])
    tv = row(alex, "Pat's TradingView alerts")
    assert alex.error == "" and tv["following"] == "yes" and tv["auto_trade"] == "yes"
    alex.set_auto_trade(tv["follow_id"], False)
    assert row(alex, "Pat's TradingView alerts")["auto_trade"] == ""
    alex.open_sizing(tv)
    alex.set_sizing_mode("percent_equity")
    alex.set_sizing_value("150")
    alex.save_sizing()
    assert alex.field_errors == {"sizing_value": "A percentage cannot be over 100."} and alex.sizing_open
    alex.set_sizing_value("3")
    alex.save_sizing()
    assert alex.field_errors == {} and not alex.sizing_open
    assert row(alex, "Pat's TradingView alerts")["sizing"] == "% of equity: 3"
    alex.open_sizing(row(alex, "Pat's TradingView alerts"))
    alex.set_sizing_mode(DEFAULT_MODE)
    alex.save_sizing()
    assert row(alex, "Pat's TradingView alerts")["sizing"] == "Account default"
    alex.unfollow(tv["follow_id"])
    assert row(alex, "Pat's TradingView alerts")["following"] == ""


def test_another_users_follow_is_refused(db, users):
    alex = signed_in(db, users["alex"])
    sam = signed_in(db, users["sam"])
    alex_follow = row(alex, "Pat's trade calls")["follow_id"]
    sam.unfollow(alex_follow)
    assert sam.error == "That follow is not yours."
    sam.set_auto_trade(alex_follow, False)
    assert sam.error == "That follow is not yours."
    sam.open_sizing({"follow_id": alex_follow, "name": "x"})
    sam.set_sizing_mode("fixed_units")
    sam.set_sizing_value("1")
    sam.save_sizing()
    assert sam.error == "That follow is not yours."
    with Session(db) as s:
        f = s.get(Follow, int(alex_follow))
        assert f is not None and f.auto_trade and f.sizing_mode is None


def test_viewer_cannot_follow(db, users):
    riley = signed_in(db, users["riley"])
    calls = row(riley, "Pat's trade calls")
    assert calls["can_follow"] == ""
    # riley (viewer) already follows the TV source in the demo; a new follow is refused.
    riley.unfollow(calls["follow_id"])
    riley.follow(calls["source_id"])
    assert "trader role" in riley.error


def test_signed_out_is_sent_to_login(db):
    state = ProvidersState()
    assert state.load() is not None and state.providers == []
