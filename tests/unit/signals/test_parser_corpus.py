"""Every labelled example of shared/signals/public.jsonl, one test per line.

Only the attributes listed in ``expect`` are compared (the contract's rule);
numbers are strings in the file and are compared as Decimal, the expiry as
an ISO date.  The corpus is required: a missing file fails, never skips.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from backend.signals import parse_signal
from backend.signals.parser import _parse

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").exists())
CORPUS = ROOT.parent / "shared" / "signals" / "public.jsonl"
NOW = datetime(2026, 11, 1, tzinfo=timezone.utc)
_DECIMALS = {"stop_loss", "quantity", "leverage", "strike"}
_DECIMAL_LISTS = {"entry_prices", "take_profits"}


def _rows() -> list[tuple[int, dict]]:
    if not CORPUS.exists():
        return [(0, {"missing": True})]
    lines = CORPUS.read_text(encoding="utf-8").splitlines()
    return [(n, json.loads(line)) for n, line in enumerate(lines, 1) if line.strip()]


ROWS = _rows()


def _expected(name: str, value):
    if value is None:
        return None
    if name in _DECIMAL_LISTS:
        return [Decimal(v) for v in value]
    if name in _DECIMALS:
        return Decimal(value)
    if name == "expiry":
        return date.fromisoformat(value)
    return value


def test_corpus_is_present_and_not_trivial():
    assert CORPUS.exists(), f"the labelled corpus is required at {CORPUS}"
    assert len(ROWS) >= 30


@pytest.mark.parametrize("row", [r for _, r in ROWS], ids=[f"line{n}" for n, _ in ROWS])
def test_public_example(row):
    assert "missing" not in row, f"the labelled corpus is required at {CORPUS}"
    text, expect = row["text"], row["expect"]
    signal = parse_signal(text, now=NOW)
    assert _parse(text, NOW) == signal  # the safety net in parse_signal hid nothing
    if expect is None:
        assert signal is None, f"chatter parsed as a trade: {text!r} -> {signal}"
        return
    assert signal is not None, f"signal missed: {text!r}"
    for name, value in expect.items():
        assert getattr(signal, name) == _expected(name, value), f"{name} of {text!r}"
