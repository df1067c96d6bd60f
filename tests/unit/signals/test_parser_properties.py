"""Properties: the parser never raises, and no input can make it slow.

"Slow" is asserted per example with a CPU-time bound (:data:`TIME_BOUND`),
both on fixed pathological strings and on generated long ones.

The tests call the internal ``_parse`` (no safety net), so an exception
that ``parse_signal`` would have swallowed still fails here.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backend.signals import Signal, parse_signal
from backend.signals.parser import _parse
from backend.signals.text import MAX_CHARS

NOW = datetime(2026, 11, 1, tzinfo=timezone.utc)
SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

WORDS = st.sampled_from([
    "BUY", "buy", "Long", "SHORT", "sell", "sold", "STC", "BTO", "STO", "close", "exit", "out of", "all out",
    "trim", "half", "scale out", "took profits", "stopped out", "move stop to", "SL to", "BE", "breakeven",
    "cancel", "void", "@", "at", "entry", "Entry:", "SL", "stop", "TP", "TP1", "targets", "PT", "limit",
    "market", "mkt", "AAPL", "$TSLA", "#BTCUSDT", "ETH/USDT", "BTC", "SPY", "450C", "200p", "11/17",
    "12/19/2026", "Jan 16 2027", "calls", "shares", "contracts", "$500 of", "2% of account", "risk 1%",
    "10x", "Leverage: Cross", "lev", "-", "/", ",", ":", "\n", "?", "**", "<@123>", "🚀", "✅", "k", "%",
    "1/2", "0dte", "may", "not", "yesterday", "https://x.y/z", "Ω", "§", "\x00", "\u202e",
    "x20", "is", "are", "buying power", "entry level", "5 days", "3 reasons", "above", "below", "shares F @",
    "SL 0.98 on", "now", "add", "to the", "doc", "1 of my", "my entry",
])
NUMBERS = st.one_of(
    st.integers(min_value=0, max_value=10**7).map(str),
    st.decimals(allow_nan=False, allow_infinity=False, places=4, min_value=0, max_value=10**6).map(str),
    st.sampled_from([".85", "1,250.50", "42,000", "250,260,270", "1e5", "NaN", "-5", "+40%", "0", "9" * 30]),
)
MESSAGES = st.lists(st.one_of(WORDS, NUMBERS, st.text(max_size=5)), max_size=30).map(" ".join)


def _check(text: str) -> None:
    result = _parse(text, NOW)
    assert result is None or isinstance(result, Signal)
    if result is not None:
        assert Signal.from_dict(result.to_dict()) == result
        assert result.action in ("open", "close", "modify", "cancel")
        assert result.action != "open" or result.side in ("buy", "sell")
        assert len(result.entry_prices) <= 2 and result.entry_prices == sorted(result.entry_prices)
        assert all(p > 0 for p in result.entry_prices + result.take_profits)


@SETTINGS
@given(st.text())
def test_never_raises_on_any_text(text):
    _check(text)


@SETTINGS
@given(MESSAGES)
def test_never_raises_on_signal_like_text(text):
    _check(text)


@SETTINGS
@given(st.text(alphabet=st.characters(codec="ascii"), max_size=200))
def test_never_raises_on_ascii_noise(text):
    _check(text)


@given(st.one_of(st.none(), st.integers(), st.binary(), st.lists(st.text())))
def test_non_strings_are_not_signals(value):
    assert parse_signal(value, now=NOW) is None


PATHOLOGICAL = [
    "1" * 100_000, "." * 100_000, "1." * 50_000, "-" * 100_000, "TP " * 33_000, "TP 1 " * 20_000,
    "BUY AAPL " + "1-" * 50_000, "1,234" * 20_000, "@" * 100_000, "sl to " * 20_000, "AAAA " * 20_000,
    "BUY AAPL @ 185 SL 180 TP 195 " * 4_000, "11/17 " * 20_000, "450C " * 20_000, "🚀" * 100_000,
    "\n" * 100_000, "$A" * 50_000, "#BTC/USDT-" * 10_000, "<@" * 50_000, "*_" * 50_000, "1x-" * 30_000,
    "jan 1 " * 20_000, "out of " * 15_000, "entry 1-1 " * 10_000, "may " * 25_000, "http://" * 15_000,
]


# Long generated input that gets past the cheap gates (a verb, one symbol, no
# veto word) so that every later step - symbol scan, verb/prose reading,
# sizes, options, the price state machine - runs on up to 4,000 characters.
_LEADS = st.sampled_from(["BUY AAPL ", "Long $TSLA ", "#BTCUSDT short ", "SL to ", "STC SPY 450C 11/17 ",
                          "Move stop to ", "out of AAPL ", "Cancel ETH/USDT ", "", "BTO 5 QQQ "])
_UNITS = st.sampled_from([
    "1", "9", ".", "1.", "-", "1-", "1,", ",234", "/", "1/2 ", "@", "@ ", "k", "% ", "x", "x2", "2x ", " ",
    "\n", "TP ", "TP1 ", "sl to ", "stop ", "entry ", "targets ", "out of ", "move stop to ", "lev ",
    "buy ", "sell ", "long ", "short ", "cancel ", "shares ", "$500 of ", "2% of account ", "450C ",
    "11/17 ", "jan 1 ", "AAPL ", "$A", "F ", "Ω", "power ", "jobs ", "above ", "is ", "5 days ", "🚀",
])
PATHOLOGICAL_TEXT = st.builds(
    lambda lead, units, size: (lead + "".join(units) * (size // max(1, len("".join(units))) + 1))[:size],
    _LEADS, st.lists(_UNITS, min_size=1, max_size=4), st.integers(min_value=200, max_value=MAX_CHARS),
)
# Seconds of CPU time for one message (typical messages take ~50 microseconds,
# a 4,000-character one a few milliseconds).  CPU time, not wall time: on a
# shared machine the wall clock measures the neighbours; catastrophic
# backtracking burns CPU and is caught either way.
TIME_BOUND = 0.5


def _cpu_seconds(text: str) -> float:
    start = time.process_time()
    _check(text)
    return time.process_time() - start


# deadline=None: Hypothesis' own deadline is wall-clock (flaky under load);
# the bound is asserted per example below instead.
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(PATHOLOGICAL_TEXT)
def test_long_generated_input_is_fast(text):
    """Per-example time bound (not just "never raises"): runs of digits, dots,
    separators and repeated keywords up to Discord's 4,000-character limit
    must never make a regex or the state machine go super-linear."""
    assert len(text) <= MAX_CHARS
    elapsed = _cpu_seconds(text)
    assert elapsed < TIME_BOUND, f"{elapsed:.3f} s of CPU for {len(text)} characters: {text[:80]!r}..."


@pytest.mark.parametrize("text", PATHOLOGICAL, ids=range(len(PATHOLOGICAL)))
@pytest.mark.parametrize("limit", [MAX_CHARS, None], ids=["at-discord-limit", "100KB"])
def test_pathological_input_is_fast(text, limit):
    """Whole 100 KB strings are refused at once (longer than Discord allows);
    the same patterns cut to exactly 4,000 characters go through every step
    and must still be fast: no regex may backtrack catastrophically."""
    text = text[:limit] if limit else text
    assert _cpu_seconds(text) < TIME_BOUND
