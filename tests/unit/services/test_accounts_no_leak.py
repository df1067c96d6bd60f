"""No credential leaks on the account path: connecting (wrong and right keys) and reconciling.

Everything is captured at DEBUG, SQLAlchemy's statements and parameters
included, while real SDKs talk to loopback venues; then every log record,
exception text, audit row, notification, order event, stored status
message, returned dict and the reconciliation report is searched for the
plaintext of every key and secret used, the wrong ones too.
"""

from __future__ import annotations

import logging
import traceback
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlmodel import Session, select

from backend.brokers.credentials import build_provider
from backend.db.models import AuditEvent, BrokerAccount, Notification, OrderEvent, User
from backend.db.types import utcnow
from backend.execution.adapters import Adapters
from backend.reconcile.run import reconcile_all
from backend.services.accounts import CannotConnect, connect_account, list_accounts, refresh_status
from fakes.fake_alpaca import FakeAlpaca
from fakes.fake_binance import FakeBinance
from fakes.loopback import serve
from fakes.venue_book import BookOrder

CCXT = {"requests_per_minute": 100_000, "ccxt_throttle": False, "timeout": 2.0}
TAG = uuid.uuid4().hex[:8].upper()
SECRETS = {
    "alpaca_key": f"PKLEAK{TAG}KEY", "alpaca_secret": f"leak-alpaca-secret-{TAG}",
    "alpaca_wrong": f"leak-wrong-alpaca-{TAG}", "binance_key": f"leakBinanceKey{TAG}",
    "binance_secret": f"leak-binance-secret-{TAG}", "binance_wrong": f"leak-wrong-binance-{TAG}",
}


def assert_clean(text: str, where: str) -> None:
    for name, value in SECRETS.items():
        assert value not in text, f"{name} leaked into {where}"


def assert_exception_clean(exc: BaseException) -> None:
    assert_clean(str(exc), "an exception message")
    assert_clean(repr(exc), "an exception repr")
    assert_clean("".join(traceback.format_exception(exc)), "an exception traceback")


async def test_connecting_and_reconciling_never_reveal_a_credential(engine, caplog):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="sqlalchemy")
    with Session(engine) as s:
        member = User(username="leaky")
        s.add(member)
        s.commit()
        uid = member.id
    alpaca = FakeAlpaca(api_key=SECRETS["alpaca_key"], api_secret=SECRETS["alpaca_secret"])
    binance = FakeBinance(api_key=SECRETS["binance_key"], secret=SECRETS["binance_secret"])
    returned = []
    async with serve(alpaca.app()) as alpaca_url, serve(binance.app()) as binance_url:
        for wrong in ({"api_key": SECRETS["alpaca_key"], "api_secret": SECRETS["alpaca_wrong"]},
                      {"api_key": SECRETS["alpaca_wrong"], "api_secret": SECRETS["alpaca_secret"]}):
            with pytest.raises(CannotConnect) as refused:
                await connect_account(engine, uid, "alpaca", "Alpaca", wrong, base_url=alpaca_url)
            assert_exception_clean(refused.value)
        with pytest.raises(CannotConnect) as refused:
            await connect_account(engine, uid, "ccxt", "Binance", {"api_key": SECRETS["binance_key"],
                                                                   "secret": SECRETS["binance_wrong"]},
                                  exchange_id="binance", live=True, base_url=binance_url, adapter_options=CCXT)
        assert_exception_clean(refused.value)

        returned.append(await connect_account(engine, uid, "alpaca", "Alpaca", {
            "api_key": SECRETS["alpaca_key"], "api_secret": SECRETS["alpaca_secret"]}, base_url=alpaca_url))
        returned.append(await connect_account(engine, uid, "ccxt", "Binance", {
            "api_key": SECRETS["binance_key"], "secret": SECRETS["binance_secret"]}, exchange_id="binance",
            live=True, base_url=binance_url, adapter_options=CCXT))
        returned.append(list_accounts(engine, uid))

        alpaca.book.submit(BookOrder(alpaca.book.new_order_id(), "by-hand", "AAPL", "buy", "market", Decimal("2")))
        binance.secret = "rotated-at-binance"   # the member revoked the key: the run reports it
        adapters = Adapters(engine, provider=build_provider(options={"ccxt": CCXT}))
        report = await reconcile_all(engine, adapters, clock=lambda: utcnow() + timedelta(minutes=2))
        await adapters.aclose()
        assert [r.kind for r in report.repairs] == ["unknown_position"] and len(report.failed) == 1
        returned.append(await refresh_status(engine, uid, returned[1]["id"], adapter_options={"ccxt": CCXT}))

    assert_clean(str(report), "the reconciliation report")
    assert_clean(repr(report), "the reconciliation report's repr")
    assert_clean(repr(returned), "a returned dict")
    with Session(engine) as s:
        audit_rows = s.exec(select(AuditEvent)).all()
        assert {a.action for a in audit_rows} >= {"broker.connected", "reconcile.unknown_position", "reconcile.failed"}
        for row in audit_rows:
            assert_clean(repr(row.data), f"audit event {row.action}")
        for note in s.exec(select(Notification)).all():
            assert_clean(f"{note.title} {note.body} {note.data!r}", "a notification")
        for event in s.exec(select(OrderEvent)).all():
            assert_clean(f"{event.message} {event.data!r}", "an order event")
        for account in s.exec(select(BrokerAccount)).all():
            assert_clean(f"{account.status_message} {account.credentials_enc}", "a broker account row")
    assert any(r.name.startswith("sqlalchemy.engine") for r in caplog.records), "the capture must see SQL parameters"
    for record in caplog.records:
        assert_clean(record.getMessage(), f"a log record of {record.name}")
        assert_clean(repr(record.args), f"the arguments of a log record of {record.name}")
        if record.exc_info:
            assert_clean("".join(traceback.format_exception(*record.exc_info)), f"a logged traceback ({record.name})")
    assert_clean(caplog.text, "the captured log text")
