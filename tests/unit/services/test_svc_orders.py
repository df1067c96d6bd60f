"""Order history service: filters, pages, story and CSV, always scoped to the caller."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlmodel import Session, select

from backend.db.models import BrokerAccount, Order, User
from backend.db.types import utcnow
from backend.errors import NotFound, ValidationError
from backend.services import orders as svc
from backend.services.demo_seed import seed_demo


@pytest.fixture
def world(engine):
    seed_demo(engine)
    with Session(engine, expire_on_commit=False) as s:
        users = {u.username: u for u in s.exec(select(User)).all()}
        account = s.exec(select(BrokerAccount).where(BrokerAccount.user_id == users["sam"].id)).one()
        now = utcnow()
        for i in range(120):
            s.add(Order(client_order_id=f"t-{i}", user_id=users["sam"].id, broker_account_id=account.id,
                        symbol="MSFT" if i % 2 else "TSLA", side="buy", quantity=Decimal(i + 1),
                        status="filled" if i % 3 == 0 else "rejected", created_at=now - timedelta(days=i)))
        s.commit()
    return users


def test_pages_of_fifty_newest_first_with_keyset_neighbours(session, world):
    sam = world["sam"].id
    first = svc.list_orders(session, sam, svc.OrderFilter())
    assert len(first.rows) == 50 and first.has_older and not first.has_newer
    assert [r["quantity"] for r in first.rows] == [Decimal(i + 1) for i in range(50)]
    second = svc.list_orders(session, sam, svc.OrderFilter(), first.request_older())
    assert [r["quantity"] for r in second.rows] == [Decimal(i + 51) for i in range(50)]
    assert second.has_newer and second.has_older
    third = svc.list_orders(session, sam, svc.OrderFilter(), second.request_older())
    assert len(third.rows) == 20 and third.has_newer and not third.has_older
    back = svc.list_orders(session, sam, svc.OrderFilter(), third.request_newer())
    assert back.rows == second.rows and back.has_newer and back.has_older
    top = svc.list_orders(session, sam, svc.OrderFilter(), back.request_newer())
    assert top.rows == first.rows and not top.has_newer


def test_oldest_page_and_a_short_newer_page_tops_up_to_the_newest(session, world):
    sam = world["sam"].id
    oldest = svc.list_orders(session, sam, svc.OrderFilter(), svc.PageRequest("oldest"))
    assert [r["quantity"] for r in oldest.rows] == [Decimal(i + 71) for i in range(50)]
    assert oldest.has_newer and not oldest.has_older
    newer = svc.list_orders(session, sam, svc.OrderFilter(), oldest.request_newer())
    assert [r["quantity"] for r in newer.rows] == [Decimal(i + 21) for i in range(50)]
    # Only 20 orders are newer than that page: the newest full page is shown instead of 20 rows.
    top = svc.list_orders(session, sam, svc.OrderFilter(), newer.request_newer())
    assert [r["quantity"] for r in top.rows] == [Decimal(i + 1) for i in range(50)] and not top.has_newer


def test_new_orders_do_not_shift_the_page_on_screen(session, world):
    sam = world["sam"]
    second = svc.list_orders(session, sam.id, svc.OrderFilter(),
                             svc.list_orders(session, sam.id, svc.OrderFilter()).request_older())
    account = session.exec(select(BrokerAccount).where(BrokerAccount.user_id == sam.id)).one()
    for i in range(3):
        session.add(Order(client_order_id=f"new-{i}", user_id=sam.id, broker_account_id=account.id, symbol="NVDA",
                          side="buy", quantity=Decimal(1000 + i), created_at=utcnow()))
    session.commit()
    again = svc.list_orders(session, sam.id, svc.OrderFilter(), second.request_same())
    assert again.rows == second.rows and again.has_newer and again.has_older
    top = svc.list_orders(session, sam.id, svc.OrderFilter(),
                          svc.list_orders(session, sam.id, svc.OrderFilter()).request_same())
    assert [r["symbol"] for r in top.rows[:3]] == ["NVDA"] * 3


def test_ties_on_the_creation_time_are_paged_by_id(session, world):
    sam = world["sam"]
    account = session.exec(select(BrokerAccount).where(BrokerAccount.user_id == sam.id)).one()
    same_time = utcnow() + timedelta(days=1)
    for i in range(7):
        session.add(Order(client_order_id=f"tie-{i}", user_id=sam.id, broker_account_id=account.id, symbol="AMD",
                          side="buy", quantity=Decimal(1), created_at=same_time))
    session.commit()
    f = svc.OrderFilter(symbol="AMD")
    seen, page = [], svc.list_orders(session, sam.id, f, page_size=3)
    seen += [r["id"] for r in page.rows]
    while page.has_older:
        page = svc.list_orders(session, sam.id, f, page.request_older(), page_size=3)
        seen += [r["id"] for r in page.rows]
    assert len(seen) == 7 and seen == sorted(seen, reverse=True)


def test_page_requests_survive_encoding_and_garbage_is_the_newest_page(session, world):
    first = svc.list_orders(session, world["sam"].id, svc.OrderFilter())
    request = first.request_older()
    assert svc.PageRequest.decode(request.encode()) == request
    assert request.cursor.created_at.tzinfo is not None
    for junk in ["", "older", "older|yesterday|1", "drop table|x|y", "oldest|x"]:
        assert svc.PageRequest.decode(junk).kind in ("newest", "oldest")


def test_the_count_is_capped(session, world):
    sam = world["sam"].id
    assert svc.count_orders(session, sam, svc.OrderFilter()) == (120, False)
    assert svc.count_orders(session, sam, svc.OrderFilter(), cap=100) == (100, True)
    assert svc.count_orders(session, sam, svc.OrderFilter(symbol="msft")) == (60, False)
    assert svc.count_orders(session, world["pat"].id, svc.OrderFilter()) == (0, False)


def test_filters_combine(session, world):
    sam = world["sam"].id
    rows = svc.list_orders(session, sam, svc.OrderFilter(symbol=" msft ", status="filled")).rows
    assert rows and all(r["symbol"] == "MSFT" and r["status"] == "filled" for r in rows)
    today = utcnow().date()
    page = svc.list_orders(session, sam, svc.OrderFilter(date_from=today - timedelta(days=4), date_to=today))
    assert len(page.rows) == 5 and not page.has_older
    with pytest.raises(ValidationError) as err:
        svc.parse_day("31/01/2026", "date_from")
    assert err.value.field == "date_from"
    assert svc.parse_day("2026-01-31", "x") == date(2026, 1, 31)


def test_provider_filter_and_choices(session, world):
    dana = world["dana"].id
    choices = svc.provider_choices(session, dana)
    assert [n for _i, n in choices] == ["Pat's TradingView alerts", "Pat's trade calls"]
    calls = next(i for i, n in choices if n == "Pat's trade calls")
    alerts = next(i for i, n in choices if n != "Pat's trade calls")
    assert [r["source"] for r in svc.list_orders(session, dana, svc.OrderFilter(source_id=calls)).rows] == [
        "Pat's trade calls"]
    assert svc.list_orders(session, dana, svc.OrderFilter(source_id=alerts)).rows == []
    assert svc.count_orders(session, dana, svc.OrderFilter(source_id=calls)) == (1, False)
    assert svc.count_orders(session, dana, svc.OrderFilter(source_id=alerts)) == (0, False)
    # Sam is a member too (same community's providers), but someone outside it gets no choices.
    outsider = User(username="outsider")
    session.add(outsider)
    session.commit()
    assert svc.provider_choices(session, outsider.id) == []


def test_csv_is_capped_and_matches_the_filter(session, world):
    text = svc.export_csv(session, world["sam"].id, svc.OrderFilter(symbol="TSLA"), max_rows=7)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 7 and {r["symbol"] for r in rows} == {"TSLA"}
    assert list(rows[0]) == svc.CSV_COLUMNS
    # Newest first, every column in its place: TSLA orders are the even ones, quantity i + 1.
    assert [r["quantity"] for r in rows] == [str(Decimal(i + 1)) for i in range(0, 14, 2)]
    first = rows[0]
    assert (first["account"], first["source"], first["side"], first["type"], first["leg"]) == (
        "Paper account", "", "buy", "market", "entry")
    assert first["status"] == "filled" and first["error"] == "" and first["fees"] == "0"
    assert datetime.fromisoformat(first["created_at"]).tzinfo is not None


def test_story_of_a_seeded_order_and_nobody_elses(session, world):
    dana = world["dana"].id
    order = session.exec(select(Order).where(Order.user_id == dana)).first()
    story = svc.order_story(session, dana, order.id)
    assert story["signal"]["raw_text"].startswith("BTO AAPL")
    assert story["decision"]["approved"] is True
    assert story["fills"] and story["events"]
    with pytest.raises(NotFound):
        svc.order_story(session, world["alex"].id, order.id)
    assert svc.list_orders(session, world["pat"].id, svc.OrderFilter()).rows == []


def test_a_take_profit_held_by_the_engine_is_told_apart_from_a_new_order(session, world):
    """A held target is ``new`` and waits for itself (held_targets.py); the list says so, and the page's
    words are "Held until target price", not "New" (which would look stuck)."""
    from state.format import status_text

    sam = world["sam"]
    account = session.exec(select(BrokerAccount).where(BrokerAccount.user_id == sam.id)).one()
    plain = Order(client_order_id="plain-new", user_id=sam.id, broker_account_id=account.id, symbol="BTC/USDT",
                  side="buy", quantity=Decimal(1), created_at=utcnow())
    held = Order(client_order_id="held-tp1", user_id=sam.id, broker_account_id=account.id, symbol="BTC/USDT",
                 side="sell", quantity=Decimal(1), order_type="limit", limit_price=Decimal(70000), leg="tp1",
                 created_at=utcnow())
    session.add_all([plain, held])
    session.flush()
    held.wait_for_order_id = held.id
    session.commit()
    rows = {r["id"]: r for r in svc.list_orders(session, sam.id, svc.OrderFilter(symbol="BTC/USDT")).rows}
    assert rows[held.id]["held_by_engine"] and not rows[plain.id]["held_by_engine"]
    assert status_text(rows[held.id]["status"], rows[held.id]["held_by_engine"]) == "Held until target price"
    assert status_text(rows[plain.id]["status"], rows[plain.id]["held_by_engine"]) == "New"
