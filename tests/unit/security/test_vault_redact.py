"""The redaction helpers other code relies on to keep secrets out of logs and messages."""

from __future__ import annotations

import logging

import pytest

import backend.security.redact as redact_module
from backend.security.redact import (
    REDACTED, RedactingFilter, install_log_redaction, is_secret_key, redact, redact_data, register_secret,
    safe_error_message,
)


@pytest.mark.parametrize("name", ["password", "API_KEY", "apiKey", "client_secret", "access_token", "Authorization",
                                  "credentials", "private_key", "key", "X-Api-Key", "refreshTokens"])
def test_secret_looking_names(name):
    assert is_secret_key(name)


@pytest.mark.parametrize("name", ["symbol", "credentials_key_id", "token_type", "key_id", "monkey", "quantity", 3])
def test_names_that_are_not_secrets(name):
    assert not is_secret_key(name)


@pytest.mark.parametrize("text, expected", [
    ("login password=hunter2&user=bob", "login password=[redacted]&user=bob"),
    ('{"api_key": "abc123", "symbol": "BTC"}', '{"api_key": "[redacted]", "symbol": "BTC"}'),
    ("{'secret': 'x y', 'qty': 1}", "{'secret': '[redacted]', 'qty': 1}"),
    ("postgresql://app:s3cret@db:5432/app", "postgresql://app:[redacted]@db:5432/app"),
    ("header Bearer abcdefghijklmnop1234", "header Bearer [redacted]"),
    ("the bot placed 5 orders for key_id=k1", "the bot placed 5 orders for key_id=k1"),
    ("password: [redacted]", "password: [redacted]"),
])
def test_redact_text(text, expected):
    assert redact(text) == expected


def test_redact_data_copies_and_replaces_values_at_any_depth():
    original = {"a": [{"token": "t", "n": 1}], "Password": None, "ok": "fine"}
    assert redact_data(original) == {"a": [{"token": REDACTED, "n": 1}], "Password": None, "ok": "fine"}
    assert original["a"][0]["token"] == "t"


def test_registered_process_secrets_are_hidden_anywhere(monkeypatch):
    monkeypatch.setattr(redact_module, "_registered", ())
    register_secret("short")  # too short to match safely: ignored
    register_secret("MTIzNDU2Nzg5.bot-token-value")
    assert redact("connecting with MTIzNDU2Nzg5.bot-token-value now") == f"connecting with {REDACTED} now"
    assert redact("short") == "short"
    assert safe_error_message(RuntimeError("401 for MTIzNDU2Nzg5.bot-token-value")) == f"401 for {REDACTED}"


def test_filter_scrubs_message_args_and_exception_text(caplog):
    logger = logging.getLogger("backend.test.redact")
    caplog.handler.addFilter(RedactingFilter())
    with caplog.at_level(logging.INFO, logger="backend.test.redact"):
        logger.info("connecting with %s", {"api_secret": "sk-FILTERED-1"})
        try:
            raise ValueError("refused: token=tok-FILTERED-2")
        except ValueError:
            logger.exception("broker call failed")
    assert "sk-FILTERED-1" not in caplog.text and "tok-FILTERED-2" not in caplog.text
    assert "'api_secret': '[redacted]'" in caplog.text and "token=[redacted]" in caplog.text
    assert all(r.args is None for r in caplog.records)


def test_install_redacts_every_record_from_birth(monkeypatch, caplog):
    monkeypatch.setattr(redact_module, "_installed", False)
    previous = logging.getLogRecordFactory()
    try:
        install_log_redaction()
        install_log_redaction()  # idempotent
        with caplog.at_level(logging.WARNING):
            logging.getLogger("anything.at.all").warning("client_secret=cs-INSTALLED-3 rejected")
        assert caplog.records[-1].getMessage() == "client_secret=[redacted] rejected"
    finally:
        logging.setLogRecordFactory(previous)
        for handler in logging.getLogger().handlers:
            for f in [f for f in handler.filters if isinstance(f, RedactingFilter)]:
                handler.removeFilter(f)
