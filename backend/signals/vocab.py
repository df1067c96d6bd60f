"""The words that make a message a trade, and the words that veto it.

Everything here runs on the lower-case text in which the chosen symbol has
been replaced by the placeholder ``Ω`` (so phrases such as "out of Ω" can
require an instrument).

Two rules, in this order:

1. **Veto** (:func:`vetoed`): a message that questions, hedges, negates,
   recaps the past, announces, jokes, praises or reports news is chatter,
   whatever verbs it contains - "thinking about buying NVDA", "I'd never buy
   BTC", "was up 20% on NVDA yesterday", "TP1 hit".  A false positive becomes
   a real order, a miss costs nothing, so the list is deliberately broad.
2. **Verbs** (:data:`VERBS`): every trading verb found is reported with its
   category (:func:`backend.signals.grammar.read_verbs` finds them and
   keeps those that are instructions); :func:`classify_action` turns the set
   of categories into an action and side, returning None when they
   contradict each other.
"""

from __future__ import annotations

import re

VETO_WORDS = frozenset("""
    might maybe perhaps possibly probably likely considering consider thinking think thinks thought unsure
    watching watch watchlist watchlists radar eyeing looking looks seem seems could would should wish hope
    hoping if unless once whenever wait waiting plan planning planned gonna wanna want wants tempted
    interested prefer guess bet expect expecting predict i'd i'll we'll you'll you'd will shall ideally
    potential potentially tomorrow
    not never no don't dont didn't didnt won't wont can't cant cannot isn't wasn't aren't avoid nobody
    nothing neither nor
    yesterday ago earlier recap review was were had been gained returned banked result results performance
    winners streak ytd
    everyone everybody people they he she someone somebody anyone anybody whales retail news breaking
    reportedly report reports according rumor rumors rumour rumours analyst analysts upgrade upgraded
    downgrade downgraded rating insider insiders filing filings congress congressman congresswoman
    congressmen senator senators politician politicians billionaire billionaires ceo cfo director directors
    executive executives fund funds institution institutions institutional members holders berkshire
    buffett burry pelosi cathie ark musk saylor 13f
    reminder announcement announcing ama webinar livestream stream streaming giveaway discount promo
    subscribe signup welcome join joining holiday click video article blog podcast newsletter read lesson
    tutorial course education example hypothetical backtest backtested backtesting simulated ignore
    disregard typo correction
    congrats congratulations thanks ty gj feel feels feeling smh fml regret regrets regretting
    lol lmao rofl haha hahaha hahahaha jk kidding moon mooning lfg wagmi ngmi hodl hodling hands
    missed miss missing remember ready triggered filled fills
    spread spreads condor straddle strangle butterfly csp
    forever always usually rule rules until till soon someday eventually when lmk imo imho dca
    favorite favourite favorites favourites brother sister wife husband mom dad mum friend buddy cousin uncle
    boss grandma grandpa girlfriend boyfriend
""".split())
_VETO_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
# Veto phrases, each with the words of which at least one must be in the
# message for the phrase to match (see
# :func:`vetoed`).  Grouping by trigger word means a message runs only the
# few small regexes its own words can fire, instead of one big alternation
# tried at every position (5x cheaper, and adding a phrase costs nothing to
# messages that cannot contain it).
_PHRASES: tuple[tuple[str, str], ...] = (
    ("for", r"\bfor\s+instance\b"),
    ("entry", r"\bentry\s+(?:hit|reached)\b"),
    ("about", r"\babout\s+to\b"),
    ("eye", r"\beye\s+on\b"),
    ("look", r"\blook\s+at\b"),
    ("going", r"\bgoing\s+to\b"),
    ("stay", r"\bstay\s+(?:away|out)\b"),
    ("may", r"\bmay\b(?!\s*\d)"),
    ("last", r"\blast\s+(?:week|night|month|year|time|session|friday|monday|tuesday|wednesday|thursday)\b"),
    ("win", r"\bwin\s+rate\b"),
    ("back", r"\bback\s+in\b"),
    ("this", r"\bthis\s+(?:week|month)\b"),
    ("smart", r"\bsmart\s+money\b"),
    ("sign", r"\bsign\s+up\b"),
    ("check", r"\bcheck\s+out\b"),
    ("well", r"\bwell\s+done\b"),
    ("thank", r"\bthank\s+you\b"),
    ("paper", r"\bpaper\s+trad\w*"),
    ("cash", r"\bcash\s+secured\b"),
    ("covered", r"\bcovered\s+calls?\b"),
    ("too", r"\btoo\s+(?:early|late)\b"),
    ("my", r"\bmy\s+first\b"),
    ("market markets", r"\bmarkets?\s+(?:is\s+|are\s+)?closed\b"),
    ("link links", r"\blinks?\s+(?:in|below|above|here)\b"),
    ("great nice good perfect solid amazing awesome beautiful clean sick",
     r"\b(?:great|nice|good|perfect|solid|amazing|awesome|beautiful|clean|sick)\s+(?:calls?|trades?|entry|entries"
     r"|exits?|plays?|wins?)\b"),
    ("in", r"\bin\s+(?:19|20)\d\d\b"),
    # a position held, not an order: "we are long TSLA from 200", "still short SPY"
    ("are am i'm im we're still currently remain remaining stay staying",
     r"\b(?:are|am|i'm|im|we're|still|currently|remain|remaining|stay|staying)\s+"
     r"(?:long|short|holding|in|bullish|bearish)\b"),
    ("is", r"\bis\s+a\s+(?:\w+\s+)?(?:buy|sell|short)\b"),
    ("a", r"\ba\s+(?:good|great|strong|solid)\s+(?:buy|sell|short|long)\b"),
    # targets reached: status, not an order
    ("hit reached smashed achieved",
     r"\b(?:tp|pt|target)s?\s*\d?\s*(?:was\s+|got\s+)?(?:hit|reached|smashed|achieved)\b"),
    # stop-entry orders: not representable as one Signal
    ("stop", r"\b(?:(?:buy|sell)\s+stop|stop\s+limit)\b"),
    # a description, not an instruction: "Short TSLA is a crowded trade", "long AAPL is my favourite"
    # (a number may follow: "New stop on AAPL is 180")
    ("is are it's that's thats", r"\b(?:is|are|it's|that's|thats)\s+(?!(?:now|at|around|near|between|set)\b|[@$.\d])"),
    # habits and horizons: "stop buying TSLA", "next 3 weeks", "every friday"
    ("buying selling shorting longing adding chasing trading",
     r"\b(?:stop|quit|quitting|done|more)\s+(?:buying|selling|shorting|longing|adding|chasing|trading)\b"),
    ("day week month year", r"\b(?:a|per|each)\s+(?:day|week|month|year)\b"),
    # an order for later: "buy SPY at 9:45", "exit by 3pm" (a timestamp header is not preceded by "at")
    ("am pm at by before after until till around",
     r"\b(?:at|by|before|after|until|till|around)\s+\d{1,2}(?::\d\d\s*(?:[ap]m\b)?|\s*[ap]m\b)"),
    ("next", r"\bnext\s+(?:\d+\s+)?(?:weeks?|months?|years?|quarters?|time|cycle|session|few)\b"),
    ("every", r"\bevery\s+(?:single\s+)?(?:day|week|month|year|morning|paycheck|payday|dip|time|monday|tuesday"
              r"|wednesday|thursday|friday)\b"),
    # "Adding NVDA to the portfolio doc": a destination other than the position is a list, not an order
    ("add adds added adding", r"\badd(?:s|ed|ing)?\s+[$#]?[a-z][a-z0-9./-]*\s+to\s+(?:the|my|our|a|your)\s+"
                              r"(?!(?:position|pos|stake|holdings?|core|long|short|trade|bags?|size)\b)"),
    # questions without a question mark: an interrogative opening a sentence
    ("what why how who when where which is are do does did can any thoughts wdyt what's who's how's where's",
     r"(?:^|[.!\n])\s*(?:what|why|how|who|when|where|which|is|are|do|does|did|can|any|thoughts|wdyt)\b"),
)
_PHRASE_RES = {pattern: re.compile(pattern) for _, pattern in _PHRASES}
PHRASES_BY_WORD: dict[str, tuple[re.Pattern[str], ...]] = {}
for _words, _pattern in _PHRASES:
    for _w in _words.split():
        PHRASES_BY_WORD[_w] = PHRASES_BY_WORD.get(_w, ()) + (_PHRASE_RES[_pattern],)
