"""Is a trading verb an *instruction about the named instrument*, or just a word?

:mod:`backend.signals.vocab` finds the trading verbs; this module decides
whether they form an order.  Chatter reuses the same words as signals -
"buying power", "entry level jobs", "cancel culture", "sold out show",
"stopped out of my mind trading SPY", "Short and sweet: SPY is choppy" - so
a verb found somewhere in the message is not enough.  Real signals are
terse: the verb sits next to the instrument, separated at most by
determiners, sizes, prices and other trading vocabulary (the words of
:data:`LINK`).  Every other word is *prose*, and prose tells us three things:

1. **Adjacency** - a verb followed directly by a prose word is a noun or an
   adjective ("buying *power*", "entry *level*", "cancel *culture*", "long
   *liquidations*", "exit *polls*"), not a verb.
2. **Link** - every verb (bar an "Entry:" label) must share a prose-free
   stretch of text with the instrument: in "sold out *show* at the NVDA
   conference" the prose word "show" cuts "sold" off from NVDA, and in
   "Cancel your *Netflix*, buy NFLX" the cancel is not about NFLX.  Line
   breaks do not cut (multi-line alert cards put the symbol and the verb on
   different lines).
3. **Amount** - the number of prose words, which the parser compares with a
   small budget: a signal is mostly vocabulary, a sentence is mostly prose.
   Two things weigh like a prose word: an idiom built on a trading word
   ("long story", "exit strategy", see ``NOUN_USE_GROUPS``) and a prose word
   right after the instrument, which then only qualifies a noun ("out of
   TSLA *jokes*", "the NVDA *conference*").  Prose in the instruction
   clause counts against the budget; prose in other clauses is commentary
   ("Exit AAPL now, thesis broken"), tolerated when the instruction is clean.

All of it is one pass over the words the verb search walks anyway, plus a
set lookup per word; a message without any prose word (most signals, found
by one set difference in :func:`maybe_prose`) skips the bookkeeping.
"""

from __future__ import annotations

import re
from bisect import bisect_left

from backend.signals.numbers import ROLE_WORDS
from backend.signals.vocab import NOUN_USE_GROUPS, SUBJECT_VERB, VERB_LEADS, VERBS

# Words that may sit between a verb and its instrument in a real signal and
# that do not count as prose: determiners, pronouns, prepositions, the
# price/size/option/crypto vocabulary, alert headers and the interjections
# signal channels use.  Anything else is prose.
LINK = frozenset("""
    a an the this that these those my our your some more all any rest remaining remainder another other others
    half full entire whole few couple bit little each both one
    of on in into at for to from with by near around about approx approximately between via per off onto
    up down out
    i i'm im we we're me us it you ya guys team fam folks
    and or then also plus &
    here now today right just quick quickly asap immediately only officially finally partially fully
    entirely completely again already instantly
    position positions pos trade trades order orders alert alerts signal signals setup setups idea ideas
    play plays swing swings scalp scalps scalping daytrade daytrading day lotto lottos starter runner runners
    stake holdings bag bags core size sizing share shares contract contracts coin coins unit units lot lots
    stock stocks token tokens pair pairs spot perp perps futures margin cross isolated iso leverage lev
    price prices entry entries limit lmt market mkt cmp zone zones area areas level levels range ish avg
    average fill region worth notional strength weakness dollars bucks
    account acct equity portfolio port capital balance bankroll
    sl stop stops stoploss loss losses tp tps pt pts target targets tgt tgts take profit profits gain gains
    risk reward rr
    call calls put puts exp expiry expiration dte 0dte weekly weeklies monthly monthlies leaps strike strikes
    premium
    usd usdt usdc busd long longs short shorts
    new update updates note vip premium free flash quick
    direction side coin pair symbol ticker asset type exchange binance bybit okx kucoin bitget mexc
    timeframe tf
    ok okay alright boom nice done small tight wide hard mental soft first second third final last partial
    partials breakeven be even break
    open opening premarket eod am pm
    jan feb mar apr may jun jul aug sep sept oct nov dec january february march april june july august
    september october november december
""".split()) | VERB_LEADS | ROLE_WORDS

# Noun uses that name the trader's own position ("closing my TSLA short") are
# signal vocabulary; every other noun use ("long story", "exit strategy",
# "sell-off") is an idiom of prose and counts as a prose word.
_POSITION_NOUN = re.compile(r"(?:my|the|your|our|their|his|her|this|that)\s+(?:Ω\s+)?(?:long|short)")
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def _spaces(m: re.Match[str]) -> str:
    return " " * (m.end() - m.start())


def maybe_prose(words: set[str], symbol_text: str) -> bool:
    """Cheap pre-test on the message's word set: could any word be prose?

    Most signals have none, and then :func:`read_verbs` can skip the
    per-word classification.  ``symbol_text`` is the lower-case text of the
    instrument's own spans (``$aapl``, ``#btc/usdt``): its words are not prose.
    """
    for word in words - LINK:
        if len(word) > 1 and word[0].isalpha() and not word[-1].isdigit() and word not in symbol_text:
            return True
    return False


