"""``python -m backend vault add-key | rotate | retire-key KEYID``: credential key rotation.

The procedure, with the product running throughout:

1. ``vault add-key`` makes a new key.  In production it prints the
   ``keyid:base64key`` line for the operator to put FIRST in
   CREDENTIAL_KEYS (old keys stay after it) and deploy to every process;
   in development, where keys live in ``data/secrets.json``, it updates that
   file itself.
2. ``vault rotate`` re-encrypts every broker account and OAuth token still
   under an older key, 500 rows per transaction.  Old and new keys both
   decrypt, so reads keep working during the run, and each row is updated
   only if it still holds the ciphertext that was read (a member who
   reconnects meanwhile is never overwritten).
3. ``vault retire-key OLD`` refuses while any row still uses OLD; otherwise
   it says it is safe to drop it (and drops it from ``data/secrets.json``
   in development).

The key line is the only thing printed on stdout; guidance goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from backend.db.models import BrokerAccount, OAuthToken
from backend.errors import ConfigurationError, TradeExecutorError, ValidationError
from backend.security.vault import (
    KEY_ID_PATTERN, VERSION, CredentialsUnreadable, Vault, broker_account_aad, generate_key, oauth_token_aad,
    parse_key_list,
)

BATCH_SIZE = 500


@dataclass
class RotationReport:
    active_key_id: str
    broker_accounts: int = 0
    oauth_tokens: int = 0
    unreadable: list[str] = field(default_factory=list)  # "broker_account:12", never the secret


@dataclass(frozen=True)
class _Target:
    """One encrypted column: where it is, how its AAD is named, and its key-id column if any."""

    name: str
    table: sa.Table
    enc: sa.Column
    key_id: sa.Column | None
    aad: Callable[[int], str]


def _targets() -> tuple[_Target, ...]:
    accounts, tokens = BrokerAccount.__table__, OAuthToken.__table__
    return (
        _Target("broker_accounts", accounts, accounts.c.credentials_enc, accounts.c.credentials_key_id, broker_account_aad),
        _Target("oauth_tokens", tokens, tokens.c.token_enc, None, oauth_token_aad),
    )


def _has_prefix(column: sa.Column, key_id: str) -> sa.ColumnElement[bool]:
    """Exact, case-sensitive prefix test (SQLite's LIKE ignores case, so no startswith here)."""
    prefix = f"{VERSION}:{key_id}:"
    return sa.func.substr(column, 1, len(prefix)) == prefix


def _stale_rows(target: _Target, active: str, after_id: int, limit: int) -> sa.Select:
    stale = ~_has_prefix(target.enc, active)
    if target.key_id is not None:
        stale = sa.or_(stale, target.key_id.is_(None), target.key_id != active)
    return (
        sa.select(target.table.c.id, target.enc)
        .where(target.table.c.id > after_id, target.enc.is_not(None), target.enc != "", stale)
        .order_by(target.table.c.id)
        .limit(limit)
    )


def _rotate_target(engine: sa.Engine, vault: Vault, target: _Target, report: RotationReport,
                   batch_size: int, progress: Callable[[str, int], None] | None) -> int:
    table, done, last_id = target.table, 0, 0
    values = {target.enc.name: sa.bindparam("new_enc")}
    if target.key_id is not None:
        values[target.key_id.name] = sa.bindparam("new_key_id")
    update = (
        table.update()
        .where(table.c.id == sa.bindparam("row_id"), target.enc == sa.bindparam("old_enc"))
        .values(values)
    )
    while True:
        with engine.begin() as conn:  # one transaction per batch: short locks, progress survives a crash
            rows = conn.execute(_stale_rows(target, vault.active_key_id, last_id, batch_size)).all()
            if not rows:
                return done
            params = []
            for row in rows:
                aad = target.aad(row.id)
                try:
                    plain = vault.decrypt(row[1], aad=aad)
                except CredentialsUnreadable:
                    report.unreadable.append(aad)
                    continue
                params.append({"row_id": row.id, "old_enc": row[1], "new_enc": vault.encrypt(plain, aad=aad),
                               "new_key_id": vault.active_key_id})
            if params:
                conn.execute(update, params)
                done += len(params)
            last_id = rows[-1].id
        if progress:
            progress(target.name, done)


def rotate_credentials(engine: sa.Engine, vault: Vault, *, batch_size: int = BATCH_SIZE,
                       progress: Callable[[str, int], None] | None = None) -> RotationReport:
    """Re-encrypt every credential not under the active key; ``progress(table, done)`` after each batch."""
    report = RotationReport(vault.active_key_id)
    accounts, tokens = _targets()
    report.broker_accounts = _rotate_target(engine, vault, accounts, report, batch_size, progress)
    report.oauth_tokens = _rotate_target(engine, vault, tokens, report, batch_size, progress)
    return report


def rows_using_key(engine: sa.Engine, key_id: str) -> dict[str, int]:
    counts = {}
    with engine.connect() as conn:
        for target in _targets():
            uses = _has_prefix(target.enc, key_id)
            if target.key_id is not None:
                uses = sa.or_(uses, target.key_id == key_id)
            counts[target.name] = conn.execute(sa.select(sa.func.count()).select_from(target.table).where(uses)).scalar_one()
    return counts


# ------------------------------------------------------------------ key list
def development_secrets_file(settings: Any) -> Path | None:
    """``data/secrets.json`` when the keys come from it (development, CREDENTIAL_KEYS unset), else None."""
    from backend.config import Settings

    if settings.is_production or Settings().credential_keys:
        return None
    return Path(settings.data_dir) / "secrets.json"


def _write_keys(path: Path, spec: str) -> None:
    values = json.loads(path.read_text()) if path.exists() else {}
    values["credential_keys"] = spec
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(values))
    tmp.chmod(0o600)
    tmp.replace(path)


