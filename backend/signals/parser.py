"""Chat message -> :class:`Signal` or None (``shared/contracts/signals.md``).

The pipeline, cheapest and most decisive steps first:

1. Text longer than 4,000 characters (Discord's maximum) is not a Discord
   message -> None; this bounds the cost of every later step.
   :func:`~backend.signals.text.normalize` strips markdown, mentions, links
   and emoji.
2. No word that can start a trading verb -> None (most chatter stops here, in
   microseconds: a set intersection, no regex).
3. A veto word (question, hedge, negation, recap, news, announcement ...)
   -> None.  See :mod:`backend.signals.vocab`.
4. Exactly one instrument must be named; two or none -> None.
5. A verb must be an instruction about that instrument, not a noun, an
   idiom or part of a sentence (:mod:`backend.signals.grammar`); the verbs
   then decide action and side; contradictions -> None.
6. Sizes, the option contract, leverage and non-price numbers (times,
   "+40%") are read and blanked, then the remaining numbers are assigned to
   entry / stop / targets by :func:`~backend.signals.numbers.scan_prices`
   (which refuses numbers that count or measure something, "5 days", and
   levels to cross first, "long above 590").
7. Consistency checks: a long's stop must sit below its entry and targets
   above (mirrored for a short); one order's prices lie close together; a
   lone small integer is a count, not a price; a modify must say what
   changes; anything unexplained (percent stops, three entry prices, two
   stops, a second unlabelled price) -> None; and the message may carry
   only as much prose as its order structure vouches for.

Precision over recall throughout: every doubt returns None, because a
misread message becomes a real order in somebody's account.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime, timezone
from decimal import Decimal

from backend.signals import numbers as nums
from backend.signals.grammar import maybe_prose, read_verbs
from backend.signals.model import Signal
from backend.signals.options import Ambiguous, find_option
from backend.signals.symbols import find_symbols
from backend.signals.text import MAX_CHARS, normalize
from backend.signals.vocab import VERB_LEADS, classify_action, third_party, vetoed, words_of

log = logging.getLogger(__name__)

_TAKE_PROFIT = re.compile(r"\btake[\s-]*profits?\b|\bprofit\s+targets?\b")
_MAX_LEVERAGE = Decimal(200)
# Prose words outside the instruction clause ("Exit AAPL now, thesis broken"),
# allowed only when the instruction clause itself is clean.
_COMMENTARY_BUDGET = 3
_SPREAD = (Decimal(4), Decimal(25))  # widest max/min ratio of one order's prices: (stocks & crypto, options)
_ENTRY_WORD = re.compile(r"(?<!to )(?<!at )\b(?:entry|entries|entered|entering|re-?entry)\b")
_BREAKEVEN = re.compile(r"\b(?:breakeven|break[\s-]even|b/e|(?:to|at|@)\s*(?:be|entry)|be\s+stop|sl\s+be)\b")
# Closing verbs other than a bare "sell" (which may open a short, see _parse).
_EXPLICIT_CLOSE = frozenset({"btc", "stc", "partial", "stopped", "profit", "close"})
# Which stated sizes mean something for each action.
_SIZE_KINDS = {"open": ("units", "usd", "equity"), "close": ("units", "usd", "position")}
_UNIT_NAMES = {"units": "units", "usd": "usd", "equity": "percent_equity", "position": "percent_position"}


def parse_signal(text: str, *, now: datetime | None = None) -> Signal | None:
    """Parse one chat message; None when it is not an actionable signal.

    Never raises: an unexpected internal error is logged and reported as
    "not a signal" (the tests call :func:`_parse` directly so such errors
    still fail them).
    """
    if not isinstance(text, str) or not text.strip():
        return None
    try:
        return _parse(text, now or datetime.now(timezone.utc))
    except Exception:  # pragma: no cover - defensive; _parse is tested to never raise
        log.exception("signal parser failed on a message of %d characters", len(text))
        return None


def _parse(text: str, now: datetime) -> Signal | None:
    if len(text) > MAX_CHARS:
        return None  # not a Discord message; truncating could cut "SL 180" to "SL 18"
    orig, low = normalize(text)
    words = words_of(low)
    if words.isdisjoint(VERB_LEADS) or vetoed(low, words):
        return None
    if third_party(orig):
        return None
    found, spans = find_symbols(orig)
    if len(found) != 1:
        return None
    symbol, asset_class = next(iter(found.items()))
    work = low
    for start, end, _ in spans:
        work = work[:start] + "Ω" + " " * (end - start - 1) + work[end:]

    symbol_text = " ".join([low[start:end] for start, end, _ in spans])
    cats, linked, prose, commentary = read_verbs(work, [start for start, _, _ in spans], words,
                                                 maybe_prose(words, symbol_text))
    if not linked or commentary > _COMMENTARY_BUDGET:
        return None  # no verb is about the instrument ("sold out show at the NVDA conference")
    decided = classify_action(cats)
    if decided is None:
        return None
    action, side = decided

    sizes: dict[tuple[str, Decimal], None] = {}
    blanks = []
    for kind, pattern in nums.SIZES if nums.SIZE_HINT.search(work) else ():
        for m in pattern.finditer(work):
            value = nums.size_of(kind, m.group())
            if value is not None:
                sizes[(kind, value)] = None
            blanks.append(m.span())
    if blanks:
        work = nums.blank(work, blanks)

    try:
        spec = find_option(work, now.date())
    except Ambiguous:
        return None
    if spec is not None:
        if asset_class != "stock":
            return None
        asset_class = "option"
        work = nums.blank(work, spec.spans)

    leverages: set[Decimal] = set()
    blanks = [m.span() for m in nums.NON_PRICE.finditer(work)]
    for m in nums.LEVERAGE.finditer(work):
        values = [nums.to_decimal(g) for g in m.groups() if g]
        if None in values or (m.group(nums.PREFIX_LEVERAGE) and asset_class != "crypto"):
            return None  # "Buy AAPL x2": two shares, two lots or 2x? Only crypto writes leverage so
        leverages.add(min(values))  # "5x-10x": the conservative end of a range
        blanks.append(m.span())
    if blanks:
        work = nums.blank(work, blanks)
    if "profit" in work:
        work = _TAKE_PROFIT.sub(" tp ", work)

    p = nums.scan_prices(work)
    if p.bad or len(set(p.stops)) > 1:
        return None
    leverages.update(p.leverage)
    if len(leverages) > 1 or any(not Decimal(1) <= v <= _MAX_LEVERAGE for v in leverages):
        return None
    if leverages and asset_class == "option":
        return None
    for value in p.units_before_symbol:
        sizes[("units", value)] = None

    entries = p.entries
    if p.market:
        if entries or p.leftovers:
            return None
    elif entries and p.leftovers:
        return None  # "Long BTC 2025, top 150k": a second price nobody labelled
    elif not entries and len(p.leftovers) == 1:
        entries = p.leftovers
    elif not entries and p.leftovers:
        return None  # several unexplained numbers: we cannot tell which is the price
    stop = p.stops[0] if p.stops else None
    targets = p.targets
    if not _prices_plausible(entries, stop, targets, p.labelled, asset_class):
        return None

    if action == "close" and not cats & _EXPLICIT_CLOSE and (stop is not None or targets):
        # A bare "SELL X ... SL ... TP ..." carries a stop and targets, which a
        # close never does: it opens a short.
        action, side = "open", "sell"
    if action in ("close", "modify") and _ENTRY_WORD.search(work):
        return None  # "Closed TSLA 260, entry 240": which number is the exit?

    quantity = unit = None
    allowed = _SIZE_KINDS.get(action, ())
    stated = [(k, v) for (k, v) in sizes if k in allowed]
    if len(stated) > 1:
        return None
    if stated:
        kind, quantity = stated[0]
        unit = _UNIT_NAMES[kind]
        if kind in ("equity", "position") and quantity > 100:
            return None

    budget = _prose_budget(action, entries, stop, targets, p.labelled, quantity, leverages, spec)
    if prose and prose + commentary > budget or prose > budget:
        return None  # a sentence that happens to contain a verb and a ticker
    if action == "open":
        if not _geometry_ok(side, entries, stop, targets):
            return None
    elif action == "modify":
        if entries or p.leftovers or (stop is None and not targets and not _BREAKEVEN.search(work)):
            return None
    elif action == "cancel":
        stop, targets = None, []

    return Signal(
        action=action, side=side if action == "open" else None, symbol=symbol, asset_class=asset_class,
        order_type="limit" if entries else "market", entry_prices=sorted(entries), stop_loss=stop,
        take_profits=list(targets), quantity=quantity, quantity_unit=unit,
        leverage=next(iter(leverages), None),
        option_right=spec.right if spec else None, strike=spec.strike if spec else None,
        expiry=spec.expiry if spec else None,
        partial_close=action == "close" and "partial" in cats and quantity is None,
        breakeven=action == "modify" and stop is None and bool(_BREAKEVEN.search(work)),
    )


def _prose_budget(action: str, entries: list[Decimal], stop: Decimal | None, targets: list[Decimal],
                  labelled: bool, quantity: Decimal | None, leverages: set[Decimal], spec) -> int:
    """How many prose words (see :mod:`backend.signals.grammar`) a signal may carry.

    The more order structure a message has, the surer we are that it is an
    order: a labelled entry, a stop or targets allow two stray words ("BUY
    AAPL @ 185 SL 180 - earnings play"); a bare price, size, leverage or
    option contract allows one; a bare "buy X" allows none, because "Long
    NVDA and chill" and "Buy AAPL, trust me" are chatter, and an order with
    nothing to corroborate it is the costliest misread (a close, cancel or
    modify names an existing position or order, so it gets one).
    """
    if stop is not None or targets or labelled or action == "cancel":
        return 2  # (a wrong cancel only withdraws a pending order: the cheapest misread)
    if entries or quantity is not None or leverages or spec is not None or action != "open":
        return 1
    return 0


def _prices_plausible(entries: list[Decimal], stop: Decimal | None, targets: list[Decimal], labelled: bool,
                      asset_class: str) -> bool:
    """Numbers that cannot all be prices of one order mean we misread the message.

    * A lone small integer after a bare verb, with no stop or target to
      corroborate it ("Short TSLA, 1 of my favorite setups", "BUY AAPL 3"),
      is far more often a count than a $3 limit price.
    * Prices of one order lie close together: a stop or target more than
      :data:`_SPREAD` times away from the others ("Buy AAPL @ 225 SL 22",
      "Long SOL 150 TP 1500") is a typo or not a price at all.  Option
      premiums swing much more, so they get a wider band.
    """
    if len(entries) == 1 and not labelled and stop is None and not targets:
        value = entries[0]
        if value < 10 and value == value.to_integral_value():
            return False
    prices = entries + targets + ([stop] if stop is not None else [])
    if len(prices) > 1:
        return max(prices) <= min(prices) * _SPREAD[asset_class == "option"]
    return True


def _geometry_ok(side: str | None, entries: list[Decimal], stop: Decimal | None, targets: list[Decimal]) -> bool:
    """A long's stop is below its entry and targets above; a short mirrors that.

    A violation means we misread the numbers (or the author made a typo):
    either way the order must not be placed.
    """
    sign = 1 if side == "buy" else -1
    if entries:
        lo, hi = (min(entries), max(entries)) if sign == 1 else (max(entries), min(entries))
        if stop is not None and not sign * stop < sign * lo:
            return False
        if any(not sign * t > sign * hi for t in targets):
            return False
    elif stop is not None and any(not sign * t > sign * stop for t in targets):
        return False
    return True
