"""Connecting, listing, checking and disconnecting broker accounts (services.accounts).

The venues are the loopback fakes, reached by the real SDKs; nothing is
stored unless the venue accepted the credentials, and what is stored is a
vault ciphertext bound to its row.
"""

from __future__ import annotations

import json
import uuid
from decimal import Decimal as D

import pytest
from aiohttp import web
from sqlmodel import Session, select

from backend.brokers.credentials import adapter_for, settings_vault
from backend.db.models import AuditEvent, BrokerAccount, EquitySnapshot, PaperAccount, User
from backend.errors import ConfigurationError, NotFound, PermissionDenied, ValidationError
from backend.security.vault import CredentialsUnreadable, broker_account_aad, open_account_credentials
from backend.services.accounts import (
    CannotConnect, connect_account, disconnect_account, list_accounts, refresh_status,
)
from fakes.fake_alpaca import FakeAlpaca
from fakes.fake_ccxt import make_fake
from fakes.fake_ibkr import FakeIbGateway
from fakes.loopback import serve

CCXT = {"requests_per_minute": 100_000, "ccxt_throttle": False, "timeout": 2.0}


def user(engine, name: str = "member") -> int:
    with Session(engine) as s:
        row = User(username=name)
        s.add(row)
        s.commit()
        return row.id


def stored(engine) -> list[BrokerAccount]:
    with Session(engine) as s:
        return s.exec(select(BrokerAccount).order_by(BrokerAccount.id)).all()


def fake_alpaca(**kw) -> FakeAlpaca:
    return FakeAlpaca(api_key=f"PK{uuid.uuid4().hex[:14].upper()}", api_secret=f"sec-{uuid.uuid4().hex}", **kw)


@pytest.mark.parametrize("broker,creds,kw,field", [
    ("robinhood", {}, {}, "broker"),
    ("alpaca", {"api_secret": "s"}, {}, "api_key"),
    ("alpaca", {"api_key": "k", "api_secret": "  "}, {}, "api_secret"),
    ("alpaca", {"api_key": "k", "api_secret": "s", "passphrase": "p"}, {}, "passphrase"),
    ("alpaca", {"api_key": "k", "api_secret": "s", "PKSOMETHINGPASTED": "k"}, {}, "credentials"),
    ("alpaca", {"api_key": "k", "api_secret": ["s"]}, {}, "api_secret"),
    ("alpaca", {"api_key": "k", "api_secret": "s"}, {"base_url": "ftp://x"}, "base_url"),
    ("ccxt", {"api_key": "k", "secret": "s"}, {"exchange_id": "notanexchange"}, "exchange_id"),
    ("ccxt", {"api_key": "k", "secret": "s"}, {}, "exchange_id"),
    ("ccxt", {"api_key": "k", "secret": "s"}, {"exchange_id": "okx", "live": True}, "password"),
    ("ccxt", {"api_key": "k", "secret": "s"}, {"exchange_id": "kraken"}, "live"),
    ("ibkr", {"port": "99999"}, {}, "port"),
    ("ibkr", {"port": "http"}, {}, "port"),
    ("ibkr", {"client_id": "-1"}, {}, "client_id"),
    ("paper", {}, {"starting_cash": "-5"}, "starting_cash"),
])
async def test_bad_input_is_refused_field_by_field_and_nothing_is_stored(engine, broker, creds, kw, field):
    uid = user(engine)
    with pytest.raises(ValidationError) as refused:
        await connect_account(engine, uid, broker, "My account", creds, **kw)
    assert refused.value.field == field and refused.value.message
    assert stored(engine) == []


async def test_a_missing_label_and_an_unknown_user_are_refused(engine):
    uid = user(engine)
    with pytest.raises(ValidationError) as no_label:
        await connect_account(engine, uid, "paper", "  ", {})
    assert no_label.value.field == "label"
    with pytest.raises(NotFound):
        await connect_account(engine, uid + 99, "paper", "Paper", {})
    assert stored(engine) == []


