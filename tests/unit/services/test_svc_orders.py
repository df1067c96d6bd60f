"""Order history service: filters, pages, story and CSV, always scoped to the caller."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta
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


def test_pages_of_fifty_newest_first_with_a_next_flag(session, world):
    sam = world["sam"].id
    first, more = svc.list_orders(session, sam, svc.OrderFilter())
    assert len(first) == 50 and more and first[0]["quantity"] == Decimal(1)
    last, more = svc.list_orders(session, sam, svc.OrderFilter(), page=2)
    assert len(last) == 20 and not more


def test_filters_combine(session, world):
    sam = world["sam"].id
    rows, _ = svc.list_orders(session, sam, svc.OrderFilter(symbol=" msft ", status="filled"))
    assert rows and all(r["symbol"] == "MSFT" and r["status"] == "filled" for r in rows)
    today = utcnow().date()
    rows, more = svc.list_orders(session, sam, svc.OrderFilter(date_from=today - timedelta(days=4), date_to=today))
    assert len(rows) == 5 and not more
    with pytest.raises(ValidationError) as err:
        svc.parse_day("31/01/2026", "date_from")
    assert err.value.field == "date_from"
    assert svc.parse_day("2026-01-31", "x") == date(2026, 1, 31)


def test_csv_is_capped_and_matches_the_filter(session, world):
    text = svc.export_csv(session, world["sam"].id, svc.OrderFilter(symbol="TSLA"), max_rows=7)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 7 and {r["symbol"] for r in rows} == {"TSLA"}
    assert list(rows[0]) == svc.CSV_COLUMNS


def test_story_of_a_seeded_order_and_nobody_elses(session, world):
    dana = world["dana"].id
    order = session.exec(select(Order).where(Order.user_id == dana)).first()
    story = svc.order_story(session, dana, order.id)
    assert story["signal"]["raw_text"].startswith("BTO AAPL")
    assert story["decision"]["approved"] is True
    assert story["fills"] and story["events"]
    with pytest.raises(NotFound):
        svc.order_story(session, world["alex"].id, order.id)
    assert svc.list_orders(session, world["pat"].id, svc.OrderFilter()) == ([], False)
