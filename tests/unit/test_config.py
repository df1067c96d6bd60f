"""Settings: the embedded default needs nothing; production refuses what is missing."""

from __future__ import annotations

import json

import pytest

from backend.config import load_settings, normalise_database_url
from backend.errors import ConfigurationError


def test_embedded_default_is_sqlite_with_generated_secrets(tmp_path, monkeypatch):
    for var in ("DATABASE_URL", "REDIS_URL", "SESSION_SECRET", "CREDENTIAL_KEYS", "APP_ENV"):
        monkeypatch.delenv(var, raising=False)
    settings = load_settings(data_dir=tmp_path)
    assert settings.effective_database_url == f"sqlite:///{tmp_path / 'app.db'}"
    assert settings.redis_url is None and settings.dev_login_enabled
    stored = json.loads((tmp_path / "secrets.json").read_text())
    assert settings.session_secret == stored["session_secret"]
    # generated once: a second load reads the same secrets
    again = load_settings(data_dir=tmp_path)
    assert again.session_secret == settings.session_secret
    assert again.credential_keys == settings.credential_keys
    assert oct((tmp_path / "secrets.json").stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize("missing", ["SESSION_SECRET", "CREDENTIAL_KEYS", "DATABASE_URL"])
def test_production_names_the_missing_variable(tmp_path, monkeypatch, missing):
    env = {"APP_ENV": "production", "SESSION_SECRET": "s" * 40, "CREDENTIAL_KEYS": "k1:" + "A" * 44,
           "DATABASE_URL": "postgresql://u@h/db"}
    env.pop(missing)
    for var in ("SESSION_SECRET", "CREDENTIAL_KEYS", "DATABASE_URL"):
        monkeypatch.delenv(var, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigurationError, match=missing):
        load_settings(data_dir=tmp_path)
    assert not (tmp_path / "secrets.json").exists(), "production never generates secrets"


def test_production_refuses_placeholder_secret(tmp_path, monkeypatch):
    monkeypatch.setenv("APP_ENV", "production")
    monkeypatch.setenv("SESSION_SECRET", "changeme")
    monkeypatch.setenv("CREDENTIAL_KEYS", "k1:" + "A" * 44)
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@h/db")
    with pytest.raises(ConfigurationError, match="SESSION_SECRET.*placeholder"):
        load_settings(data_dir=tmp_path)


def test_production_with_everything_set_loads(tmp_path, monkeypatch):
    monkeypatch.setenv("APP_ENV", "production")
    monkeypatch.setenv("SESSION_SECRET", "a-long-random-secret-value-for-sessions")
    monkeypatch.setenv("CREDENTIAL_KEYS", "k1:" + "A" * 44)
    monkeypatch.setenv("DATABASE_URL", "postgres://u@h/db")
    settings = load_settings(data_dir=tmp_path)
    assert settings.effective_database_url == "postgresql+psycopg://u@h/db"
    assert not settings.dev_login_enabled


def test_database_url_spellings():
    assert normalise_database_url("postgresql://a@b/c") == "postgresql+psycopg://a@b/c"
    assert normalise_database_url("sqlite:///x.db") == "sqlite:///x.db"


@pytest.mark.parametrize("value", ["10000", "-5", "lots"])
def test_a_stop_limit_slippage_bound_that_is_not_a_price_is_refused_with_its_name(tmp_path, monkeypatch, value):
    """STOP_LIMIT_SLIPPAGE_BPS must leave a positive limit price (below 10000 bps) and be a number >= 0;
    anything else stops the start with the variable named, not an odd stop-limit at the venue."""
    monkeypatch.setenv("STOP_LIMIT_SLIPPAGE_BPS", value)
    with pytest.raises(Exception, match="STOP_LIMIT_SLIPPAGE_BPS"):
        load_settings(data_dir=tmp_path)
    monkeypatch.setenv("STOP_LIMIT_SLIPPAGE_BPS", "250")
    assert load_settings(data_dir=tmp_path).stop_limit_slippage_bps == "250"