async def test_keys_alpaca_refuses_store_nothing_and_say_why(engine):
    uid = user(engine)
    fake = fake_alpaca()
    async with serve(fake.app()) as url:
        with pytest.raises(CannotConnect) as refused:
            await connect_account(engine, uid, "alpaca", "Alpaca", {"api_key": fake.api_key, "api_secret": "wrong"},
                                  base_url=url)
    assert refused.value.field == "credentials"
    assert refused.value.message.startswith("Alpaca refused these API keys (check key and secret, paper vs live).")
    assert stored(engine) == []
    with Session(engine) as s:
        assert s.exec(select(AuditEvent)).all() == []


async def test_accepted_keys_are_stored_sealed_to_their_row_with_the_venue_permissions(engine):
    uid = user(engine)
    fake = fake_alpaca()
    async with serve(fake.app()) as url:
        out = await connect_account(engine, uid, "alpaca", " Alpaca paper ",
                                    {"api_key": f" {fake.api_key} ", "api_secret": fake.api_secret}, base_url=url)
    assert (out["label"], out["status"], out["permissions"], out["cash"]) == ("Alpaca paper", "connected", "trade",
                                                                            D(100000))
    assert "credentials_enc" not in out and "credentials_key_id" not in out and out["has_credentials"]
    [row] = stored(engine)
    vault = settings_vault()
    assert row.credentials_key_id == vault.active_key_id
    assert open_account_credentials(row, vault) == {"api_key": fake.api_key, "api_secret": fake.api_secret,
                                                    "base_url": url}
    with pytest.raises(CredentialsUnreadable):
        vault.decrypt(row.credentials_enc, aad=broker_account_aad(row.id + 1))
    with Session(engine) as s:
        [event] = s.exec(select(AuditEvent)).all()
        snapshot = s.exec(select(EquitySnapshot)).one()
    assert (event.action, event.subject_id, event.actor_user_id) == ("broker.connected", str(row.id), uid)
    assert event.data["permissions"] == "trade" and fake.api_key not in json.dumps(event.data)
    assert (snapshot.broker_account_id, snapshot.equity) == (row.id, D(100000))


class BlockedAlpaca(FakeAlpaca):
    """An account Alpaca has blocked from trading (it still reads)."""

    async def get_account(self, request):
        body = json.loads((await super().get_account(request)).text)
        body["trading_blocked"] = True
        return web.json_response(body)


async def test_an_account_the_venue_blocks_from_trading_is_stored_read_only(engine):
    uid = user(engine)
    fake = BlockedAlpaca(api_key="PKBLOCKED0001", api_secret="blocked-secret")
    async with serve(fake.app()) as url:
        out = await connect_account(engine, uid, "alpaca", "Blocked", {"api_key": fake.api_key,
                                                                       "api_secret": fake.api_secret}, base_url=url)
    assert out["permissions"] == "read"


@pytest.mark.parametrize("exchange_id", ["binance", "kraken"])
async def test_crypto_exchange_keys_are_checked_at_the_exchange(engine, exchange_id):
    uid = user(engine)
    fake = make_fake(exchange_id, api_key=f"key-{uuid.uuid4().hex[:8]}")
    async with serve(fake.app()) as url:
        with pytest.raises(CannotConnect) as refused:
            await connect_account(engine, uid, "ccxt", "Crypto", {"api_key": fake.api_key, "secret": "d3Jvbmc="},
                                  exchange_id=exchange_id, live=True, base_url=url, adapter_options=CCXT)
        assert refused.value.message.startswith(f"{exchange_id.title()} refused these API keys")
        assert stored(engine) == []
        out = await connect_account(engine, uid, "ccxt", "Crypto", {"api_key": fake.api_key, "secret": fake.secret},
                                    exchange_id=exchange_id.upper(), live=True, base_url=url, adapter_options=CCXT)
    assert (out["exchange_id"], out["live"], out["status"]) == (exchange_id, True, "connected")


