"""The credential vault: broker keys and OAuth tokens encrypted at rest.

AES-256-GCM (``cryptography``'s ``AESGCM``) with a fresh 12-byte nonce per
encryption.  A ciphertext reads ``v1:<keyid>:<base64(nonce + ciphertext + tag)>``
so every row says which key sealed it, and the row it belongs to is bound
as associated data (``broker_account:<id>``, ``oauth_token:<id>``): a
ciphertext copied onto another row does not decrypt.

Keys come from ``CREDENTIAL_KEYS`` = ``keyid:base64key[,keyid:base64key...]``.
The first key encrypts; every listed key decrypts.  That is what makes
rotation safe while the product runs: put a new key first, deploy, run
``python -m backend vault rotate`` (re-encrypts rows under the new key, in
small transactions), then ``vault retire-key OLD`` once no row needs it.

Nothing here logs, and no error message carries a key or a plaintext:
failures name the record (the AAD) and what to do, never the secret.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from backend.errors import ConfigurationError, ValidationError

VERSION = "v1"
NONCE_BYTES = 12
KEY_BYTES = 32
KEY_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,32}$")  # fits broker_accounts.credentials_key_id


class CredentialsUnreadable(ConfigurationError):
    """Stored credentials cannot be decrypted (wrong row, altered, or their key was removed)."""

    code = "credentials_unreadable"


def generate_key() -> str:
    """A new random 256-bit key, base64-encoded as CREDENTIAL_KEYS expects."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode()


def parse_key_list(spec: str | None) -> list[tuple[str, bytes]]:
    """``"k2:BASE64,k1:BASE64"`` -> ``[("k2", b"..."), ("k1", b"...")]``, checked, order kept."""
    if not spec or not spec.strip():
        raise ConfigurationError("CREDENTIAL_KEYS is empty: set it to 'keyid:base64key' (see `python -m backend vault add-key`).")
    keys: list[tuple[str, bytes]] = []
    for position, entry in enumerate(spec.split(","), start=1):
        entry = entry.strip()
        if not entry:
            continue
        key_id, sep, encoded = entry.partition(":")
        key_id = key_id.strip()
        if not sep or not KEY_ID_PATTERN.match(key_id):
            raise ConfigurationError(
                f"CREDENTIAL_KEYS entry {position} must look like 'keyid:base64key' with a key id of "
                "1-32 letters, digits, '-' or '_'."
            )
        try:
            raw = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != KEY_BYTES:
            raise ConfigurationError(f"CREDENTIAL_KEYS key '{key_id}' must be {KEY_BYTES} random bytes in base64.")
        if any(existing == key_id for existing, _ in keys):
            raise ConfigurationError(f"CREDENTIAL_KEYS lists key id '{key_id}' twice.")
        keys.append((key_id, raw))
    if not keys:
        raise ConfigurationError("CREDENTIAL_KEYS lists no key.")
    return keys


@dataclass(frozen=True)
class _ParsedToken:
    key_id: str
    blob: bytes


def _parse_token(token: str, aad: str | None = None) -> _ParsedToken:
    where = f" for {aad}" if aad else ""
    if not isinstance(token, str):
        raise CredentialsUnreadable(f"stored credentials{where} are not a vault ciphertext.")
    version, _, rest = token.partition(":")
    key_id, _, encoded = rest.partition(":")
    if version != VERSION or not key_id or not encoded:
        raise CredentialsUnreadable(f"stored credentials{where} are not a '{VERSION}' vault ciphertext.")
    try:
        blob = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise CredentialsUnreadable(f"stored credentials{where} are corrupted (not valid base64).") from None
    if len(blob) < NONCE_BYTES + 16:
        raise CredentialsUnreadable(f"stored credentials{where} are corrupted (too short).")
    return _ParsedToken(key_id, blob)


