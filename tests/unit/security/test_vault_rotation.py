"""Key rotation with the product running: add a key, re-encrypt in batches, retire the old key."""

from __future__ import annotations

import json
import random
import re
import threading
import time

import sqlalchemy as sa
from sqlmodel import Session, select

from backend.__main__ import main
from backend.config import get_settings, reset_settings_cache
from backend.db.models import BrokerAccount, OAuthToken, User
from backend.cli.vault import retire_key, rotate_credentials, rows_using_key
from backend.security.vault import Vault, generate_key, open_account_credentials, open_oauth_token

ACCOUNTS, TOKENS = BrokerAccount.__table__, OAuthToken.__table__


def _creds(i: int) -> dict:
    return {"api_key": f"key-{i}", "api_secret": f"secret-{i}"}


def _populate(engine, vault: Vault, accounts: int, tokens: int = 0) -> list[int]:
    """Bulk-create sealed broker accounts (and OAuth tokens) the way the app would store them."""
    with engine.begin() as conn:
        user_id = conn.execute(sa.insert(User.__table__).values(username="ops").returning(User.id)).scalar_one()
        ids = conn.execute(
            sa.insert(ACCOUNTS).returning(ACCOUNTS.c.id, sort_by_parameter_order=True),
            [{"user_id": user_id, "broker": "alpaca", "label": f"acct {i}"} for i in range(accounts)],
        ).scalars().all()
        conn.execute(
            ACCOUNTS.update().where(ACCOUNTS.c.id == sa.bindparam("b_id"))
            .values(credentials_enc=sa.bindparam("enc"), credentials_key_id=vault.active_key_id),
            [{"b_id": i, "enc": vault.encrypt(_creds(i), aad=f"broker_account:{i}")} for i in ids],
        )
        for n in range(tokens):
            token_id = conn.execute(sa.insert(TOKENS).values(user_id=user_id, token_enc="").returning(TOKENS.c.id)).scalar_one()
            conn.execute(TOKENS.update().where(TOKENS.c.id == token_id)
                         .values(token_enc=vault.encrypt({"access_token": f"at-{token_id}"}, aad=f"oauth_token:{token_id}")))
    return list(ids)


def _read_all(engine, vault: Vault) -> dict[str, set[str]]:
    """Decrypt every row (asserting its content) and return the key ids seen per table."""
    seen: dict[str, set[str]] = {"broker_accounts": set(), "oauth_tokens": set()}
    with Session(engine) as session:
        for account in session.exec(select(BrokerAccount)).all():
            assert open_account_credentials(account, vault) == _creds(account.id)
            assert Vault.key_id_of(account.credentials_enc) == account.credentials_key_id
            seen["broker_accounts"].add(account.credentials_key_id)
        for token in session.exec(select(OAuthToken)).all():
            assert open_oauth_token(token, vault) == {"access_token": f"at-{token.id}"}
            seen["oauth_tokens"].add(Vault.key_id_of(token.token_enc))
    return seen


def test_rotating_3000_accounts_moves_every_row_to_the_new_key(pg_engine, settings_env):
    old = f"k1:{generate_key()}"
    _populate(pg_engine, Vault.from_spec(old), 3000, tokens=25)
    new = f"k2:{generate_key()}"
    settings_env(CREDENTIAL_KEYS=f"{new},{old}")
    settings = get_settings()
    vault = Vault.from_settings(settings)
    assert _read_all(pg_engine, vault) == {"broker_accounts": {"k1"}, "oauth_tokens": {"k1"}}

    code, message = retire_key(pg_engine, settings, "k1")
    assert code == 1 and "3000 broker account(s) and 25 OAuth token(s)" in message and "vault rotate" in message

    batches: list[tuple[str, int]] = []
    started = time.perf_counter()
    report = rotate_credentials(pg_engine, vault, progress=lambda table, done: batches.append((table, done)))
    elapsed = time.perf_counter() - started
    print(f"\nrotated 3000 broker accounts + 25 oauth tokens on postgres in {elapsed * 1000:.0f} ms")

    assert (report.broker_accounts, report.oauth_tokens, report.unreadable) == (3000, 25, [])
    assert [done for table, done in batches if table == "broker_accounts"] == [500, 1000, 1500, 2000, 2500, 3000]
    assert _read_all(pg_engine, Vault.from_spec(new)) == {"broker_accounts": {"k2"}, "oauth_tokens": {"k2"}}
    assert rows_using_key(pg_engine, "k1") == {"broker_accounts": 0, "oauth_tokens": 0}

    code, message = retire_key(pg_engine, settings, "k1")
    assert code == 0 and "safe to remove" in message and "keep: k2" in message
    assert retire_key(pg_engine, settings, "k2")[0] == 1  # the active key is never retired
    assert rotate_credentials(pg_engine, vault).broker_accounts == 0  # a second run has nothing to do


