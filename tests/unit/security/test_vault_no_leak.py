"""Plaintext credentials never reach a log record, an exception message or the audit log."""

from __future__ import annotations

import base64
import logging
import traceback

import pytest
from sqlmodel import Session, select

from backend.audit import record
from backend.db.models import AuditEvent, BrokerAccount, User
from backend.security.vault import (
    CredentialsUnreadable, Vault, generate_key, open_account_credentials, seal_account_credentials,
)

SECRETS = {"api_key": "AKLEAKCHECK0001", "api_secret": "sk_leakcheck_very_secret_0002", "passphrase": "pp-leak-0003"}


def _assert_clean(text: str) -> None:
    for value in SECRETS.values():
        assert value not in text


def _capture_everything(caplog) -> None:
    """DEBUG everywhere, including SQLAlchemy (which pins its own logger to WARNING): statements and parameters."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="sqlalchemy")


def _assert_records_clean(caplog) -> None:
    assert any(r.name.startswith("sqlalchemy.engine") for r in caplog.records), \
        "the capture must see the SQL statements and parameters for this test to mean anything"
    for rec in caplog.records:
        _assert_clean(rec.getMessage())
        _assert_clean(repr(rec.args))
        if rec.exc_info:
            _assert_clean("".join(traceback.format_exception(*rec.exc_info)))
    _assert_clean(caplog.text)


def _assert_exception_clean(exc: BaseException) -> None:
    _assert_clean(str(exc))
    _assert_clean(repr(exc))
    _assert_clean("".join(traceback.format_exception(exc)))


def test_seal_open_and_failures_leak_nothing(engine, caplog):
    _capture_everything(caplog)
    vault = Vault.from_spec(f"k1:{generate_key()}")
    with Session(engine) as session:
        user = User(username="leak")
        session.add(user)
        session.flush()
        account, other = BrokerAccount(user_id=user.id, broker="ccxt", label="a"), \
            BrokerAccount(user_id=user.id, broker="ccxt", label="b")
        session.add_all([account, other])
        session.flush()
        seal_account_credentials(account, SECRETS, vault)
        session.commit()
        assert open_account_credentials(account, vault) == SECRETS

        failures = []
        with pytest.raises(CredentialsUnreadable) as wrong_aad:
            vault.decrypt(account.credentials_enc, aad=f"broker_account:{other.id}")
        failures.append(wrong_aad.value)
        version, key_id, blob = account.credentials_enc.split(":")
        raw = bytearray(base64.b64decode(blob))
        raw[20] ^= 0xFF
        with pytest.raises(CredentialsUnreadable) as tampered:
            vault.decrypt(f"{version}:{key_id}:{base64.b64encode(bytes(raw)).decode()}", aad=f"broker_account:{account.id}")
        failures.append(tampered.value)
        with pytest.raises(CredentialsUnreadable) as wrong_key:
            Vault.from_spec(f"k1:{generate_key()}").decrypt(account.credentials_enc, aad=f"broker_account:{account.id}")
        failures.append(wrong_key.value)
        for exc in failures:
            _assert_exception_clean(exc)
            logging.getLogger("backend.test").exception("broker connect failed: %s", exc)

    _assert_records_clean(caplog)


def test_credentials_passed_to_the_audit_log_are_stored_redacted(session, caplog):
    _capture_everything(caplog)
    record(session, "broker.connected", subject_type="broker_account", subject_id=1,
           data={"broker": "ccxt", "credentials": SECRETS, **SECRETS, "note": f"password={SECRETS['passphrase']}"})
    session.commit()

    stored = session.exec(select(AuditEvent)).one()
    _assert_clean(repr(stored.data))
    assert stored.data["broker"] == "ccxt" and stored.data["credentials"] == "[redacted]"
    assert stored.data["note"] == "password=[redacted]"
    _assert_records_clean(caplog)
