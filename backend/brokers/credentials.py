"""Broker credentials: what each broker needs, and turning a stored account into a live adapter.

Two jobs around one table of credential shapes (``SPECS``):

* ``clean_credentials`` checks what a member typed before anything is
  stored: field-level ``ValidationError``s that name the field and never
  echo a value (a pasted secret must not come back in an error toast).
* ``credentials_provider`` / ``install_credentials_provider``: the provider
  ``backend.execution.adapters.set_default_provider`` expects.  It opens the
  vault, decrypts the account's credentials and builds the real adapter
  through the registry.  There is no ``base_url`` column: an alternative
  host (a loopback fake in tests, a self-hosted gateway or proxy) travels
  inside the sealed credentials under ``"base_url"``, so it is as private as
  the keys and needs no migration.

Every process that trades or reconciles real accounts (the execution
worker, the bot, the scheduler) calls ``install_credentials_provider()``
once at start; the web process does not need it for trading.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa

from backend.brokers import registry
from backend.brokers.base import BrokerAdapter
from backend.config import get_settings
from backend.errors import ConfigurationError, ValidationError
from backend.security.vault import Vault, open_account_credentials

_FIELD_NAME = re.compile(r"^[a-z_]{1,30}$")
_HOST = re.compile(r"^[A-Za-z0-9.\-:\[\]]{1,253}$")
_CCXT_SUPPORTED = {"apiKey": "api_key", "secret": "secret", "password": "password", "uid": "uid"}
# ccxt logs every request WITH its headers (API keys, passphrases) at DEBUG on these loggers, whatever
# its ``verbose`` flag says; ib_async's client logs every raw gateway message (the account code, balances,
# orders) at DEBUG too.  A process running at DEBUG must not write them out.
_VENDOR_REQUEST_LOGGERS = ("ccxt.base.exchange", "ccxt.async_support.base.exchange", "ib_async.client")

# A gateway (IBKR) refuses a second connection with a client id already in use: processes that open
# their own side connection next to the execution worker's shift the stored client id by an offset.
RECONCILE_OPTIONS = {"ibkr": {"client_id_offset": 100}}
STATUS_CHECK_OPTIONS = {"ibkr": {"client_id_offset": 200}}


@dataclass(frozen=True)
class CredentialField:
    name: str
    label: str
    required: bool = True
    secret: bool = True
    kind: str = "text"  # text | port | int


@dataclass(frozen=True)
class BrokerSpec:
    kind: str
    title: str
    fields: tuple[CredentialField, ...]
    refused: str = ""  # what to say when the venue refuses the credentials

    @property
    def needs_credentials(self) -> bool:
        return bool(self.fields)


SPECS: dict[str, BrokerSpec] = {
    "paper": BrokerSpec("paper", "Paper trading", ()),
    "alpaca": BrokerSpec(
        "alpaca", "Alpaca",
        (CredentialField("api_key", "API key"), CredentialField("api_secret", "API secret")),
        "Alpaca refused these API keys (check key and secret, paper vs live).",
    ),
    "ccxt": BrokerSpec(
        "ccxt", "Crypto exchange",
        (CredentialField("api_key", "API key"), CredentialField("secret", "API secret"),
         CredentialField("password", "Passphrase", required=False),
         CredentialField("uid", "User id", required=False, secret=False)),
        "{venue} refused these API keys (check the key, the secret{passphrase}, the key's trading permission "
        "and any IP allow-list, and sandbox vs live).",
    ),
    "ibkr": BrokerSpec(
        "ibkr", "Interactive Brokers",
        (CredentialField("host", "Gateway host", required=False, secret=False),
         CredentialField("port", "Gateway port", required=False, secret=False, kind="port"),
         CredentialField("client_id", "API client id", required=False, secret=False, kind="int"),
         CredentialField("account", "Account code", required=False, secret=False)),
        "The IB Gateway refused the connection (check that it is logged in and that the API client id is free).",
    ),
}


def spec_for(kind: str) -> BrokerSpec:
    known = registry.known_kinds()
    if kind not in known or kind not in SPECS:
        raise ValidationError(f"Unknown broker. Choose one of: {', '.join(k for k in known if k in SPECS)}.",
                              field="broker")
    return SPECS[kind]


def ccxt_exchange(exchange_id: str | None):
    """A throw-away sync ccxt instance: its name, required credentials and sandbox URLs (no network)."""
    import ccxt

    eid = (exchange_id or "").strip().lower()
    if not eid:
        raise ValidationError("Choose the exchange (a ccxt exchange id such as binance, kraken or coinbase).",
                              field="exchange_id")
    if eid not in ccxt.exchanges:
        raise ValidationError("Unknown exchange id. Use a ccxt exchange id such as binance, kraken or coinbase.",
                              field="exchange_id")
    return getattr(ccxt, eid)()


def refused_message(kind: str, exchange_id: str | None = None) -> str:
    spec = SPECS[kind]
    if kind != "ccxt":
        return spec.refused
    ex = ccxt_exchange(exchange_id)
    needs_pass = bool(ex.requiredCredentials.get("password"))
    return spec.refused.format(venue=ex.name or exchange_id, passphrase=", the passphrase" if needs_pass else "")


def _text(field: CredentialField, value: Any) -> str:
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise ValidationError(f"The {field.label} must be text.", field=field.name)
    return str(value).strip()


def _whole(field: CredentialField, value: str, low: int, high: int, what: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = None
    if number is None or not low <= number <= high:
        raise ValidationError(f"{what} must be a whole number between {low} and {high}.", field=field.name)
    return number


def clean_base_url(base_url: str | None, *, needs_port: bool = False) -> str | None:
    if base_url is None or not str(base_url).strip():
        return None
    text = str(base_url).strip().rstrip("/")
    parts = urlsplit(text if "://" in text else f"tcp://{text}")
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme not in ("http", "https", "tcp") or not parts.hostname or (needs_port and port is None):
        hint = "host:port" if needs_port else "an http(s):// address"
        raise ValidationError(f"The alternative address must be {hint}.", field="base_url")
    return text


def clean_credentials(kind: str, credentials: Mapping[str, Any] | None, *, exchange_id: str | None = None,
                      base_url: str | None = None, live: bool = False) -> dict[str, Any]:
    """The credentials to seal for ``kind``: checked, trimmed, defaults filled; ``base_url`` folded in."""
    spec = spec_for(kind)
    given = dict(credentials or {})
    fields = {f.name: f for f in spec.fields}
    for name in given:
        if name not in fields:  # a field name is echoed only if it looks like one (never a pasted secret)
            safe = isinstance(name, str) and _FIELD_NAME.match(name)
            raise ValidationError(f"{spec.title} does not use {f'{name!r}' if safe else 'a field given'}; expected: "
                                  f"{', '.join(fields) or 'no credentials'}.", field=name if safe else "credentials")
    out: dict[str, Any] = {}
    for f in spec.fields:
        raw = given.get(f.name)
        value = _text(f, raw) if raw is not None else ""
        if not value:
            if f.required:
                raise ValidationError(f"The {f.label} is missing.", field=f.name)
            continue
        if f.kind == "port":
            out[f.name] = _whole(f, value, 1, 65535, "The IB Gateway port")
        elif f.kind == "int":
            out[f.name] = _whole(f, value, 0, 2**31 - 1, f"The {f.label}")
        else:
            if not f.secret and f.name == "host" and not _HOST.match(value):
                raise ValidationError("The gateway host must be a host name or an IP address.", field=f.name)
            out[f.name] = value
    if kind == "ccxt":
        _check_ccxt(out, exchange_id, live=live, has_base_url=bool(base_url))
    if kind == "ibkr":
        out.setdefault("host", "127.0.0.1")
        out.setdefault("port", 4001 if live else 4002)
        out.setdefault("client_id", 1)
    url = clean_base_url(base_url, needs_port=kind == "ibkr") if spec.needs_credentials else None
    if url:
        out["base_url"] = url
    return out


def _check_ccxt(creds: dict[str, Any], exchange_id: str | None, *, live: bool, has_base_url: bool) -> None:
    ex = ccxt_exchange(exchange_id)
    needed = [name for name, required in ex.requiredCredentials.items() if required]
    unsupported = [n for n in needed if n not in _CCXT_SUPPORTED]
    if unsupported:
        raise ValidationError(f"{ex.name} needs credentials this product does not support yet "
                              f"({', '.join(unsupported)}).", field="exchange_id")
    for name in needed:
        ours = _CCXT_SUPPORTED[name]
        if not creds.get(ours):
            label = next(f.label for f in SPECS["ccxt"].fields if f.name == ours)
            raise ValidationError(f"{ex.name} needs the {label} of the API key.", field=ours)
    if not live and not has_base_url and not ex.urls.get("test"):
        raise ValidationError(f"{ex.name} has no sandbox: connect it as a live account, or practise with the "
                              "paper broker.", field="live")


# ----------------------------------------------------------------------------- building adapters
def quiet_vendor_request_logs() -> None:
    """Pin the SDK loggers that print request headers to INFO (idempotent; never lowers a stricter level)."""
    for name in _VENDOR_REQUEST_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level < logging.INFO:
            logger.setLevel(logging.INFO)


def build_adapter(kind: str, credentials: Mapping[str, Any], *, live: bool, exchange_id: str | None = None,
                  engine: sa.Engine | None = None, broker_account_id: int | None = None,
                  options: Mapping[str, Any] | None = None) -> BrokerAdapter:
    """An adapter from plain (already decrypted) credentials through the registry.

    ``options`` are extra adapter keyword arguments, except ``client_id_offset``, which shifts a
    stored ``client_id`` (see ``RECONCILE_OPTIONS``).
    """
    quiet_vendor_request_logs()
    creds = dict(credentials)
    extra = dict(options or {})
    offset = extra.pop("client_id_offset", None)
    if offset and creds.get("client_id") is not None:
        creds["client_id"] = int(creds["client_id"]) + int(offset)
    base_url = creds.pop("base_url", None)
    if exchange_id:
        creds.setdefault("exchange_id", exchange_id)
    kwargs: dict[str, Any] = dict(engine=engine, broker_account_id=broker_account_id, credentials=creds,
                                  live=live, base_url=base_url, exchange_id=exchange_id)
    kwargs.update(extra)
    return registry.build(kind, **kwargs)


@lru_cache(maxsize=4)
def _vault_for(spec: str) -> Vault:
    return Vault.from_spec(spec)


def settings_vault() -> Vault:
    """The vault of this process's ``CREDENTIAL_KEYS`` (parsed once per key list)."""
    return _vault_for(get_settings().credential_keys or "")


