"""Turn a raw Discord message into plain ASCII text the parser can read.

Discord delivers markdown (``**BUY**``, ``__x__``, ``||spoiler||``),
mentions (``<@123>``, ``<@&role>``, ``<#channel>``), custom emoji
(``<:rocket:123>``), timestamps (``<t:1700000000:R>``), links and unicode
emoji.  None of that names an instrument or a price, so it is removed here,
once, before any rule looks at the text.

Why the length cap (:data:`MAX_CHARS`): a Discord message is at most 4,000
characters (2,000 without Nitro).  The parser refuses anything longer (it
did not come from Discord, and cutting it could turn "SL 180" into "SL 18"),
so every regex runs on a bounded input and no text - however pathological -
costs more than a few milliseconds.  :func:`normalize` also slices to the
cap, as a second line of defence for other callers.

The output keeps one character per input character *after* the noise
removal step, and :func:`normalize` returns the same text in original case
and in lower case with identical offsets, so spans found in one can be
blanked in the other.
"""

from __future__ import annotations

import re
import unicodedata

MAX_CHARS = 4000

_NOISE = re.compile(
    r"<a?:\w{1,40}:\d{1,25}>"          # custom emoji
    r"|<[@#][!&]?\d{1,25}>"            # user / role / channel mentions
    r"|<t:-?\d{1,15}(?::\w)?>"         # timestamps
    r"|@(?:everyone|here)\b"
    r"|\[([^\]\n]{0,200})\]\(<?(?:https?://|www\.)[^)\s]{0,500}>?\)"  # masked link: keep its label
    r"|(?:https?://|www\.)\S{0,500}"   # bare links
    r"|\*+|_{2,}|~~|\|\||`+",         # markdown emphasis, spoilers, code
    re.IGNORECASE,
)
# Characters NFKC leaves alone but that mean an ASCII character here.
_TRANSLATE = str.maketrans({
    "\u2013": "-", "\u2014": "-", "\u2012": "-", "\u2212": "-", "\u2010": "-", "\u2011": "-",
    "\u00d7": "x", "\u2044": "/", "\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2022": " ",
    "\r": "\n", "\t": " ", "\u00a0": " ",
})
_NOISE_HINT = re.compile(r"[<@*_~|`]|http|www", re.IGNORECASE)  # cheap test before the big _NOISE
_NON_ASCII = re.compile(r"[^\x00-\x7f]+")
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")
# Stock phrases that carry a negation word but no meaning for the trade.
_BOILERPLATE = re.compile(
    r"\b(?:this\s+is\s+)?not\s+(?:financial|investment)\s+advice\b|\bnfa\b|\bdyor\b|\bnot\s+a\s+financial\s+advisor\b",
    re.IGNORECASE,
)


def _noise_sub(m: re.Match[str]) -> str:
    label = m.group(1)
    return f" {label} " if label else " "


def normalize(text: str) -> tuple[str, str]:
    """Return ``(orig, low)``: cleaned ASCII text and its lower-case twin."""
    text = text[:MAX_CHARS]
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text).translate(_TRANSLATE)
        text = _NON_ASCII.sub(" ", text)
    else:
        text = text.translate(_TRANSLATE)
    if _NOISE_HINT.search(text):
        text = _NOISE.sub(_noise_sub, text)
    text = _CONTROL.sub(" ", text)
    low = text.lower()
    if "advi" in low or "nfa" in low or "dyor" in low:
        text = _BOILERPLATE.sub(" ", text)
        low = text.lower()
    return text, low
