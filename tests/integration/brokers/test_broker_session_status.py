"""A broker's connection trouble reaches the account row, the dashboard and the member's DMs, once per change.

The IB Gateway (loopback fake, real ib_async) tells its clients it lost IBKR
(1100) and got it back (1102); the execution worker's session watch writes
that to the account; a status check and a reconciliation run do the same
for what they find.  Each change is one notification, however often the
state is polled.
"""

from __future__ import annotations

import uuid

import pytest
from sqlmodel import Session, select

from backend.brokers.credentials import RECONCILE_OPTIONS, build_provider
from backend.db.models import AuditEvent, BrokerAccount, Notification, User
from backend.execution.adapters import Adapters
from backend.reconcile.run import reconcile_all
from backend.services.accounts import connect_account, refresh_status
from backend.services.broker_status import SessionWatch
from backend.services.notify import DMDispatcher
from fakes.fake_alpaca import FakeAlpaca
from fakes.fake_ibkr import FakeIbGateway
from fakes.loopback import serve

FAST = {"timeout": 2, "ack_timeout": 1, "requests_per_minute": 100_000}
LOST = "Connectivity between IB and Trader Workstation has been lost."
RESTORED = "Connectivity between IB and Trader Workstation has been restored - data maintained."


def member(engine) -> int:
    with Session(engine) as s:
        user = User(username=f"m-{uuid.uuid4().hex[:6]}", discord_id=f"d-{uuid.uuid4().hex[:6]}")
        s.add(user)
        s.commit()
        return user.id


def row(engine, account_id: int) -> BrokerAccount:
    with Session(engine) as s:
        return s.get(BrokerAccount, account_id)


def notes(engine) -> list[tuple[str, str, str]]:
    with Session(engine) as s:
        return [(n.kind, n.title, n.body) for n in s.exec(select(Notification).order_by(Notification.id))]


@pytest.fixture
async def gateway():
    gw = FakeIbGateway()
    await gw.start()
    yield gw
    await gw.stop()


async def _ibkr(engine, gateway, client_id: int = 31) -> dict:
    return await connect_account(engine, member(engine), "ibkr", "IBKR paper",
                                 {"port": gateway.port, "client_id": client_id, "account": gateway.account},
                                 adapter_options=FAST)


async def test_the_worker_session_logged_out_by_1100_is_stored_and_told_once_then_restored_by_1102(engine, gateway):
    account = await _ibkr(engine, gateway)
    adapters = Adapters(engine, provider=build_provider(options={"ibkr": FAST}))
    watch = SessionWatch(engine)
    try:
        await adapters.get(row(engine, account["id"])).account()   # the worker's session is open
        assert watch.check(adapters) == [] and notes(engine) == []
        await gateway.push_error(1100, LOST)
        assert watch.check(adapters) == [account["id"]]
        for _ in range(3):  # polled again and again: nothing more is written
            assert watch.check(adapters) == []
        logged_out = row(engine, account["id"])
        assert logged_out.status == "logged_out" and "1100" in logged_out.status_message
        [(kind, title, body)] = notes(engine)
        assert kind == "broker_disconnected" and title == "IBKR paper (Interactive Brokers) is logged out"
        assert LOST in body and "paused" in body

        sent: list[tuple[str, str]] = []

        async def send(discord_id: str, text: str) -> None:
            sent.append((discord_id, text))

        report = await DMDispatcher(engine, send).deliver_pending()
        assert len(report.sent) == 1 and "is logged out" in sent[0][1]

        await gateway.push_error(1102, RESTORED)
        assert watch.check(adapters) == [account["id"]] and watch.check(adapters) == []
    finally:
        await adapters.aclose()
    restored = row(engine, account["id"])
    assert (restored.status, restored.status_message) == ("connected", None)
    assert [k for k, _, _ in notes(engine)] == ["broker_disconnected", "broker_reconnected"]
    with Session(engine) as s:
        changes = s.exec(select(AuditEvent.data).where(AuditEvent.action == "broker.status_changed")
                         .order_by(AuditEvent.seq)).all()
    assert [(c["from"], c["to"], c["by"]) for c in changes] == [("connected", "logged_out", "session"),
                                                                ("logged_out", "connected", "session")]