def adapter_for(account: Any, engine: sa.Engine, *, vault: Vault | None = None,
                options: Mapping[str, Mapping[str, Any]] | None = None) -> BrokerAdapter:
    """The live adapter of a stored ``BrokerAccount`` (its credentials decrypted here, never kept)."""
    spec = SPECS.get(account.broker)
    creds = open_account_credentials(account, vault or settings_vault()) if account.credentials_enc else {}
    if spec is not None and spec.needs_credentials and not creds:
        raise ConfigurationError(f"Broker account '{account.label}' has no stored credentials: reconnect it.",
                                 field="credentials")
    return build_adapter(account.broker, creds, live=account.live, exchange_id=account.exchange_id, engine=engine,
                         broker_account_id=account.id, options=(options or {}).get(account.broker))


def credentials_provider(account: Any, engine: sa.Engine) -> BrokerAdapter:
    """The default provider: the process's vault, the registry's defaults."""
    return adapter_for(account, engine)


def build_provider(*, vault: Vault | None = None, options: Mapping[str, Mapping[str, Any]] | None = None):
    """A provider with its own vault and per-broker adapter options (``{"ccxt": {"timeout": 5}}``)."""

    def provide(account: Any, engine: sa.Engine) -> BrokerAdapter:
        return adapter_for(account, engine, vault=vault, options=options)

    return provide


def install_credentials_provider(*, vault: Vault | None = None,
                                 options: Mapping[str, Mapping[str, Any]] | None = None):
    """Make every ``Adapters`` of this process build real adapters from the vault; returns the provider."""
    from backend.execution.adapters import set_default_provider

    provider = credentials_provider if vault is None and not options else build_provider(vault=vault, options=options)
    set_default_provider(provider)
    return provider
