"""Option contracts: strike + right (``450C``, ``450 calls``) and expiry.

Accepted shapes (case-insensitive, any order around the underlying):
``SPY 450C 11/17``, ``SPY 11/17 450c``, ``SPY 450 call 11/17``,
``AAPL 12/19/2026 200P``, ``QQQ Jan 16 2027 500 calls``, ``SPY 0DTE 450C``.

Why so strict:

* A date is only read as an expiry when a strike+right is present:
  ``TP 12/15`` on a stock is two targets, not a date.
* Exactly one strike and at most one expiry: spreads and rolls
  (``450/455C``, two dates) are not one order, so :func:`find_option`
  reports them as ambiguous and the parser returns None.
* Option words without a usable contract ("bought some SPY calls") are
  ambiguous too - there is no order to place.
* A date without a year is the first such date on or after ``today``
  (``11/17`` seen on 2026-11-01 is 2026-11-17; ``Jan 16`` is 2027-01-16).
  An explicit date already in the past is refused: an expired contract
  can only be a recap.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

_STRIKE = re.compile(
    r"(?<![\w.$/])\$?(\d{1,5}(?:\.\d{1,3})?)(?:([cp])|\s?(calls?|puts?))\b(?!/)"
)
_ANY_RIGHT = re.compile(r"\d\s?(?:[cp]|calls?|puts?)\b")
_OPTION_WORDS = re.compile(r"\b(?:calls?|puts?|options?|strike|expiry|expiration|exp|dte|0dte|leaps)\b")
_OPTION_HINT = re.compile(_OPTION_WORDS.pattern + "|" + _ANY_RIGHT.pattern)
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_MONTH_RE = (r"(jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
             r"|sept?(?:ember)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?")
_YEAR_RE = r"(?:,?\s*(?:'(\d\d)|(20\d\d))\b)?"
_DATES = re.compile(
    r"(?<![\w./])(?P<m>\d{1,2})/(?P<d>\d{1,2})(?:/(?P<y>\d{4}|\d{2}))?(?![\w/]|\.\d)"
    r"|\b(?P<iy>20\d\d)-(?P<im>\d\d)-(?P<id>\d\d)\b"
    r"|\b" + _MONTH_RE.replace("(", "(?P<mn>", 1) + r"\s*(?P<md>\d{1,2})(?:st|nd|rd|th)?\b"
    + _YEAR_RE.replace("(\\d\\d)", "(?P<my2>\\d\\d)").replace("(20\\d\\d)", "(?P<my4>20\\d\\d)")
    + r"|\b(?P<dd>\d{1,2})(?:st|nd|rd|th)?\s+" + _MONTH_RE.replace("(", "(?P<dm>", 1) + r"(?![a-z])"
    + _YEAR_RE.replace("(\\d\\d)", "(?P<dy2>\\d\\d)").replace("(20\\d\\d)", "(?P<dy4>20\\d\\d)")
    + r"|\b(?P<zero>0\s?dte)\b"
)


@dataclass(frozen=True)
class OptionSpec:
    right: str            # "call" | "put"
    strike: Decimal
    expiry: date | None
    spans: tuple[tuple[int, int], ...]  # text to blank so its numbers are not read as prices


class Ambiguous(Exception):
    """The message talks about options but not about exactly one contract."""


def _resolve(month: int, day: int, year: int | None, today: date) -> date | None:
    try:
        if year is not None:
            found = date(year, month, day)
            return found if found >= today else None
        for y in range(today.year, today.year + 9):  # 9 years always contain a Feb 29
            try:
                candidate = date(y, month, day)
            except ValueError:
                if month == 2 and day == 29:
                    continue
                return None
            if candidate >= today:
                return candidate
    except ValueError:
        return None
    return None


def _date_of(m: re.Match[str], today: date) -> date | None:
    g = m.groupdict()
    if g["zero"]:
        return today
    if g["iy"]:
        return _resolve(int(g["im"]), int(g["id"]), int(g["iy"]), today)
    if g["m"]:
        y = g["y"]
        year = None if y is None else (2000 + int(y) if len(y) == 2 else int(y))
        return _resolve(int(g["m"]), int(g["d"]), year, today)
    name, day, y2, y4 = ((g["mn"], g["md"], g["my2"], g["my4"]) if g["mn"]
                         else (g["dm"], g["dd"], g["dy2"], g["dy4"]))
    year = 2000 + int(y2) if y2 else (int(y4) if y4 else None)
    return _resolve(_MONTHS.index(name[:3]) + 1, int(day), year, today)


def find_option(work: str, today: date) -> OptionSpec | None:
    """The one option contract in ``work`` (lower case), or None for a non-option message.

    Raises :class:`Ambiguous` when option vocabulary is present but there
    is not exactly one well-formed contract.
    """
    if not _OPTION_HINT.search(work):
        return None
    strikes = list(_STRIKE.finditer(work))
    if len(strikes) != 1 or len(_ANY_RIGHT.findall(work)) != 1:
        raise Ambiguous("need exactly one strike with call/put")
    sm = strikes[0]
    right = "call" if (sm.group(2) or sm.group(3))[0] == "c" else "put"
    strike = Decimal(sm.group(1))
    if strike <= 0:
        raise Ambiguous("strike must be positive")
    blanked = work[: sm.start()] + " " * (sm.end() - sm.start()) + work[sm.end():]
    expiries: set[date] = set()
    spans = [(sm.start(), sm.end())]
    for dm in _DATES.finditer(blanked):
        found = _date_of(dm, today)
        if found is None:
            raise Ambiguous("expiry is not a valid future date")
        expiries.add(found)
        spans.append((dm.start(), dm.end()))
    if len(expiries) > 1:
        raise Ambiguous("more than one expiry")
    return OptionSpec(right, strike, next(iter(expiries), None), tuple(spans))

