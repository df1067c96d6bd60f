"""Numbers in a message: sizes, leverage, and the prices each label owns.

The parser first blanks the spans whose numbers are *not* prices - the
option contract, times ("5pm", "9:30"), risk/reward ratios, sizes
("10 shares", "$500 of", "2% of account", "sell half"), leverage ("10x") -
and then :func:`scan_prices` walks what is left with a tiny state machine:
a label (``@``, ``entry``, ``SL``, ``TP1``, ``targets`` ...) opens a field,
the numbers that follow belong to it, and any other word closes it.
A trading verb opens a weak entry field ("ADA-USD buy 0.45"), a number
right before the symbol is a quantity ("BTO 5 QQQ ...", "Buy 0.5 BTC"), and
two entry prices must be joined by a range separator ("240-242").
Numbers claimed by no label are returned as ``leftovers``; the parser
treats one of them as an entry price and several as ambiguity.  A number
followed by a word that prices do not take ("5 *days*", "3 *reasons*",
"1 *of* my setups") counts or measures something, and a number after
"above"/"below"/"breaks" is a level to cross first: both make the message
unreadable as one order (``bad``).

Every regex here is linear: no nested unbounded quantifiers that can
overlap, so a 4,000-character line of digits and dots costs microseconds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from backend.signals.vocab import VERB_LEADS

NUM = r"\$?(?:\d+(?:,\d{3})*(?:\.\d+)?|\.\d+)k?"
_MAX_DIGITS = 12


def to_decimal(raw: str) -> Decimal | None:
    """``"$1,250.50"`` -> 1250.50, ``".85"`` -> 0.85, ``"42k"`` -> 42000; None if not a sane positive number."""
    if raw[:1] == "$":
        raw = raw[1:]
    if "," in raw:
        raw = raw.replace(",", "")
    kilo = raw[-1:] == "k"
    if kilo:
        raw = raw[:-1]
    dot = raw.find(".")
    if not raw or (dot if dot >= 0 else len(raw)) > _MAX_DIGITS or len(raw) > 24:
        return None
    try:
        value = Decimal(raw)
    except InvalidOperation:
        return None
    if not value.is_finite() or value <= 0:
        return None
    return value * 1000 if kilo else value


def split_commas(raw: str) -> list[str]:
    """``"42,000"`` is one number but ``"250,260,270"`` is a list of targets.

    A comma group is read as a thousands separator unless every group has
    three digits of similar size (a list of nearby prices, e.g. targets).
    """
    if "," not in raw:
        return [raw]
    parts = raw.lstrip("$").split(",")
    if len(parts[0]) == 3 and all(p[:3].isdigit() for p in parts):
        first = int(parts[0])
        if first and all(abs(int(p[:3]) - first) <= first // 2 for p in parts[1:]):
            return parts
    return [raw]


def blank(text: str, spans) -> str:
    """Replace each ``(start, end)`` span with spaces, keeping offsets."""
    for start, end in spans:
        text = text[:start] + " " * (end - start) + text[end:]
    return text


# --- sizes, leverage and numbers that are not prices ------------------------------
# Each pattern comes with a *hint*: a cheap literal regex that must match
# for the pattern to have any chance.  Most messages fail every hint, which
# skips the expensive alternations (the benchmark depends on it).
class Gated:
    def __init__(self, pattern: str, hint: str) -> None:
        self.regex = re.compile(pattern)
        self.hint = re.compile(hint)

    def finditer(self, text: str):
        return self.regex.finditer(text) if self.hint.search(text) else ()


NON_PRICE = Gated(
    r"\b\d{1,2}:\d\d(?::\d\d)?\s*(?:am|pm)?\b|\b\d{1,2}\s?(?:am|pm)\b"          # times
    r"|\b(?:r\s*[:/]\s*r|rr|risk\s*(?:to|/|:)?\s*reward)\s*[:=]?\s*\d+(?:\.\d+)?\s*[:/]\s*\d+(?:\.\d+)?"
    r"|#\d+|\b(?:trade|signal|alert|idea|setup|day|week)\s+\d+\b"               # "#2", "trade 3"
    r"|[+-]\s?\$\s?[\d,.]+k?|\+\s?[\d,.]+\s?%?",                                 # "+40%", "+$500": results
    r":|[ap]m\b|#|\+|-\s?\$|rr|r/r|reward|(?:trade|signal|alert|idea|setup|day|week)\s+\d",
)
LEVERAGE = Gated(
    r"\b(?:leverage|lev)\b\s*[:=-]?\s*(?:(?:cross|isolated|iso)\b\s*[:=-]?\s*)?\(?\s*x?(\d{1,3}(?:\.\d+)?)\s*x?\b"
    r"(?:\s*-\s*(\d{1,3})\s*x\b)?"
    r"|(?<![\w.])(\d{1,3}(?:\.\d+)?)\s?x\b(?:\s*-\s*(\d{1,3})\s?x\b)?"
    r"|(?<![\w.])x(\d{1,3})\b(?![.,/]\d)",   # "x20": exchange style; the parser accepts it for crypto only
    r"\dx|\d x|lev|x\d",
)
PREFIX_LEVERAGE = 5  # LEVERAGE group of the "x20" form
_UNITS = r"(?:more\s+)?(?:shares?|shs?|contracts?|cons?|cts?|units?|lots?|coins?)"
_N = r"(?:" + NUM + r")"
SIZES = (
    ("units", Gated(r"(?<![\w.])" + _N + r"\s*" + _UNITS + r"\b", r"sh|con|cts|unit|lot|coin")),
    ("usd", Gated(
        r"\$\s?" + _N + r"\s*(?:usd\s+)?(?:of|worth|in|into|notional|position)\b"
        r"|(?<![\w.])" + _N + r"\s*(?:usd|usdt|usdc|dollars|bucks)\s+(?:of|worth|in|into)\b"
        r"|\b(?:size|notional|margin|amount|using|with)\s*[:=]?\s*\$\s?" + _N +
        r"|\b(?:using|with)\s+" + _N + r"\s*(?:usd|usdt|usdc|dollars|bucks)\b",
        r"\$|usd|dollar|buck")),
    ("equity", Gated(
        r"\b(?:risk(?:ing)?|size|allocation|alloc|allocate|allocating)\s*[:=]?\s*" + _N + r"\s*%"
        r"|(?<![\w.])" + _N + r"\s*%\s*(?:of\s+)?(?:(?:my|the|your|our|total)\s+)?"
        r"(?:account|acct|equity|portfolio|port|capital|balance|bankroll|risk|allocation|position\s+size)",
        r"%")),
    ("position", Gated(
        r"\b(?:sell|sold|selling|trim(?:med|ming)?|take|took|taking|close[ds]?|closing|exit(?:ed|ing)?"
        r"|scal(?:e|ed|ing)\s+out(?:\s+of)?|cut|cutting|another)\s+(?:another\s+|out\s+|Ω\s+)?" + _N + r"\s*%"
        r"|(?<![\w.])" + _N + r"\s*%\s+(?:off|of\s+(?:(?:my|the|our|your|this)\s+)?(?:position|pos|shares|"
        r"contracts|stake|holdings?|size|Ω))"
        r"|\b(?:half|a\s+third|two\s+thirds|three\s+quarters|a\s+quarter|quarter\s+(?:off|of))\b"
        # "1/2" is a fraction only next to a closing verb or "of"/"off" (else it may be an expiry, Jan 2)
        r"|\b(?:sell|sold|selling|trim(?:med|ming)?|take|took|taking|close[ds]?|closing|stc|scal(?:e|ed|ing)\s+out(?:\s+of)?)"
        r"\s+(?:another\s+)?[123]/[234]\b|\b[123]/[234]\s+(?:of|off|position|size)\b",
        r"%|half|quarter|third|[123]/[234]")),
)
# One search that fails when every SIZES hint would fail (the common case).
SIZE_HINT = re.compile("|".join(f"(?:{pattern.hint.pattern})" for _, pattern in SIZES))
_NUM_IN = re.compile(NUM)
_FRACTIONS = {"three quarters": Decimal(75), "3/4": Decimal(75), "two thirds": Decimal("66.67"),
              "2/3": Decimal("66.67"), "half": Decimal(50), "1/2": Decimal(50), "third": Decimal("33.33"),
              "1/3": Decimal("33.33"), "quarter": Decimal(25), "1/4": Decimal(25)}
def size_of(kind: str, text: str) -> Decimal | None:
    """The number inside a :data:`SIZES` match of group ``kind``."""
    if kind == "position":
        text = " ".join(text.split())
        for word, value in _FRACTIONS.items():
            if word in text:
                return value
    m = _NUM_IN.search(text)
    return to_decimal(m.group()) if m else None


# --- the price state machine ---------------------------------------------------------
_TOKEN = re.compile(
    r"(?P<num>" + NUM + r")(?![a-z0-9])(?P<pct>\s?%)?"
    r"|(?P<junk>\d[a-z0-9.]*)"
    r"|(?P<word>[a-zΩ][a-z0-9'/]*)"
    r"|(?P<nl>\n)"
    r"|(?P<p>[^\sa-z0-9])"
)
_ROLE = {
    **dict.fromkeys("entry entries enter entering entered reentry limit lmt here".split(), "entry"),
    **dict.fromkeys("sl stop stops stoploss s/l invalidation".split(), "stop"),
    **dict.fromkeys("tp tps pt pts target targets tgt tgts tg".split(), "tp"),
    **dict.fromkeys("leverage lev".split(), "lev"),
    **dict.fromkeys("market mkt cmp".split(), "market"),
    **dict.fromkeys("be b/e breakeven".split(), "be"),
    **dict.fromkeys("buy buying bought long short shorting sell selling sold bto sto stc add adding added "
                    "close closing closed exit exiting exited trim trimming trimmed cover covering".split(), "verb"),
    **dict.fromkeys("to is now of the loss at on for my up down new set moved raised area level levels between "
                    "and from approx about cross isolated iso usd usdt usdc Ω a price around near zone"
                    .split(), "filler"),
}
for _i in range(1, 10):
    _ROLE[f"tp{_i}"] = _ROLE[f"pt{_i}"] = _ROLE[f"target{_i}"] = _ROLE[f"tgt{_i}"] = "tp"
ROLE_WORDS = frozenset(_ROLE)
# Words that may follow a price.  A number followed by any other word counts
# or measures something ("5 days", "3 reasons", "2025 cycle", "50 bucks",
# "20 pips") - it is not a price, and a message built on it is not an order.
_AFTER_NUMBER = frozenset("""
    ish region range or then each flat exactly spot perp cross isolated swing scalp max min avg hard mental
    tight wide daily premarket again only please pls gtc firm sharp
    into in by with before after via per vs
    lotto size sizing starter position play trade idea setup premium support resistance bounce retest hedge
    full half small partial order
