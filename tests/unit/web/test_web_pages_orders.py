"""Orders page state called directly: own orders only, filters, story, CSV download."""

from __future__ import annotations

import base64
import csv
import io
from datetime import timedelta
from decimal import Decimal

from sqlmodel import Session, select

from backend.db.models import BrokerAccount, Order
from backend.db.types import utcnow
from backend.services.orders import CSV_COLUMNS
from state.orders import OrdersState
from test_web_states import redirect_target
from webstate import sign_in


def signed_in(db, user) -> OrdersState:
    state = sign_in(OrdersState, db, user)
    return state


def test_owner_sees_orders_and_opens_the_story(db, users):
    state = signed_in(db, users["dana"])
    assert state.load() is None
    assert [r["symbol"] for r in state.rows] == ["AAPL"] and not state.has_older and not state.has_newer
    assert state.count == "1 order"
    assert [x["name"] for x in state.sources] == ["Pat's TradingView alerts", "Pat's trade calls"]
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


def csv_of(event) -> list[dict[str, str]]:
    """The rows of the file an ``rx.download`` event hands to the browser (a base64 data URL)."""
    args = {k._js_expr: v._var_value for k, v in event.args}
    assert args["filename"] == "orders.csv"
    head, _, payload = args["url"].partition(",")
    assert head == "data:text/csv;base64"
    return list(csv.DictReader(io.StringIO(base64.b64decode(payload).decode())))


def test_csv_download_is_the_users_filtered_list(db, users):
    dana = users["dana"]
    with Session(db) as s:
        account = s.exec(select(BrokerAccount).where(BrokerAccount.user_id == dana.id)).one()
        for i, symbol in enumerate(["MSFT", "MSFT", "TSLA"]):
            s.add(Order(client_order_id=f"csv-{i}", user_id=dana.id, broker_account_id=account.id, symbol=symbol,
                        side="sell", quantity=Decimal(i + 1), status="rejected", error_message="Market closed",
                        created_at=utcnow() + timedelta(minutes=i)))
        alex_orders = s.exec(select(Order.id).where(Order.user_id == users["alex"].id)).all()
        s.commit()
    state = signed_in(db, dana)
    state.load()
    everything = csv_of(state.export_csv())
    assert [r["symbol"] for r in everything] == ["TSLA", "MSFT", "MSFT", "AAPL"]  # newest first, Dana's only
    assert not {int(r["id"]) for r in everything} & set(alex_orders)
    aapl = everything[-1]
    assert (aapl["source"], aapl["side"], aapl["quantity"], aapl["status"]) == ("Pat's trade calls", "buy", "10",
                                                                                 "filled")
    state.set_symbol("msft")
    state.apply_filters()
    msft = csv_of(state.export_csv())
    assert [(r["symbol"], r["quantity"], r["status"], r["error"]) for r in msft] == [
        ("MSFT", "2", "rejected", "Market closed"), ("MSFT", "1", "rejected", "Market closed")]
    assert list(msft[0]) == CSV_COLUMNS


def test_anonymous_csv_goes_to_login_without_data(db):
    anon = OrdersState()
    assert redirect_target(anon.export_csv()).startswith("/login") and anon.rows == []


def test_pages_move_by_keyset_and_the_count_is_shown(db, users):
    sam = users["sam"]
    with Session(db) as s:
        account = s.exec(select(BrokerAccount).where(BrokerAccount.user_id == sam.id)).one()
        now = utcnow()
        for i in range(120):
            s.add(Order(client_order_id=f"pg-{i}", user_id=sam.id, broker_account_id=account.id, symbol="MSFT",
                        side="buy", quantity=Decimal(i + 1), created_at=now - timedelta(minutes=i)))
        s.commit()
    state = signed_in(db, sam)
    state.load()
    assert state.count == "120 orders" and len(state.rows) == 50
    assert (state.has_newer, state.has_older) == (False, True)
    assert state.rows[0]["quantity"] == "1"
    state.next_page()
    assert (state.rows[0]["quantity"], state.has_newer, state.has_older) == ("51", True, True)
    state.oldest_page()
    assert (state.rows[-1]["quantity"], state.has_newer, state.has_older) == ("120", True, False)
    assert state.next_page() is None and state.rows[-1]["quantity"] == "120"  # nothing older: stays
    state.previous_page()
    assert state.rows[0]["quantity"] == "21"
    state.newest_page()
    assert state.rows[0]["quantity"] == "1" and not state.has_newer
    state.set_status("rejected")
    assert state.rows == [] and state.count == "0 orders" and not state.has_older