_TRIGGERS = frozenset(PHRASES_BY_WORD)
_VETO_MARKS = ("?", "e.g.", "i.e.", "s&p")  # no word to trigger on: plain substring tests


def words_of(low: str) -> set[str]:
    """The set of words of a lower-case text (apostrophes kept: "don't")."""
    return set(_VETO_WORD.findall(low))


def vetoed(low: str, words: set[str]) -> bool:
    """True when the message is chatter whatever its verbs (see module docstring)."""
    if not VETO_WORDS.isdisjoint(words):
        return True
    for mark in _VETO_MARKS:
        if mark in low:
            return True
    for word in words & _TRIGGERS:
        for regex in PHRASES_BY_WORD[word]:
            if regex.search(low):
                return True
    return False


# Every alternative of VERBS starts with one of these words; a message with
# none of them cannot contain a trading verb (checked before any regex runs).
VERB_LEADS = frozenset("""
    cancel cancels cancelled canceled cancelling canceling void voided buy buying bought cover covering covered
    bto sell selling sold stc sto short shorting shorted go going trim trims trimmed trimming scale scaled
    scaling partial partials take took taking stopped sl stop stops s loss move moved moving raise raises
    raised raising lower lowered lowering tighten tightened tightening trail trailed trailing adjust adjusted
    adjusting update updates updated updating new be b breakeven break tp tps target targets close closing
    closed exit exits exiting exited i'm im we're all get getting got cash cashed cashing out lock locked
    locking long entry entries enter entering entered re reentry add adding added
""".split())


