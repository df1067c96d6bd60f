"""Orders page state called directly: own orders only, filters, story, CSV download."""

from __future__ import annotations

from sqlmodel import Session, select

from backend.db.models import Order
from state.orders import OrdersState
from webstate import sign_in


def signed_in(db, user) -> OrdersState:
    state = sign_in(OrdersState, db, user)
    return state


def test_owner_sees_orders_and_opens_the_story(db, users):
    state = signed_in(db, users["dana"])
    assert state.load() is None
    assert [r["symbol"] for r in state.rows] == ["AAPL"] and not state.has_more
    assert state.sources == [{"id": state.sources[0]["id"], "name": "Pat's trade calls"}]
    state.open_order(state.rows[0]["id"])
    assert state.story_open and state.story_signal["raw_text"].startswith("BTO AAPL")
    assert state.story_decision["verdict"] == "Approved" and state.story_fills


def test_filters_and_bad_dates(db, users):
    state = signed_in(db, users["dana"])
    state.load()
    state.set_symbol("tsla")
    state.apply_filters()
    assert state.rows == []
    state.set_date_from("yesterday")
    state.apply_filters()
    assert "2026-01-31" in state.error
    state.clear_filters()
    assert state.error == "" and len(state.rows) == 1


def test_another_user_cannot_open_danas_order(db, users):
    with Session(db) as s:
        danas = s.exec(select(Order.id).where(Order.user_id == users["dana"].id)).first()
    sam = signed_in(db, users["sam"])
    sam.load()
    assert sam.rows == []
    sam.open_order(str(danas))
    assert not sam.story_open and sam.story_order == {} and "does not exist" in sam.error


def test_csv_download_is_the_users_filtered_list(db, users):
    state = signed_in(db, users["dana"])
    state.load()
    event = state.export_csv()
    assert "download" in str(event).lower() or event is not None
    anon = OrdersState()
    assert anon.export_csv() is not None and anon.rows == []
