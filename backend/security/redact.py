"""Keep secrets out of logs, exception text and the audit log.

Three tools, one vocabulary of what "looks secret":

* ``redact_data(obj)`` walks dicts and lists and replaces the *value* of any
  key whose name looks secret (password, secret, token, api_key, key,
  credentials, authorization ... case-insensitive, camelCase or snake_case)
  with ``"[redacted]"``.  The audit log runs every ``data`` dict through it.
* ``redact(text)`` scrubs free text: ``key=value`` / ``"key": "value"`` pairs
  with a secret-looking key, ``Bearer``/``Basic`` authorization values,
  passwords inside URLs, and any value registered with ``register_secret``
  (the process's own secrets: session key, bot token, billing keys).
* ``RedactingFilter`` applies ``redact`` to every log record (message, args,
  exception and stack text); ``install_log_redaction()`` attaches it to the
  root logger's handlers *and* to the log-record factory, so records are
  clean whichever handler (or pytest's caplog) ends up formatting them.

Redaction is a safety net, not the plan: code should never log credentials
in the first place.  Matching errs on the side of hiding (``key_id``-style
names ending in ``id`` are the one exception, as they name a key without
being one).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from typing import Any

REDACTED = "[redacted]"

_SECRET_WORDS = frozenset({
    "password", "passwd", "pwd", "passphrase", "secret", "secrets", "token", "tokens", "key", "keys",
    "apikey", "credential", "credentials", "creds", "authorization", "auth", "cookie", "signature",
    "otp", "pin",
})
_NOT_SECRET_SUFFIXES = frozenset({"id", "ids", "type", "name", "count"})
_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_WORD_SPLIT = re.compile(r"[^a-zA-Z0-9]+")

# Secret-looking name followed by = or : and a value (quoted or bare).
_PAIR = re.compile(
    r"""(?P<key>["']?(?P<name>[A-Za-z0-9_\-.]*[A-Za-z0-9])["']?\s*[:=]\s*)"""
    r"""(?P<value>\[redacted\]|"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[^\s,;&}\])"']+)"""
)
_AUTH_SCHEME = re.compile(
    r"\b(Bearer|Basic|Token|Bot)\s+[A-Za-z0-9._~+/=\-]{16,}", re.IGNORECASE
)
_URL_PASSWORD = re.compile(r"(?P<prefix>[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]*:)[^@/\s]+(?=@)")

_registered: tuple[str, ...] = ()  # longest first; replaced whole, never mutated in place
_registered_lock = threading.Lock()
_MIN_REGISTERED_LENGTH = 8


def is_secret_key(name: Any) -> bool:
    """True when a dict key / field name looks like it holds a credential."""
    if not isinstance(name, str) or not name:
        return False
    words = [w.lower() for w in _WORD_SPLIT.split(_CAMEL_BOUNDARY.sub("_", name)) if w]
    if not words or words[-1] in _NOT_SECRET_SUFFIXES:
        return False
    joined = "".join(words)
    return any(w in _SECRET_WORDS for w in words) or joined in {"apikey", "accesskey", "secretkey", "privatekey"}


def redact_data(obj: Any) -> Any:
    """A copy of ``obj`` with the values of secret-looking keys replaced, at any depth."""
    if isinstance(obj, dict):
        return {k: (REDACTED if is_secret_key(k) and v is not None else redact_data(v)) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [redact_data(v) for v in obj]
    if isinstance(obj, str):
        return redact(obj)
    return obj


def register_secret(value: str | None) -> None:
    """Hide this exact value wherever it appears in logged text (process-wide secrets only)."""
    global _registered
    if value and len(value) >= _MIN_REGISTERED_LENGTH:
        with _registered_lock:
            if value not in _registered:
                _registered = tuple(sorted((*_registered, value), key=len, reverse=True))


def register_secrets(values: Iterable[str | None]) -> None:
    for value in values:
        register_secret(value)


def _redact_pairs(text: str) -> str:
    """Replace the values of secret-looking ``name=value`` / ``name: value`` pairs.

    A pair whose name is harmless only consumes its name, so a secret pair
    nested in its value (``error: token=abc``) is still found.
    """
    out, pos = [], 0
    while (match := _PAIR.search(text, pos)) is not None:
        if not is_secret_key(match.group("name")):
            out.append(text[pos:match.start("value")])
            pos = match.start("value")
            continue
        value = match.group("value")
        quote = value[0] if value[:1] in {'"', "'"} else ""
        out.append(f"{text[pos:match.start('value')]}{quote}{REDACTED}{quote}")
        pos = match.end("value")
    out.append(text[pos:])
    return "".join(out)


def redact(text: Any) -> str:
    """``text`` (anything; ``str()`` is applied) with every secret-looking value replaced."""
    text = text if isinstance(text, str) else str(text)
    if not text:
        return text
    for secret in _registered:
        if secret in text:
            text = text.replace(secret, REDACTED)
    text = _AUTH_SCHEME.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _URL_PASSWORD.sub(lambda m: f"{m.group('prefix')}{REDACTED}", text)
    return _redact_pairs(text)


def safe_error_message(exc: BaseException) -> str:
    """An exception's text fit for a log line, a UI toast or a stored status message."""
    return redact(str(exc) or type(exc).__name__)


def _scrub_record(record: logging.LogRecord) -> None:
    if getattr(record, "_dte_redacted", False):
        return
    try:
        message = record.getMessage()
    except Exception:  # a bad format string must not hide the record
        message = f"{record.msg!r} % {record.args!r}"
    record.msg, record.args = redact(message), None
    if record.exc_info and record.exc_info[0] is not None:
        record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        # Keep the type for handlers that inspect it, drop the live exception (its str() is unsafe).
        record.exc_info = None
    elif record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)
    record._dte_redacted = True


class RedactingFilter(logging.Filter):
    """Logging filter that rewrites each record's text through ``redact``; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        _scrub_record(record)
        return True


_installed = False


def install_log_redaction(logger: logging.Logger | None = None) -> None:
    """Redact every record the process creates; idempotent.  Call once at process start."""
    global _installed
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args, **kwargs):
        record = previous(*args, **kwargs)
        _scrub_record(record)
        return record

    logging.setLogRecordFactory(factory)
    _installed = True