_HOLDER = r"(?:(?:the|my|our|all|remaining|rest\s+of|of|half|some|more)\s+){0,3}"
VERBS = re.compile(
    r"\b(?:(?P<cancel>cancel(?:led|ed|ling|ing|s)?|void(?:ed)?)"
    r"|(?P<btc>buy(?:ing)?\s+to\s+close|cover(?:ing|ed)?)"
    r"|(?P<bto>buy(?:ing)?\s+to\s+open|bto)"
    r"|(?P<stc>sell(?:ing)?\s+to\s+close|stc)"
    r"|(?P<sto>sell(?:ing)?\s+to\s+open|sto|(?:sell|selling|sold)\s+(?:Ω\s+)?short|short(?:ing|ed)"
    r"|go(?:ing)?\s+short)"
    r"|(?P<partial>trim(?:s|med|ming)?|scal(?:e|ed|ing)\s+out|partials?|(?:take|took|taking)\s+"
    r"(?:some|half|\d+(?:\.\d+)?\s*%|[123]/[234]|a\s+(?:third|quarter))\s+off)"
    r"|(?P<stopped>stopped(?:\s+out)?|(?:sl|stop(?:\s*loss)?)\s+(?:was\s+)?hit)"
    r"|(?P<profit>(?:took|taking|take)\s+(?:some\s+)?profits?\b(?!\s*(?:\d|:|=|-|@|at\b|\(|targets?|levels?|zones?)))"
    r"|(?P<modify>mov(?:e|ed|ing)\s+(?:my\s+|the\s+|our\s+|your\s+)?(?:stops?|sl|s/l|stop\s*loss|tps?|targets?)"
    r"|mov(?:e|ed|ing)\s+(?:\w+\s+){0,2}?to\s+(?:breakeven|break[\s-]even|b/?e)"
    r"|(?:stops?|sl|s/l|stop\s*loss)\s+(?:(?:moved|raised|lowered|adjusted|updated|trailed|is)\s+)?(?:now|to)"
    r"|(?:stops?|sl|s/l|stop\s*loss)\s*:?\s*\$?[\d.,]+k?\s+(?:(?:on|for)\s+(?:the\s+|my\s+)?Ω\s+)?now"
    r"|(?:stops?|sl|s/l|stop\s*loss)\s+(?:on|for)\s+(?:the\s+|my\s+)?Ω\s+(?:(?:is|moved|raised)\s+)?(?:now|to)"
    r"|(?:stops?|sl|s/l|stop\s*loss)\s+(?:to\s+|at\s+|@\s*)?(?:be|b/e|breakeven|break[\s-]even)"
    r"|(?:be|b/e|breakeven|break[\s-]even)\s+(?:stops?|sl)|(?:stops?|sl|s/l|stop\s*loss)\s+(?:to|at)\s+entry"
    r"|(?:raise[sd]?|raising|lower(?:ed|ing)?|tighten(?:ed|ing)?|trail(?:ed|ing)?|adjust(?:ed|ing)?"
    r"|update[sd]?|updating)\s+(?:my\s+|the\s+|your\s+|our\s+)?(?:stops?|sl|s/l|stop\s*loss|tps?|targets?)"
    r"|new\s+(?:stops?|sl|s/l|stop\s*loss|tps?|targets?)"
    r"|(?:tps?|targets?)\s+(?:(?:moved|raised|updated)\s+)?(?:now|to))"
    r"|(?P<close>sold|close|closing|closed|exit(?:ing|ed|s)?|(?:i'm|im|we're|all)\s+out"
    r"|(?:get|getting|got|cash(?:ed|ing)?)\s+out|out\s+of\s+" + _HOLDER + r"(?:Ω|trades?|positions?|it)"
    r"|lock(?:ed|ing)?\s+in\s+(?:profits?|gains))"
    r"|(?P<sell>sell(?:ing)?)"
    r"|(?P<buy>buy(?:ing)?|bought)"
    r"|(?P<long>long|going\s+long|go\s+long)"
    r"|(?P<short>short)"
    r"|(?P<weak>entry|entries|enter(?:ing|ed)?|re-?entry|add(?:ing|ed)?))\b"
)
# Noun uses that must not count as verbs: "the close", "daily close",
# "long term", "short squeeze", "sell-off", "buy signal", "exit strategy".
# Grouped by the words one of which each group needs (as the veto phrases):
# a message only runs the groups its words can fire.
NOUN_USE_GROUPS: tuple[tuple[frozenset[str], re.Pattern[str]], ...] = tuple(
    (frozenset(words.split()), re.compile(pattern)) for words, pattern in (
        ("close closing closed closes",
         r"\b(?:the|a|at|on|after|until|till|pre|post|daily|weekly|monthly|hourly|candle|market|into|before|near"
         r"|eod|by)\s+(?:close|closing)\b"
         r"|\b(?:close[ds]?|closing)\s+(?:above|below|under|over|to|prices?|bell|thoughts|remarks|words)\b"),
        ("long short",
         r"\b(?:long|short)\s+(?:wicks?|candles?|covering)\b"
         r"|\b(?:my|the|your|our|their|his|her|this|that)\s+(?:Ω\s+)?(?:long|short)\b"
         r"|\b(?:long|short)[\s-](?:term|time|terms?|days?|weeks?|weekend|story|way|wait|run|haul|squeeze"
         r"|interest|float|sellers?|list|position\s+in\s+general)\b|\b(?:as|so|how|in)\s+(?:long|short)\b"),
        ("entry entries exit exits",
         r"\b(?:my|the|your|our|their|his|her|avg|average)\s+(?:Ω\s+)?(?:entry|entries|exit|exits)\b"
         r"|\bexit\s+(?:strategy|plan|point|liquidity)\b"),
        ("sell sold selling buy selloff selloffs",
         r"\bsell\s+(?:targets?|zones?|levels?|areas?)\b|\bsell[\s-]?offs?\b|\b(?:sold|selling)\s+off\b"
         r"|\b(?:buy|sell)\s+(?:signals?(?!\s*[:|-])|side|pressure|rating|wall|volume)\b"),
    )
)
# The instrument as the subject of a verb - "SPY closed green", "AAPL sold 50M
# iPhones", "NVDA bought back stock" - is a description, not an order.  (Its
# own regex: starting with the literal placeholder it is found by a fast
# substring scan, while as one more branch of a noun-use regex it cost every message.)
SUBJECT_VERB = re.compile(r"Ω\s+(?:closed|closes|sold|sells|bought|buys|added|adds|covered|shorted)\b")

