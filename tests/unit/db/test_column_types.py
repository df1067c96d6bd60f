"""The two storage invariants and the idempotency keys, on SQLite and Postgres.

Money round-trips as an exact ``Decimal`` (SQLite would otherwise go through
float), floats and naive datetimes are refused at write time, and the unique
keys that make retries harmless (webhook event id, API key hash) hold in the
database itself, not only in application code.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from backend.db.models import ApiKey, BillingCustomer, Subscription, User, WebhookEvent


def _user(session: Session) -> User:
    user = User(username="types-check")
    session.add(user)
    session.commit()
    return user


def _customer(session: Session) -> BillingCustomer:
    customer = BillingCustomer(user_id=_user(session).id, provider="stripe", provider_customer_id="cus_1")
    session.add(customer)
    session.commit()
    return customer


def test_money_round_trips_exactly(session):
    customer = _customer(session)
    amount = Decimal("12345678.0123456789")
    session.add(Subscription(customer_id=customer.id, provider="stripe", provider_subscription_id="sub_1",
                             plan="pro", status="active", amount=amount))
    session.commit()
    session.expire_all()
    stored = session.exec(select(Subscription)).one().amount
    assert isinstance(stored, Decimal)
    assert stored == amount
    # 0.1 + 0.2 is the classic float failure; as Decimal it must stay exact.
    assert stored + Decimal("0.1") + Decimal("0.2") == Decimal("12345678.3123456789")


def test_a_float_amount_is_refused(session):
    customer = _customer(session)
    session.add(Subscription(customer_id=customer.id, provider="stripe", provider_subscription_id="sub_f",
                             plan="pro", status="active", amount=19.99))
    with pytest.raises(sa.exc.StatementError, match="Decimal, not float"):
        session.commit()


def test_times_come_back_utc_aware_and_naive_ones_are_refused(session):
    user = _user(session)
    when = datetime(2026, 3, 8, 6, 30, tzinfo=timezone(timedelta(hours=-5)))
    user.last_login_at = when
    session.commit()
    session.expire_all()
    stored = session.get(User, user.id).last_login_at
    assert stored.tzinfo is not None and stored.utcoffset() == timedelta(0)
    assert stored == when
    user = session.get(User, user.id)
    user.last_login_at = datetime(2026, 3, 8, 6, 30)
    with pytest.raises(sa.exc.StatementError, match="naive datetime refused"):
        session.commit()


def test_a_webhook_event_is_stored_once_per_provider(session):
    session.add(WebhookEvent(provider="stripe", event_id="evt_1"))
    session.add(WebhookEvent(provider="polar", event_id="evt_1"))  # another provider: fine
    session.commit()
    session.add(WebhookEvent(provider="stripe", event_id="evt_1"))
    with pytest.raises(sa.exc.IntegrityError):
        session.commit()


def test_an_api_key_hash_is_unique(session):
    user = _user(session)
    session.add(ApiKey(user_id=user.id, name="a", prefix="dte_a", key_hash="h" * 64))
    session.commit()
    session.add(ApiKey(user_id=user.id, name="b", prefix="dte_b", key_hash="h" * 64))
    with pytest.raises(sa.exc.IntegrityError):
        session.commit()
