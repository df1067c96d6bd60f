"""Logging for every process: one format, and secrets scrubbed before any handler sees them."""

from __future__ import annotations

import logging

from backend.config import Settings
from backend.security.redact import install_log_redaction, register_secrets


def configure_logging(settings: Settings) -> None:
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    register_secrets([
        settings.session_secret, settings.discord_bot_token, settings.discord_client_secret,
        settings.stripe_api_key, settings.stripe_webhook_secret, settings.polar_access_token,
        settings.polar_webhook_secret,
        *[part.split(":", 1)[-1] for part in (settings.credential_keys or "").split(",") if part],
    ])
    install_log_redaction()
    # ccxt logs every request's headers (API key included) at DEBUG whatever its
    # ``verbose`` flag says; never let a DEBUG log level reach them.
    for name in ("ccxt", "ccxt.base.exchange", "ccxt.async_support.base.exchange"):
        logging.getLogger(name).setLevel(max(logging.INFO, logging.getLogger(name).level))
    # APScheduler logs every run of every job at INFO ("Running job ...", "executed
    # successfully"): a heartbeat every 15 s would bury the lines people need.
    # Failures still come through (WARNING and up; run_safely logs job errors itself).
    logging.getLogger("apscheduler").setLevel(max(logging.WARNING, logging.getLogger("apscheduler").level))
