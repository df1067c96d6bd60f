"""No credential leaks on the account path: connecting (wrong and right keys) and reconciling.

Alpaca and Binance together, Kraken and Coinbase each, and the IB account code.

Everything is captured at DEBUG, SQLAlchemy's statements and parameters
included, while real SDKs talk to loopback venues; then every log record,
exception text, audit row, notification, order event, stored status
message, returned dict and the reconciliation report is searched for the
plaintext of every key and secret used, the wrong ones too.
"""

from __future__ import annotations

import base64
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
from fakes.fake_ccxt import make_fake
from fakes.fake_ibkr import FakeIbGateway
from fakes.loopback import serve
from fakes.venue_book import BookOrder

CCXT = {"requests_per_minute": 100_000, "ccxt_throttle": False, "timeout": 2.0}
TAG = uuid.uuid4().hex[:8].upper()
SECRETS = {
    "alpaca_key": f"PKLEAK{TAG}KEY", "alpaca_secret": f"leak-alpaca-secret-{TAG}",
    "alpaca_wrong": f"leak-wrong-alpaca-{TAG}", "binance_key": f"leakBinanceKey{TAG}",
    "binance_secret": f"leak-binance-secret-{TAG}", "binance_wrong": f"leak-wrong-binance-{TAG}",
    "kraken_key": f"leakKrakenKey{TAG}", "kraken_secret": base64.b64encode(f"leak-kraken-{TAG}".encode()).decode(),
    "kraken_wrong": base64.b64encode(f"leak-wrong-kraken-{TAG}".encode()).decode(),
    "coinbase_key": f"leakCoinbaseKey{TAG}", "coinbase_secret": f"leak-coinbase-secret-{TAG}",
    "coinbase_wrong": f"leak-wrong-coinbase-{TAG}", "ibkr_account": f"DU{TAG}",
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

    scan_everything(engine, caplog, report, returned)
    with Session(engine) as s:
        assert {a.action for a in s.exec(select(AuditEvent)).all()} >= {
            "broker.connected", "reconcile.unknown_position", "reconcile.failed"}


def scan_everything(engine, caplog, report, returned) -> None:
    """Every place a credential could surface: report, returned dicts, rows, log records."""
    assert_clean(str(report), "the reconciliation report")
    assert_clean(repr(report), "the reconciliation report's repr")
    assert_clean(repr(returned), "a returned dict")
    with Session(engine) as s:
        for row in s.exec(select(AuditEvent)).all():
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


def member(engine, name: str) -> int:
    with Session(engine) as s:
        user = User(username=name)
        s.add(user)
        s.commit()
        return user.id


@pytest.mark.parametrize("exchange_id", ["kraken", "coinbase"])
async def test_kraken_and_coinbase_keys_never_surface(engine, caplog, exchange_id):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="sqlalchemy")
    uid = member(engine, f"leaky-{exchange_id}")
    key, secret, wrong = (SECRETS[f"{exchange_id}_{k}"] for k in ("key", "secret", "wrong"))
    fake = make_fake(exchange_id, api_key=key, secret=secret)
    returned = []
    async with serve(fake.app()) as url:
        for creds in ({"api_key": key, "secret": wrong}, {"api_key": wrong, "secret": secret}):
            with pytest.raises(CannotConnect) as refused:
                await connect_account(engine, uid, "ccxt", exchange_id, creds, exchange_id=exchange_id, live=True,
                                      base_url=url, adapter_options=CCXT)
            assert_exception_clean(refused.value)
        returned.append(await connect_account(engine, uid, "ccxt", exchange_id, {"api_key": key, "secret": secret},
                                              exchange_id=exchange_id, live=True, base_url=url,
                                              adapter_options=CCXT))
        fake.secret = f"rotated-at-{exchange_id}"  # the member revoked the key: reconciliation reports it
        adapters = Adapters(engine, provider=build_provider(options={"ccxt": CCXT}))
        report = await reconcile_all(engine, adapters, clock=lambda: utcnow() + timedelta(minutes=2))
        await adapters.aclose()
        assert len(report.failed) == 1
        returned.append(await refresh_status(engine, uid, returned[0]["id"], adapter_options={"ccxt": CCXT}))
    assert returned[-1]["status"] == "error"
    with Session(engine) as s:
        assert [n.kind for n in s.exec(select(Notification))] == ["broker_disconnected"]
    scan_everything(engine, caplog, report, returned)


async def test_the_ib_account_code_stays_in_the_vault(engine, caplog):
    """IB has no API key; the account code is what identifies the member's account there.

    It travels to the gateway, but never into a log line (ib_async's DEBUG
    dump of every wire message is pinned off), the product's rows, messages,
    audit events, notifications or returned dicts; the stored row holds it
    only encrypted.
    """
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="sqlalchemy")
    uid = member(engine, "leaky-ib")
    code = SECRETS["ibkr_account"]
    gateway = FakeIbGateway(account=code)
    port = await gateway.start()
    options = {"timeout": 2, "ack_timeout": 1, "requests_per_minute": 100_000}
    returned = []
    try:
        returned.append(await connect_account(engine, uid, "ibkr", "IBKR", {"port": port, "client_id": 41,
                                                                           "account": code},
                                              adapter_options=options))
        returned.append(await refresh_status(engine, uid, returned[0]["id"], adapter_options={"ibkr": options}))
        await gateway.stop()
        returned.append(await refresh_status(engine, uid, returned[0]["id"], adapter_options={"ibkr": options}))
        adapters = Adapters(engine, provider=build_provider(options={"ibkr": options}))
        report = await reconcile_all(engine, adapters)
        await adapters.aclose()
    finally:
        await gateway.stop()
    assert returned[-1]["status"] == "connection_lost" and len(report.failed) == 1
    scan_everything(engine, caplog, report, returned)
