"""The product's one settings object.

Every process (web, bot worker, scheduler, CLI, tests) reads its settings
from here: environment variables first, then an optional ``.env`` file.
With nothing set the product runs in its *embedded default*: a SQLite file
under ``data/``, the paper broker, an in-process event bus and a
development login, so a newcomer sees it work with one command.  Setting
``DATABASE_URL``, ``REDIS_URL`` and the Discord / broker / billing
credentials switches each part to the real service; nothing else changes.

Secrets (session signing key, credential encryption key) are generated once
into ``data/secrets.json`` in development.  With ``APP_ENV=production``
they must be given explicitly; a missing or placeholder value stops the
process at start-up with a message naming the variable.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from backend.errors import ConfigurationError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PLACEHOLDERS = {"", "changeme", "change-me", "changethis", "secret", "placeholder", "xxx", "todo"}


class Settings(BaseSettings):
    """Read once per process; see the README's settings table for each field."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    app_env: Literal["development", "test", "production"] = "development"
    data_dir: Path = PROJECT_ROOT / "data"
    database_url: str | None = None
    redis_url: str | None = None
    public_url: str = "http://localhost:3000"
    port: int = 3000

    session_secret: str | None = None
    credential_keys: str | None = Field(
        default=None,
        description="Credential vault keys: 'keyid:base64key[,keyid:base64key...]', first is active.",
    )

    # Discord (login + bot)
    discord_client_id: str | None = None
    discord_client_secret: str | None = None
    discord_bot_token: str | None = None
    discord_api_base: str = "https://discord.com/api/v10"
    discord_authorize_url: str = "https://discord.com/oauth2/authorize"
    discord_token_url: str = "https://discord.com/api/oauth2/token"

    # Billing
    stripe_api_key: str | None = None
    stripe_webhook_secret: str | None = None
    polar_access_token: str | None = None
    polar_webhook_secret: str | None = None

    # Paper broker
    paper_starting_cash: str = "100000"
    paper_slippage_bps: str = "5"
    paper_fee_per_order: str = "0"
    paper_fee_bps: str = "0"
    paper_random_walk_bps: str = "0"

    # Execution
    execution_max_retries: int = 5
    execution_backoff_base_seconds: float = 1.0
    signal_max_lag_seconds: float = 60.0
    # A venue without plain stops gets the engine's stop as a stop-limit this far beyond the trigger.
    stop_limit_slippage_bps: str = "100"
    # How often engine-held take-profits (venues whose open exits lock the balance) are checked.
    held_targets_poll_seconds: int = 5

    seed_demo_data: bool = True
    log_level: str = "INFO"

    @field_validator("database_url", "redis_url", "discord_bot_token", "stripe_api_key", mode="before")
    @classmethod
    def _blank_is_unset(cls, value):
        return value or None

    @field_validator("paper_starting_cash", "paper_slippage_bps", "paper_fee_per_order", "paper_fee_bps",
                     "paper_random_walk_bps")
    @classmethod
    def _non_negative_decimal(cls, value: str, info):
        """Money settings stay exact strings; a typo stops start-up instead of failing at the first fill."""
        try:
            number = Decimal(str(value).strip())
        except InvalidOperation:
            raise ValueError(f"{info.field_name.upper()} must be a number, got {value!r}") from None
        if not number.is_finite() or number < 0:
            raise ValueError(f"{info.field_name.upper()} must be zero or more, got {value!r}")
        return str(number)

    @field_validator("stop_limit_slippage_bps")
    @classmethod
    def _slippage_below_whole_price(cls, value: str, info):
        """A stop-limit's limit must stay a positive price: the bound is below 10000 bps (100 %)."""
        number = Decimal(cls._non_negative_decimal(value, info))
        if number >= 10000:
            raise ValueError(f"{info.field_name.upper()} must be below 10000 (100 %), got {value!r}")
        return str(number)

    @field_validator("held_targets_poll_seconds")
    @classmethod
    def _positive_seconds(cls, value: int, info):
        if value < 1:
            raise ValueError(f"{info.field_name.upper()} must be at least 1 second, got {value!r}")
        return value

    # ------------------------------------------------------------------ derived
    @property
    def is_production(self) -> bool:
        return self.app_env == "production"

    @property
    def dev_login_enabled(self) -> bool:
        """The development login exists only outside production."""
        return not self.is_production

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return normalise_database_url(self.database_url)
        return f"sqlite:///{self.data_dir / 'app.db'}"

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")


def normalise_database_url(url: str) -> str:
    """Accept the usual ``postgres://`` / ``postgresql://`` spellings and use psycopg 3."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _local_secrets(data_dir: Path) -> dict[str, str]:
    """Generate the development secrets once and keep them in a git-ignored file."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "secrets.json"
    if path.exists():
        return json.loads(path.read_text())
    values = {
        "session_secret": secrets.token_urlsafe(48),
        "credential_keys": "k1:" + base64.b64encode(os.urandom(32)).decode(),
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(values))
    tmp.chmod(0o600)
    tmp.replace(path)
    return values


def _require(name: str, value: str | None) -> None:
    if value is None or value.strip().lower() in PLACEHOLDERS:
        raise ConfigurationError(
            f"{name.upper()} must be set to a real secret when APP_ENV=production "
            f"(it is {'missing' if value is None else 'a placeholder'})."
        )


def load_settings(**overrides) -> Settings:
    """Build and check settings; fills development secrets, refuses placeholders in production."""
    settings = Settings(**overrides)
    if settings.is_production:
        _require("session_secret", settings.session_secret)
        _require("credential_keys", settings.credential_keys)
        if not settings.database_url:
            raise ConfigurationError("DATABASE_URL must be set when APP_ENV=production (SQLite is for the embedded default).")
    else:
        local = _local_secrets(settings.data_dir)
        if not settings.session_secret:
            settings.session_secret = local["session_secret"]
        if not settings.credential_keys:
            settings.credential_keys = local["credential_keys"]
    return settings


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()


def reset_settings_cache() -> None:
    """Tests change the environment and call this to re-read it."""
    get_settings.cache_clear()