def _spec_entries(spec: str) -> list[str]:
    return [entry.strip() for entry in spec.split(",") if entry.strip()]


def next_key_id(existing: list[str]) -> str:
    numbers = [int(m.group(1)) for k in existing if (m := re.fullmatch(r"k(\d+)", k))]
    return f"k{max(numbers, default=0) + 1}"


def add_key(settings: Any, key_id: str | None = None) -> tuple[str, Path | None]:
    """Make a new active key; returns its ``keyid:base64`` line and the file updated (development)."""
    existing = [k for k, _ in parse_key_list(settings.credential_keys)] if settings.credential_keys else []
    key_id = key_id or next_key_id(existing)
    if not KEY_ID_PATTERN.match(key_id):
        raise ValidationError("a key id is 1-32 letters, digits, '-' or '_'.", field="key_id")
    if key_id in existing:
        raise ValidationError(f"key id '{key_id}' is already in CREDENTIAL_KEYS.", field="key_id")
    line = f"{key_id}:{generate_key()}"
    path = development_secrets_file(settings)
    if path is not None:
        _write_keys(path, ",".join([line, *_spec_entries(settings.credential_keys or "")]))
    return line, path


def retire_key(engine: sa.Engine, settings: Any, key_id: str) -> tuple[int, str]:
    """(exit code, message): refuse while any row uses ``key_id``; else drop it (development) or say it is safe."""
    configured = [k for k, _ in parse_key_list(settings.credential_keys)]
    if configured and key_id == configured[0]:
        return 1, (f"refused: '{key_id}' is the active key. Run `vault add-key`, deploy the new key first, "
                   "then `vault rotate`, then retire this one.")
    counts = rows_using_key(engine, key_id)
    if any(counts.values()):
        return 1, (f"refused: key '{key_id}' still encrypts {counts['broker_accounts']} broker account(s) and "
                   f"{counts['oauth_tokens']} OAuth token(s); run `python -m backend vault rotate` first.")
    if key_id not in configured:
        return 0, f"key '{key_id}' is not in CREDENTIAL_KEYS and no row uses it: nothing to do."
    remaining = [e for e in _spec_entries(settings.credential_keys) if e.split(":", 1)[0].strip() != key_id]
    path = development_secrets_file(settings)
    if path is not None:
        _write_keys(path, ",".join(remaining))
        return 0, f"no row uses key '{key_id}': removed it from {path}. Restart the processes."
    keep = ", ".join(e.split(":", 1)[0] for e in remaining)
    return 0, (f"no row uses key '{key_id}': it is safe to remove its entry from CREDENTIAL_KEYS "
               f"(keep: {keep}) and restart the processes.")


# ------------------------------------------------------------------ argparse
def register(groups: argparse._SubParsersAction) -> None:
    vault = groups.add_parser("vault", help="credential encryption keys")
    commands = vault.add_subparsers(dest="command", metavar="<command>", required=True)
    add = commands.add_parser("add-key", help="make a new active key")
    add.add_argument("--key-id", help="id for the new key (default: the next k<N>)")
    add.set_defaults(handler=_cmd_add_key)
    rotate = commands.add_parser("rotate", help="re-encrypt every credential under the active key")
    rotate.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    rotate.set_defaults(handler=_cmd_rotate)
    retire = commands.add_parser("retire-key", help="check a key is unused and drop it")
    retire.add_argument("key_id", metavar="KEYID")
    retire.set_defaults(handler=_cmd_retire_key)


def _fail(exc: TradeExecutorError) -> int:
    print(f"error: {exc}", file=sys.stderr)
    return 1


def _cmd_add_key(args: argparse.Namespace) -> int:
    from backend.config import get_settings

    try:
        line, path = add_key(get_settings(), args.key_id)
    except (ConfigurationError, ValidationError) as exc:
        return _fail(exc)
    key_id = line.split(":", 1)[0]
    if path is not None:
        print(f"added key '{key_id}' as the active key in {path}; restart the app, then run "
              "`python -m backend vault rotate`.", file=sys.stderr)
    else:
        print(line)
        print(f"Put this FIRST in CREDENTIAL_KEYS (keep the old keys after it), deploy it to every process, "
              "then run `python -m backend vault rotate`.", file=sys.stderr)
    return 0


def _cmd_rotate(args: argparse.Namespace) -> int:
    from backend.config import get_settings
    from backend.db.session import get_engine

    try:
        vault = Vault.from_settings(get_settings())
    except ConfigurationError as exc:
        return _fail(exc)
    report = rotate_credentials(get_engine(), vault, batch_size=args.batch_size,
                                progress=lambda table, done: print(f"  {table}: {done} re-encrypted", file=sys.stderr))
    print(f"rotated {report.broker_accounts} broker account(s) and {report.oauth_tokens} OAuth token(s) "
          f"to key '{report.active_key_id}'")
    if report.unreadable:
        print(f"{len(report.unreadable)} record(s) could not be decrypted and were left as they are: "
              + ", ".join(report.unreadable[:50]), file=sys.stderr)
        return 1
    return 0


def _cmd_retire_key(args: argparse.Namespace) -> int:
    from backend.config import get_settings
    from backend.db.session import get_engine

    try:
        code, message = retire_key(get_engine(), get_settings(), args.key_id)
    except ConfigurationError as exc:
        return _fail(exc)
    print(message, file=sys.stderr if code else sys.stdout)
    return code