# What :func:`read_verbs` returns (a plain tuple: it is built once per message on
# the hot path): the categories of the verbs that survived the adjacency rule,
# whether they are linked to the instrument, the prose weight inside the
# instruction clause, and the prose weight of the other clauses (commentary:
# "Closing TSLA here, momentum fading").
Reading = tuple[set[str], bool, int, int]


def read_verbs(work: str, anchors: list[int], words: set[str], prose_possible: bool = True) -> Reading:
    """Read the verbs of ``work`` (lower case, symbol replaced by ``Ω``) and weigh its prose.

    ``anchors`` are the offsets of the ``Ω`` placeholders, ``words`` the
    message's word set (:func:`~backend.signals.vocab.words_of`).  The
    *instruction clause* runs from a linked verb to its instrument, widened
    to the clause boundaries around them (``,`` ``;`` ``.`` ``!`` ``|``
    brackets, `` - `` and line breaks); prose elsewhere is commentary, which
    signals do carry ("Sell half NVDA, let the rest run").
    ``prose_possible=False`` (see :func:`maybe_prose`) skips the per-word
    prose bookkeeping.

    The big verb alternation is only tried at words that can start a verb
    (:data:`~backend.signals.vocab.VERB_LEADS`): every match starts at such
    a word, and skipping the rest makes this ~2x faster.
    """
    weights: list[int] = []   # positions of prose words, idioms and symbol-qualified nouns
    for triggers, regex in NOUN_USE_GROUPS:
        if not triggers.isdisjoint(words) and regex.search(work):
            weights += [m.start() for m in regex.finditer(work) if not _POSITION_NOUN.fullmatch(m.group())]
            work = regex.sub(_spaces, work)
    if SUBJECT_VERB.search(work):
        weights += [m.start() for m in SUBJECT_VERB.finditer(work)]
        work = SUBJECT_VERB.sub(_spaces, work)
    if not prose_possible:
        cats = _verbs_only(work)
        return cats, bool(cats and anchors), len(weights), 0
    verbs: list[tuple[int, str]] = []   # (start, category) of the verbs kept so far
    prose: list[int] = []
    end = 0
    verb_end = -1   # end of the last verb, while the next word may still demote it
    chain = 0       # verbs joined by "/" ("long/short ratio", "entry/exit points") share that fate
    for m in _WORD.finditer(work):
        start = m.start()
        if start < end:
            continue
        word = m.group()
        if word in VERB_LEADS:
            vm = VERBS.match(work, start)
            if vm and vm.lastgroup:
                chain = chain + 1 if verb_end >= 0 and work[verb_end:start] == "/" else 1
                verbs.append((start, vm.lastgroup))
                end = verb_end = vm.end()
                continue
        if word in LINK or len(word) == 1 or not word[0].isalpha() or word[-1].isdigit():  # not prose
            verb_end = -1
            continue
        prose.append(start)
        weights.append(start)
        j = start - 1
        while j > 0 and work[j] == " ":
            j -= 1
        if j >= 0 and work[j] == "Ω":
            weights.append(start)  # "out of TSLA jokes", "NVDA conference": the symbol only qualifies a noun
        if verb_end >= 0 and not work[verb_end:start].strip(" "):
            del verbs[-chain:]  # "buying power", "entry level": a noun or an adjective, not a verb
        verb_end = -1
    cats = {cat for _, cat in verbs}
    if not verbs or not anchors:
        return cats, False, len(weights), 0
    if not prose:
        return cats, True, len(weights), 0
    # Every verb must be about the instrument: in "Cancel your Netflix, buy NFLX"
    # the cancel is not, and a message mixing such verbs is not one order.
    # (An "Entry:" label further down an alert card may be cut off by a
    # header line such as "Timeframe: 4H"; it decides nothing on its own.)
    segments = {bisect_left(prose, a): a for a in anchors}
    pair = None
    for v, cat in verbs:
        a = segments.get(bisect_left(prose, v))
        if a is not None:
            pair = pair or (min(v, a), max(v, a))
        elif cat != "weak":
            return cats, False, len(weights), 0
    if pair is None:
        return cats, False, len(weights), 0
    lo, hi = _clause(work, *pair)
    core = sum(lo <= w < hi for w in weights)
    return cats, True, core, len(weights) - core


_CLAUSE_BREAK = re.compile(r"[,;!|()\n]|\.(?!\d)|\s-\s")


def _clause(work: str, lo: int, hi: int) -> tuple[int, int]:
    """``[lo, hi)`` widened to the clause boundaries around it."""
    start, stop = 0, len(work)
    for m in _CLAUSE_BREAK.finditer(work):
        if m.end() <= lo:
            start = m.end()
        elif m.start() >= hi:
            stop = m.start()
            break
    return start, stop


def _verbs_only(work: str) -> set[str]:
    """:func:`read_verbs` for a message without prose: nothing can demote or cut off a verb."""
    cats: set[str] = set()
    end = 0
    for m in _WORD.finditer(work):
        start = m.start()
        if start >= end and m.group() in VERB_LEADS:
            vm = VERBS.match(work, start)
            if vm and vm.lastgroup:
                cats.add(vm.lastgroup)
                end = vm.end()
    return cats