class Vault:
    """Encrypts with the active (first) key, decrypts with any configured key."""

    def __init__(self, keys: list[tuple[str, bytes]]) -> None:
        if not keys:
            raise ConfigurationError("the credential vault needs at least one key.")
        self._ciphers = {key_id: AESGCM(raw) for key_id, raw in keys}
        self.key_ids: tuple[str, ...] = tuple(key_id for key_id, _ in keys)
        self.active_key_id: str = self.key_ids[0]

    @classmethod
    def from_settings(cls, settings: Any) -> "Vault":
        return cls(parse_key_list(settings.credential_keys))

    @classmethod
    def from_spec(cls, spec: str) -> "Vault":
        return cls(parse_key_list(spec))

    def __repr__(self) -> str:  # never the key material
        return f"Vault(active={self.active_key_id!r}, keys={list(self.key_ids)!r})"

    # ------------------------------------------------------------------ api
    def encrypt(self, plaintext: dict, *, aad: str) -> str:
        if not isinstance(plaintext, dict):
            raise ValidationError("credentials to encrypt must be a dict of strings.")
        if not aad:
            raise ValidationError("encryption needs the record it belongs to as associated data.")
        data = json.dumps(plaintext, sort_keys=True, separators=(",", ":"), default=str).encode()
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[self.active_key_id].encrypt(nonce, data, aad.encode())
        return f"{VERSION}:{self.active_key_id}:{base64.b64encode(nonce + sealed).decode()}"

    def decrypt(self, token: str, *, aad: str) -> dict:
        parsed = _parse_token(token, aad)
        cipher = self._ciphers.get(parsed.key_id)
        if cipher is None:
            raise CredentialsUnreadable(
                f"stored credentials for {aad} were encrypted with key '{parsed.key_id}', which is not in "
                "CREDENTIAL_KEYS; add that key back (after the active one) or ask the member to reconnect."
            )
        nonce, sealed = parsed.blob[:NONCE_BYTES], parsed.blob[NONCE_BYTES:]
        try:
            data = cipher.decrypt(nonce, sealed, aad.encode())
        except InvalidTag:
            raise CredentialsUnreadable(
                f"stored credentials for {aad} failed authentication: they belong to another record or "
                "were altered. Ask the member to reconnect the account."
            ) from None
        try:
            value = json.loads(data)
        except ValueError:
            value = None
        if not isinstance(value, dict):
            raise CredentialsUnreadable(f"stored credentials for {aad} decrypt to something other than a dict.")
        return value

    @staticmethod
    def key_id_of(token: str) -> str:
        return _parse_token(token).key_id

    def needs_rotation(self, token: str) -> bool:
        return self.key_id_of(token) != self.active_key_id


# ---------------------------------------------------------------- row helpers
def broker_account_aad(account_id: int) -> str:
    return f"broker_account:{account_id}"


def oauth_token_aad(token_id: int) -> str:
    return f"oauth_token:{token_id}"


def seal_account_credentials(account: Any, creds: dict, vault: Vault) -> None:
    """Encrypt ``creds`` onto a BrokerAccount; the account needs its id (flush it first)."""
    if account.id is None:
        raise ValidationError("save the broker account (session.flush()) before sealing its credentials: its id is bound into the ciphertext.")
    account.credentials_enc = vault.encrypt(creds, aad=broker_account_aad(account.id))
    account.credentials_key_id = vault.active_key_id


def open_account_credentials(account: Any, vault: Vault) -> dict:
    """The BrokerAccount's credentials, or ``{}`` when it has none (the paper broker)."""
    if not account.credentials_enc:
        return {}
    return vault.decrypt(account.credentials_enc, aad=broker_account_aad(account.id))


def seal_oauth_token(session: Any, row: Any, token: dict, vault: Vault) -> None:
    """Encrypt ``token`` onto an OAuthToken row, inserting it first if needed (its id is the AAD).

    ``oauth_tokens.token_enc`` is NOT NULL, so a new row is flushed with an
    empty placeholder before the real ciphertext replaces it in the same
    transaction.
    """
    if row.id is None:
        row.token_enc = ""
        session.add(row)
        session.flush()
    row.token_enc = vault.encrypt(token, aad=oauth_token_aad(row.id))


def open_oauth_token(row: Any, vault: Vault) -> dict:
    if not row.token_enc:
        return {}
    return vault.decrypt(row.token_enc, aad=oauth_token_aad(row.id))
