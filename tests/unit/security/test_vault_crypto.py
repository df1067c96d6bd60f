"""The vault's encryption contract: format, keys, associated data, row helpers."""

from __future__ import annotations

import base64
import os

import pytest
from sqlmodel import Session

from backend.config import get_settings
from backend.db.models import BrokerAccount, OAuthToken, User
from backend.errors import ConfigurationError, ValidationError
from backend.security.vault import (
    CredentialsUnreadable, Vault, generate_key, open_account_credentials, open_oauth_token, parse_key_list,
    seal_account_credentials, seal_oauth_token,
)

CREDS = {"api_key": "PK-LIVE-1234", "api_secret": "sk-very-secret-9876"}


def _key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def test_round_trip_and_ciphertext_format():
    vault = Vault.from_spec(f"k1:{_key()}")
    token = vault.encrypt(CREDS, aad="broker_account:1")

    version, key_id, blob = token.split(":")
    assert (version, key_id) == ("v1", "k1")
    assert len(base64.b64decode(blob)) > 12 + 16  # nonce + ciphertext + tag
    assert vault.decrypt(token, aad="broker_account:1") == CREDS
    assert Vault.key_id_of(token) == "k1"
    assert "PK-LIVE" not in token


def test_every_encryption_uses_a_fresh_nonce():
    vault = Vault.from_spec(f"k1:{_key()}")
    assert vault.encrypt(CREDS, aad="a:1") != vault.encrypt(CREDS, aad="a:1")


def test_first_key_encrypts_and_every_listed_key_decrypts():
    old_spec = f"k1:{_key()}"
    old_token = Vault.from_spec(old_spec).encrypt(CREDS, aad="broker_account:5")
    both = Vault.from_spec(f"k2:{_key()},{old_spec}")

    assert both.active_key_id == "k2" and both.key_ids == ("k2", "k1")
    assert both.decrypt(old_token, aad="broker_account:5") == CREDS
    assert both.needs_rotation(old_token)
    assert Vault.key_id_of(both.encrypt(CREDS, aad="broker_account:5")) == "k2"


def test_ciphertext_moved_to_another_row_does_not_decrypt():
    vault = Vault.from_spec(f"k1:{_key()}")
    token = vault.encrypt(CREDS, aad="broker_account:1")
    with pytest.raises(CredentialsUnreadable) as caught:
        vault.decrypt(token, aad="broker_account:2")
    assert isinstance(caught.value, ConfigurationError)
    assert "broker_account:2" in str(caught.value) and "reconnect" in str(caught.value)


def test_altered_ciphertext_is_refused():
    vault = Vault.from_spec(f"k1:{_key()}")
    version, key_id, blob = vault.encrypt(CREDS, aad="x:1").split(":")
    raw = bytearray(base64.b64decode(blob))
    raw[-1] ^= 0x01
    with pytest.raises(CredentialsUnreadable, match="altered"):
        vault.decrypt(f"{version}:{key_id}:{base64.b64encode(bytes(raw)).decode()}", aad="x:1")


@pytest.mark.parametrize("token", ["plain text", "v2:k1:AAAA", "v1:k1:not-base64!!", "v1:k1:AAAA", "v1::AAAA"])
def test_malformed_tokens_are_refused_clearly(token):
    vault = Vault.from_spec(f"k1:{_key()}")
    with pytest.raises(CredentialsUnreadable):
        vault.decrypt(token, aad="x:1")


def test_unknown_key_id_names_the_key_and_the_fix():
    token = Vault.from_spec(f"k0:{_key()}").encrypt(CREDS, aad="x:1")
    with pytest.raises(CredentialsUnreadable, match="'k0', which is not in CREDENTIAL_KEYS"):
        Vault.from_spec(f"k1:{_key()}").decrypt(token, aad="x:1")


@pytest.mark.parametrize("spec, message", [
    ("", "empty"),
    ("k1", "keyid:base64key"),
    ("bad id!:AAAA", "keyid:base64key"),
    ("k1:not*base64", "32 random bytes"),
    (f"k1:{base64.b64encode(b'short').decode()}", "32 random bytes"),
    ("k1:{k},k1:{k}", "twice"),
])
def test_bad_key_lists_are_refused_without_echoing_key_material(spec, message):
    spec = spec.format(k=_key())
    with pytest.raises(ConfigurationError, match=message) as caught:
        parse_key_list(spec)
    for part in spec.replace(",", ":").split(":"):
        if len(part) > 8:
            assert part not in str(caught.value)


def test_vault_from_development_settings_and_repr_without_keys(settings_env, monkeypatch):
    monkeypatch.delenv("CREDENTIAL_KEYS", raising=False)
    settings_env()
    vault = Vault.from_settings(get_settings())
    assert vault.active_key_id == "k1"
    assert get_settings().credential_keys.split(":", 1)[1] not in repr(vault)
    assert len(base64.b64decode(generate_key())) == 32


def test_encrypt_refuses_non_dicts_and_missing_aad():
    vault = Vault.from_spec(f"k1:{_key()}")
    with pytest.raises(ValidationError):
        vault.encrypt("secret", aad="x:1")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        vault.encrypt(CREDS, aad="")


def test_seal_and_open_broker_account_and_oauth_token_rows(engine):
    vault = Vault.from_spec(f"k1:{_key()}")
    with Session(engine, expire_on_commit=False) as session:
        user = User(username="ada")
        session.add(user)
        session.flush()
        account, other = BrokerAccount(user_id=user.id, broker="alpaca", label="main"), \
            BrokerAccount(user_id=user.id, broker="paper", label="paper")
        session.add_all([account, other])
        session.flush()
        seal_account_credentials(account, CREDS, vault)
        token_row = OAuthToken(user_id=user.id)
        seal_oauth_token(session, token_row, {"access_token": "discord-at"}, vault)
        session.commit()
        ids = account.id, other.id, token_row.id

    with Session(engine) as session:
        account, other, token_row = session.get(BrokerAccount, ids[0]), session.get(BrokerAccount, ids[1]), \
            session.get(OAuthToken, ids[2])
        assert account.credentials_key_id == "k1"
        assert open_account_credentials(account, vault) == CREDS
        assert open_account_credentials(other, vault) == {}  # the paper broker has none
        assert open_oauth_token(token_row, vault) == {"access_token": "discord-at"}
        other.credentials_enc = account.credentials_enc  # copied onto another row
        with pytest.raises(CredentialsUnreadable, match=f"broker_account:{other.id}"):
            open_account_credentials(other, vault)


def test_sealing_an_unsaved_account_is_refused():
    with pytest.raises(ValidationError, match="flush"):
        seal_account_credentials(BrokerAccount(user_id=1, broker="alpaca", label="x"), CREDS,
                                 Vault.from_spec(f"k1:{_key()}"))