async def test_ibkr_gateway_settings_are_checked_by_connecting(engine):
    uid = user(engine)
    gateway = FakeIbGateway()
    port = await gateway.start()
    try:
        out = await connect_account(engine, uid, "ibkr", "IBKR", {"port": port, "client_id": 5},
                                    adapter_options={"timeout": 2})
        [row] = stored(engine)
        assert open_account_credentials(row, settings_vault()) == {"host": "127.0.0.1", "port": port, "client_id": 5}
        assert out["cash"] == D(100000)
        checked = await refresh_status(engine, uid, out["id"], adapter_options=None)
        assert (checked["status"], checked["session"]) == ("connected", "connected")
        assert sorted({f[2] for f in gateway.received if f[0] == "71"}) == ["205", "5"]  # a client id of its own
    finally:
        await gateway.stop()
    gone = await refresh_status(engine, uid, out["id"])
    assert gone["status"] == "connection_lost" and "Cannot reach the IB Gateway" in gone["status_message"]
    with pytest.raises(CannotConnect) as unreachable:
        await connect_account(engine, uid, "ibkr", "IBKR", {"port": port}, adapter_options={"timeout": 1})
    assert "IB Gateway" in unreachable.value.message and "Nothing was saved" in unreachable.value.message
    assert len(stored(engine)) == 1


async def test_a_paper_account_opens_its_books_with_the_starting_cash(engine):
    uid = user(engine)
    out = await connect_account(engine, uid, "paper", "Practice", None, starting_cash="25000")
    with Session(engine) as s:
        cash = s.exec(select(PaperAccount.cash).where(PaperAccount.broker_account_id == out["id"])).one()
    assert cash == D(25000) and out["has_credentials"] is False and stored(engine)[0].credentials_enc is None


async def test_list_disconnect_and_refresh(engine):
    uid, other = user(engine), user(engine, "other")
    fake = fake_alpaca()
    async with serve(fake.app()) as url:
        account = await connect_account(engine, uid, "alpaca", "Alpaca", {"api_key": fake.api_key,
                                                                          "api_secret": fake.api_secret}, base_url=url)
        paper = await connect_account(engine, uid, "paper", "Paper", {})
        listed = list_accounts(engine, uid)
        assert [a["id"] for a in listed] == [account["id"], paper["id"]] and list_accounts(engine, other) == []
        assert all("credentials_enc" not in a for a in listed)

        fresh = await refresh_status(engine, uid, account["id"])
        assert (fresh["status"], fresh["session"], fresh["status_message"]) == ("connected", "connected", None)
        fake.api_secret = "revoked"
        broken = await refresh_status(engine, uid, account["id"])
        assert broken["status"] == "error" and "Alpaca rejected the API key" in broken["status_message"]
        with pytest.raises(PermissionDenied):
            await refresh_status(engine, other, account["id"])

    with pytest.raises(PermissionDenied):
        disconnect_account(engine, other, account["id"])
    gone = disconnect_account(engine, uid, account["id"])
    assert (gone["status"], gone["has_credentials"], gone["open_orders"]) == ("disconnected", False, 0)
    assert disconnect_account(engine, uid, account["id"])["status"] == "disconnected"   # twice is harmless
    with Session(engine) as s:
        row = s.get(BrokerAccount, account["id"])
        actions = s.exec(select(AuditEvent.action).order_by(AuditEvent.seq)).all()
    assert row.credentials_enc is None and row.credentials_key_id is None
    assert actions == ["broker.connected", "broker.connected", "broker.status_changed", "broker.disconnected"]
    with pytest.raises(ValidationError):
        await refresh_status(engine, uid, account["id"])
    with pytest.raises(ConfigurationError) as forgotten:     # the provider cannot trade it any more
        adapter_for(row, engine)
    assert "reconnect" in forgotten.value.message