""".split()) | VERB_LEADS  # "$AMD limit @ 140 cancelled", "ETH 2450 long"
_PRICE_FOLLOWERS = ROLE_WORDS | _AFTER_NUMBER
# A level the price must first cross: "long above 590", "short below 495"
# are stop-entry orders, not representable as one Signal.  After a stop label
# they just describe the stop ("SL below 180").
_CONDITIONAL = frozenset("above below over under beneath through break breaks breaking breakout reclaim "
                         "reclaims lose loses losing".split())
_RANGE_SEPARATORS = frozenset({"-", "to", "/", "~", ",", "and", "&"})
_KEEP_PUNCT = set("-/,:=~|()+&$.'\"")


@dataclass
class Prices:
    entries: list[Decimal] = field(default_factory=list)
    stops: list[Decimal] = field(default_factory=list)
    targets: list[Decimal] = field(default_factory=list)
    leverage: list[Decimal] = field(default_factory=list)
    leftovers: list[Decimal] = field(default_factory=list)
    units_before_symbol: list[Decimal] = field(default_factory=list)
    market: bool = False
    labelled: bool = False   # the entry came after a price label ("@", "entry", "limit"), not a bare verb
    bad: str | None = None   # why the numbers cannot be trusted (percent stop, 3+ entries ...)


def _tokens(work: str) -> list[tuple[str, str]]:
    """``[(kind, text)]`` with kind num/pct/junk/word/nl/p (findall: 3x faster than finditer)."""
    out: list[tuple[str, str]] = []
    for num, pct, junk, word, nl, p in _TOKEN.findall(work):
        if num:
            kind = "pct" if pct else "num"
            if "," in num:
                out.extend((kind, part) for part in split_commas(num))
            else:
                out.append((kind, num))
        elif word:
            out.append(("word", word))
        elif p:
            out.append(("p", p))
        elif junk:
            out.append(("junk", junk))
        else:
            out.append(("nl", nl))
    return out


def _choose_entries(groups: list[tuple[bool, list[Decimal]]], res: Prices) -> None:
    """One entry price or range, however many labels repeat it ("BUY 185 @ 185");
    two different ones ("BUY AAPL 185 @ 186") are a contradiction."""
    found = {tuple(sorted(g)) for _, g in groups if g}
    if len(found) > 1:
        res.bad = "two different entry prices"
    elif found:
        res.entries = list(next(iter(found)))
        for after_verb, prices in groups:
            if prices and not after_verb:
                res.labelled = True
                break
    if len(res.entries) > 2:
        res.bad = "more than two entry prices"


def scan_prices(work: str) -> Prices:
    """Assign every remaining number of ``work`` to entry, stop, target, leverage or leftovers."""
    res = Prices()
    toks = _tokens(work)
    mode: str | None = None
    count = 0
    groups: list[tuple[bool, list[Decimal]]] = []  # (after a bare verb?, prices) per entry label
    simple = {"stop": res.stops, "tp": res.targets, "lev": res.leverage}
    for i, (kind, text) in enumerate(toks):
        if kind == "word" or kind == "p" and text == "@":
            role = "at" if text in ("at", "@") else _ROLE.get(text)
            if role == "verb" and mode in ("stop", "tp") and not count:
                role = "filler"  # "move stop on TSLA long to 250": "long" names the position
            if role == "at" and (mode not in ("stop", "tp", "lev") or count) or role in ("entry", "verb"):
                mode, count = "entry", 0
                groups.append((role == "verb", []))
            elif role in simple:
                mode, count = role, 0
            elif text in _CONDITIONAL:
                if mode != "stop" or count:
                    mode = "cond"
            elif role in ("market", "be"):
                res.market = res.market or role == "market"
                mode = None
            elif role not in ("filler", "at") or (count and not (mode == "tp" and text in ("and", "Ω"))):
                mode = None
        elif kind in ("num", "pct"):
            value = to_decimal(text)
            if value is None:
                if mode in ("entry", "stop", "tp", "lev"):
                    res.bad = f"{text!r} is not a usable price"  # "@ 0", a 30-digit number
                mode = None
                continue
            nxt = toks[i + 1][1] if i + 1 < len(toks) else ""
            if mode == "cond":
                res.bad = f"a level to cross first ({text}), not a price"
                mode = None
            elif kind == "num" and (nxt == "of" or len(nxt) > 1 and toks[i + 1][0] == "word"
                                    and nxt not in _PRICE_FOLLOWERS):
                res.bad = f"{text} counts or measures something ({nxt!r}), it is not a price"
                mode = None
            elif kind == "pct":
                if mode in ("stop", "tp") or (mode == "entry" and not groups[-1][0]):
                    res.bad = f"percentage where a price was expected ({text}%)"
                mode = None
            elif nxt == "Ω" and (mode is None or mode == "entry" and groups[-1][0] and not count):
                res.units_before_symbol.append(value)  # "BTO 5 QQQ ...", "Buy 0.5 BTC"
            elif mode == "tp" and value < 10 and value == value.to_integral() and nxt in (")", ":", ".") \
                    and i + 2 < len(toks) and toks[i + 2][0] in ("num", "nl", "p"):
                continue  # list index: "Targets: 1) 43000 2) 44000"
            elif mode is None:
                res.leftovers.append(value)
            else:
                if mode == "entry" and groups[-1][1] and toks[i - 1][1] not in _RANGE_SEPARATORS:
                    res.bad = "two entry prices that do not form a range"  # "Sell 1 2 AAPL"
                (groups[-1][1] if mode == "entry" else simple[mode]).append(value)
                count += 1
                if mode in ("stop", "lev"):
                    mode = None
        elif kind == "nl":
            if mode in ("stop", "lev", "entry") and (count or groups and groups[-1][0] and mode == "entry"):
                mode = None
        elif kind == "junk" or (kind == "p" and text not in _KEEP_PUNCT):
            mode = None
    _choose_entries(groups, res)
    return res