async def test_a_dropped_gateway_socket_is_connection_lost_not_disconnected(engine, gateway):
    account = await _ibkr(engine, gateway)
    adapters = Adapters(engine, provider=build_provider(options={"ibkr": FAST}))
    watch = SessionWatch(engine)
    try:
        await adapters.get(row(engine, account["id"])).account()
        await gateway.drop_clients()
        assert watch.check(adapters) == [account["id"]]
        lost = row(engine, account["id"])
        assert lost.status == "connection_lost" and lost.credentials_enc  # the credentials are kept
        await adapters.get(lost).account()  # the next request reconnects
        assert watch.check(adapters) == [account["id"]]
    finally:
        await adapters.aclose()
    assert row(engine, account["id"]).status == "connected"
    assert [k for k, _, _ in notes(engine)] == ["broker_disconnected", "broker_reconnected"]


async def test_a_session_watch_leaves_an_account_in_error_alone(engine, gateway):
    account = await _ibkr(engine, gateway)
    with Session(engine) as s:
        s.get(BrokerAccount, account["id"]).status = "error"
        s.commit()
    adapters = Adapters(engine, provider=build_provider(options={"ibkr": FAST}))
    try:
        await adapters.get(row(engine, account["id"])).account()
        assert SessionWatch(engine).check(adapters) == []
    finally:
        await adapters.aclose()
    assert row(engine, account["id"]).status == "error" and notes(engine) == []


async def test_a_status_check_of_a_gateway_that_is_down_says_so_once(engine, gateway):
    account = await _ibkr(engine, gateway)
    uid = account["user_id"]
    await gateway.stop()
    first = await refresh_status(engine, uid, account["id"], adapter_options={"ibkr": FAST})
    again = await refresh_status(engine, uid, account["id"], adapter_options={"ibkr": FAST})
    assert first["status"] == again["status"] == "connection_lost"
    assert "Cannot reach the IB Gateway" in first["status_message"]
    [(kind, _, body)] = notes(engine)
    assert kind == "broker_disconnected" and "Cannot reach the IB Gateway" in body


async def test_reconciliation_stores_a_logged_out_gateway_and_restores_it_when_a_run_succeeds(engine, gateway):
    account = await _ibkr(engine, gateway)
    provider = build_provider(options={"ibkr": {**RECONCILE_OPTIONS["ibkr"], **FAST}})
    adapters = Adapters(engine, provider=provider)
    try:
        await adapters.get(row(engine, account["id"])).account()
        await gateway.push_error(2110, "Connectivity between Trader Workstation and server is broken.")
        report = await reconcile_all(engine, adapters, account_id=account["id"])
        assert report.failed and row(engine, account["id"]).status == "logged_out"
        await reconcile_all(engine, adapters, account_id=account["id"])  # still logged out: no second DM
        assert [k for k, _, _ in notes(engine)] == ["broker_disconnected"]
        await gateway.push_error(1102, RESTORED)
        report = await reconcile_all(engine, adapters, account_id=account["id"])
        assert not report.failed
    finally:
        await adapters.aclose()
    assert row(engine, account["id"]).status == "connected"
    assert [k for k, _, _ in notes(engine)] == ["broker_disconnected", "broker_reconnected"]


async def test_refused_keys_found_by_reconciliation_are_an_error_told_once(engine):
    fake = FakeAlpaca(api_key="PKSTATUS0001", api_secret="status-secret")
    async with serve(fake.app()) as url:
        account = await connect_account(engine, member(engine), "alpaca", "Alpaca", {
            "api_key": fake.api_key, "api_secret": fake.api_secret}, base_url=url)
        fake.api_secret = "revoked"
        options = {"alpaca": {"requests_per_minute": 100_000}}
        for _ in range(2):
            await reconcile_all(engine, account_id=account["id"], provider=build_provider(options=options))
        broken = row(engine, account["id"])
        assert broken.status == "error" and "rejected the API key" in broken.status_message
        assert [(k, t) for k, t, _ in notes(engine)] == [("broker_disconnected", "Alpaca (Alpaca) has a problem")]
        fake.api_secret = "status-secret"
        await reconcile_all(engine, account_id=account["id"], provider=build_provider(options=options))
    assert row(engine, account["id"]).status == "connected"
    assert [k for k, _, _ in notes(engine)] == ["broker_disconnected", "broker_reconnected"]