def test_reads_keep_working_while_rotation_runs(pg_engine):
    old = f"k1:{generate_key()}"
    ids = _populate(pg_engine, Vault.from_spec(old), 3000)
    vault = Vault.from_spec(f"k2:{generate_key()},{old}")
    first_batch_done, mixed_state_read = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def after_batch(_table: str, done: int) -> None:
        if done == 500:
            first_batch_done.set()
            mixed_state_read.wait(timeout=30)  # hold the rotation mid-way while the main thread reads

    def rotate() -> None:
        try:
            rotate_credentials(pg_engine, vault, progress=after_batch)
        except BaseException as exc:  # re-raised below in the main thread
            errors.append(exc)
        finally:
            first_batch_done.set()

    worker = threading.Thread(target=rotate)
    worker.start()
    assert first_batch_done.wait(timeout=30)
    assert _read_all(pg_engine, vault)["broker_accounts"] == {"k1", "k2"}  # half-rotated, all readable
    mixed_state_read.set()

    reads = 0
    rng = random.Random(7)
    while worker.is_alive() or reads < 200:
        with Session(pg_engine) as session:
            account_id = rng.choice(ids)
            assert open_account_credentials(session.get(BrokerAccount, account_id), vault) == _creds(account_id)
        reads += 1
    worker.join()

    assert errors == []
    assert _read_all(pg_engine, vault)["broker_accounts"] == {"k2"}
    print(f"\n{reads} reads during/after rotation, all decrypted")


def test_rotation_reports_unreadable_rows_and_leaves_them_alone(engine):
    old = f"k1:{generate_key()}"
    ids = _populate(engine, Vault.from_spec(old), 3)
    with engine.begin() as conn:  # row 2 carries row 1's ciphertext: it can never decrypt
        enc = conn.execute(sa.select(ACCOUNTS.c.credentials_enc).where(ACCOUNTS.c.id == ids[0])).scalar_one()
        conn.execute(ACCOUNTS.update().where(ACCOUNTS.c.id == ids[1]).values(credentials_enc=enc))

    report = rotate_credentials(engine, Vault.from_spec(f"k2:{generate_key()},{old}"), batch_size=2)

    assert report.broker_accounts == 2 and report.unreadable == [f"broker_account:{ids[1]}"]
    assert rows_using_key(engine, "k1")["broker_accounts"] == 1


def _dev_secrets(tmp_path) -> dict:
    return json.loads((tmp_path / "data" / "secrets.json").read_text())


def test_cli_add_rotate_retire_in_development_updates_secrets_file(engine, settings_env, monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("CREDENTIAL_KEYS", raising=False)
    settings_env(DATABASE_URL=engine.url.render_as_string(hide_password=False))
    _populate(engine, Vault.from_settings(get_settings()), 4, tokens=2)

    assert main(["vault", "add-key"]) == 0
    assert capsys.readouterr().out == ""  # in development the key goes to the file, not the terminal
    assert [e.split(":")[0] for e in _dev_secrets(tmp_path)["credential_keys"].split(",")] == ["k2", "k1"]
    reset_settings_cache()

    assert main(["vault", "retire-key", "k1"]) == 1
    assert "still encrypts 4 broker account(s) and 2 OAuth token(s)" in capsys.readouterr().err
    assert main(["vault", "rotate"]) == 0
    assert "rotated 4 broker account(s) and 2 OAuth token(s) to key 'k2'" in capsys.readouterr().out
    assert main(["vault", "retire-key", "k1"]) == 0
    assert "removed it from" in capsys.readouterr().out
    assert [e.split(":")[0] for e in _dev_secrets(tmp_path)["credential_keys"].split(",")] == ["k2"]

    reset_settings_cache()
    assert _read_all(engine, Vault.from_settings(get_settings())) == {"broker_accounts": {"k2"}, "oauth_tokens": {"k2"}}


def test_cli_add_key_with_configured_keys_prints_the_line_to_put_first(settings_env, tmp_path, capsys):
    settings_env(CREDENTIAL_KEYS=f"k1:{generate_key()},k7:{generate_key()}")
    assert main(["vault", "add-key"]) == 0
    out, err = capsys.readouterr()
    assert re.fullmatch(r"k8:[A-Za-z0-9+/]{43}=\n", out)
    assert "FIRST in CREDENTIAL_KEYS" in err
    assert main(["vault", "add-key", "--key-id", "k1"]) == 1
    assert "already in CREDENTIAL_KEYS" in capsys.readouterr().err