# "Cathie Wood bought TSLA", "Berkshire sold PARA": a named third party's
# trade is news.  The trader's own messages start with the verb or with one
# of these words ("Just bought", "We sold").
_SUBJECT = re.compile(
    r"(?:^|[.!\n,;:]\s*)((?:[A-Z][a-z]+\s+){1,3})(?:just\s+|also\s+|has\s+|have\s+)?"
    r"(?:bought|sold|shorted|added|closed|exited|trimmed|covered|took|dumped|loaded)\b"
)
_OWN_LEAD = frozenset("""
    Just Finally Also Officially Partially Fully Today Quick Update Alert Signal Trade Swing Scalp Options
    Crypto Stocks Ok Okay Alright Done Boom We Have Has Already Now Then And Small Starter Long Short
    Day Alerts Signals Entry Position Stock Futures Lotto Flash New Partial
""".split())


def third_party(orig: str) -> bool:
    """True when a trade verb's subject is a capitalised name other than the author."""
    for m in _SUBJECT.finditer(orig):
        if any(word not in _OWN_LEAD for word in m.group(1).split()):
            return True
    return False


_OPEN_LONG = {"bto", "buy", "long"}
_OPEN_SHORT = {"sto", "short"}
_STRONG_OPEN = {"bto", "buy", "sto"}
_CLOSING = {"btc", "stc", "partial", "stopped", "profit", "close", "sell"}


def classify_action(cats: set[str]) -> tuple[str, str | None] | None:
    """``(action, side)`` from verb categories, or None when absent/contradictory.

    * cancel wins ("cancel the AAPL buy order" names the order it cancels);
    * a closing verb with a strong opening verb ("sold AMD, bought NVDA") is
      ambiguous; with "long"/"short"/"entry" those are nouns ("closing my
      TSLA short"), so it is a close;
    * a stop/target move with a strong opening verb is an opening signal
      whose stop happens to be phrased "SL to 180"; otherwise a modify;
    * otherwise an opening verb opens: short words give ``sell``, long
      words ``buy``, both together are ambiguous; "entry"/"adding" alone
      default to ``buy`` as the contract says.
    """
    if "cancel" in cats:
        return "cancel", None
    if cats & _CLOSING:
        if cats & _STRONG_OPEN:
            return None
        return "close", None
    if "modify" in cats:
        if not cats & _STRONG_OPEN:
            return "modify", None
    longs, shorts = bool(cats & _OPEN_LONG), bool(cats & _OPEN_SHORT)
    if longs and shorts:
        return None
    if shorts:
        return "open", "sell"
    if longs or "weak" in cats:
        return "open", "buy"
    return None
