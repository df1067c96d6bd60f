"""Recognise and normalise the instrument a message (or alert) talks about.

Output forms (the contract): stocks/ETFs upper case without ``$``
(``AAPL``, ``BRK.B``); crypto as ``BASE/QUOTE`` (``BTC/USDT``); a major
coin named without a quote currency is quoted in USD (``BTC`` -> ``BTC/USD``).

Why the rules are strict:

* A plain word counts as a ticker only when written in UPPER CASE and not
  in :data:`STOPWORDS` (trading jargon and the English words that show up in
  all-caps messages).  ``Market``, ``Thursday`` or ``buy`` are never tickers,
  and a message with two candidate tickers is rejected as ambiguous by the
  parser, so an unknown bit of jargon costs a miss, never a wrong symbol.
* A cashtag (``$F``, ``$NOW``) is explicit, so it may be one letter or a
  stop word.
* Concatenated pairs (``BTCUSDT``) are split on the longest known quote;
  with the stable-coin quotes any base is accepted, with USD/EUR/BTC/ETH only
  a known coin (so a stock ending in "USD" is not turned into a pair).
* Forex and metals (``EUR/USD``, ``XAUUSD``) are not crypto and are not
  supported: they yield no candidate at all, so the message is ignored.
"""

from __future__ import annotations

import re
from functools import lru_cache

QUOTES = ("USDT", "USDC", "BUSD", "USD", "BTC", "ETH", "EUR")
_STABLE_QUOTES = frozenset({"USDT", "USDC", "BUSD"})
MAJOR_COINS = frozenset("""
    BTC ETH SOL XRP ADA DOGE LTC AVAX LINK DOT BNB MATIC POL SHIB TRX ATOM BCH XLM PEPE
    SUI APT ARB FIL HBAR ICP INJ AAVE XMR ALGO FTM WIF BONK RNDR TIA SEI TAO ENA WLD
    JUP STX IMX
""".split())
# Bare coins that are also accepted in lower case ("buy 0.5 btc"); "link",
# "dot", "sui" ... are ordinary words in lower case, so they are not.
_LOWER_COINS = frozenset({"btc", "eth", "sol", "xrp", "doge", "ltc", "avax", "bnb", "shib", "pepe", "ada"})
_NOT_CRYPTO = frozenset({"USD", "EUR", "GBP", "JPY", "AUD", "CAD", "CHF", "NZD", "CNH", "MXN", "XAU", "XAG",
                         "USDT", "USDC", "BUSD"})

STOPWORDS = frozenset("""
    BUY BUYS BOUGHT LONG LONGS SHORT SELL SELLS SOLD BTO STO STC EXIT EXITS CLOSE TRIM CUT ADD ADDED
    ENTRY ENTER STOP STOPS SL TP TPS PT PTS TGT TGTS BE LOSS TAKE TOOK LIMIT LMT MKT CMP MARKET
    VOID OUT ALL HALF SOME MORE LESS SIZE RISK QTY PRICE ZONE AREA LEVEL SCALE MOVE MOVED RAISE NEW
    CALL CALLS PUT PUTS EXP DTE ODTE OTM ITM ATM IV DELTA THETA GAMMA VEGA LEAPS
    CROSS LEV ISO SPOT PERP PERPS FUTS SWING SCALP DAY TRADE TRADES ALERT ALRT SETUP IDEA NOTE
    NFA DYOR EOD EOW EOM ATH ATL IMO IMHO FOMO YOLO HODL DCA BTFD BTD TA FA DD ROI PNL PL RR TF HTF LTF
    CPI PPI FOMC FED GDP NFP PCE ECB BOE BOJ JOLTS ISM PMI AMA VIP PM AM ET EST EDT PST PDT CT CST UTC GMT
    OK OKAY LOL LMAO ROFL GM GN GG TY THX PLS PLZ FYI BTW TBH NGL IDK RN DM DMS ASAP TLDR
    RSI MACD EMA SMA MA VWAP ATR OBV BB FIB OB FVG BOS MSS CHOCH SR SMC ICT POI HH HL LH LL
    USD USDT USDC BUSD EUR GBP JPY CAD AUD CHF ETF ETFS IPO CEO CFO SEC US USA UK EU NYSE AMEX OTC
    AND OR THE A AN IN ON OF TO FOR MY OUR YOUR IS IT BE GO SO UP DOWN NO YES NOT NOW HERE TODAY
    AT BY AS IF THEN THAN THIS THAT WITH FROM INTO OFF OVER UNDER ABOVE BELOW NEAR AGAIN JUST ONLY ALSO
    I ME WE US YOU HE SHE THEY IM ILL ID IVE AM ARE WAS WERE BEEN HAS HAD HAVE DO DOES DID DONE CAN
    WILL MAY GET GOT GOING GONE LETS LET SEE LOOK WAIT HOLD HOLDS KEEP SET SETS USE USING PLAY
    BIG HUGE NICE GOOD GREAT BEST BAD HOT NEXT LAST WEEK MONTH YEAR TIME OPEN HIGH LOW MID AVG
    WIN WINS WON GAIN GAINS RED GREEN BULL BEAR PUMP DUMP MOON RIP FREE LIVE NEWS INFO TEST ONE TWO
    CHART DAILY PROFIT RUN RUNS RUNNER FILL FILLS HIT HITS TRAIL WHY HOW WHO WHAT
    WHEN WHERE ANY EVERY EACH BOTH ALOT VERY REAL SAFE HARD EASY FAST SLOW FULL PART RE NB PS CC
    STOCK SHARE WATCH BREAK EVEN MAX MIN PER NET TOTAL CASH DIP VS ETC TBD QTR IRA
    LOTTO LOTTOS PLAYS WEEKLY WEEKLIES FLASH SIGNAL SIGNALS UPDATE STARTER RUNNERS TARGET TARGETS SHARES
    JAN FEB MAR APR JUN JUL AUG SEP SEPT OCT NOV DEC MON TUE TUES WED THU THUR THURS FRI SAT SUN
""".split())

_PLAIN = re.compile(r"[A-Z]{2,5}(?:\.[A-Z]{1,2})?")
_CASH = re.compile(r"[A-Z]{1,5}(?:\.[A-Z]{1,2})?")
_BASE = re.compile(r"[A-Z0-9]{2,10}")
# A word-ish token that may be a symbol: cashtag, hashtag, pair with / or -,
# ticker with a class suffix (BRK.B) or a perp suffix (BTCUSDT.P).
TOKEN = re.compile(r"(?<![A-Za-z0-9])[$#]?[A-Za-z][A-Za-z0-9]*(?:[./-][A-Za-z0-9]+){0,2}")
# The same tokens, but only those that can be symbols: a cashtag/hashtag, an
# upper-case start not followed by lower case ("AAPL", not "Market"), or a
# lower-case coin ("btc", "eth/usdt").  Scanning prose words costs time.
_CANDIDATE = re.compile(
    r"(?<![A-Za-z0-9])(?:[$#][A-Za-z]|[A-Z](?![a-z])|(?:btc|eth|sol|xrp|doge|ltc|avax|bnb|shib|pepe|ada))"
    r"[A-Za-z0-9]*(?:[./-][A-Za-z0-9]+){0,2}"
)


def _pair(base: str, quote: str) -> str | None:
    if quote not in QUOTES or base in _NOT_CRYPTO or not _BASE.fullmatch(base) or base.isdigit():
        return None
    return f"{base}/{quote}"


def _split_concatenated(upper: str) -> str | None:
    """``BTCUSDT`` -> ``BTC/USDT``; ``ETHBTC`` -> ``ETH/BTC``; ``AAPL`` -> None."""
    for quote in QUOTES:
        if upper.endswith(quote) and len(upper) - len(quote) >= 2:
            base = upper[: -len(quote)]
            if quote in _STABLE_QUOTES or base in MAJOR_COINS:
                return _pair(base, quote)
            return None
    return None


@lru_cache(maxsize=4096)
def classify(token: str) -> tuple[str, str, bool] | None:
    """One token -> ``(symbol, asset_class, is_bare_coin)`` or None.

    ``is_bare_coin`` marks ``BTC`` named alone, so that it can be merged
    with a pair mentioning the same coin (``#BTC/USDT ... 0.5 BTC``).
    """
    prefix = token[0] if token[0] in "$#" else ""
    body = token[len(prefix):]
    for suffix in (".P", ".p", "PERP", "perp"):  # TradingView / exchange perpetual suffixes
        if body.endswith(suffix) and len(body) > len(suffix) + 2:
            body = body[: -len(suffix)]
            break
    upper = body.upper()
    explicit = bool(prefix)
    if not (explicit or body.isupper() or body.lower() == body):
        return None  # Mixed case ("Market", "Aapl") is prose, not a ticker
    for sep in "/-":
        if sep in upper:
            parts = upper.split(sep)
            if len(parts) != 2:
                return None
            base, quote = parts
            pair = _pair(base, quote)
            if pair and (explicit or body.isupper() or base.lower() in _LOWER_COINS):
                return pair, "crypto", False
            if sep == "-" and body.isupper() and _CASH.fullmatch(f"{base}.{quote}") and len(quote) == 1:
                return f"{base}.{quote}", "stock", False  # BRK-B
            return None
    if not body.isupper() and not explicit:  # lower case: only unambiguous coins and pairs
        if body in _LOWER_COINS:
            return f"{upper}/USD", "crypto", True
        pair = _split_concatenated(upper)
        return (pair, "crypto", False) if pair and pair.split("/")[0].lower() in _LOWER_COINS else None
    if upper in MAJOR_COINS:
        return f"{upper}/USD", "crypto", True
    pair = _split_concatenated(upper)
    if pair:
        return pair, "crypto", False
    if prefix == "$":
        return (upper, "stock", False) if _CASH.fullmatch(upper) else None
    if _PLAIN.fullmatch(upper) and upper not in STOPWORDS and body.isupper():
        return upper, "stock", False
    return None


# A one-letter ticker without "$" (F, T, C, X ...) only where nothing else
# fits: after an order verb or "shares (of)" and right before its price.
_LETTER_BEFORE = re.compile(
    r"(?:\b(?:shares?|units?)\s+(?:of\s+)?|\b(?:buy|buying|bought|sell|selling|sold|short|shorting|long|bto|sto|stc)"
    r"\s+(?:\d+\s+)?)$", re.IGNORECASE)
_LETTER_AFTER = re.compile(r"\s*(?:@|at\s|\$?\d)", re.IGNORECASE)


def _letter_ticker(text: str, start: int, end: int) -> bool:
    return bool(_LETTER_AFTER.match(text, end) and _LETTER_BEFORE.search(text[max(0, start - 30):start]))


def find_symbols(text: str) -> tuple[dict[str, str], list[tuple[int, int, str]]]:
    """All candidate symbols of ``text`` (original case).

    Returns ``({symbol: asset_class}, [(start, end, symbol), ...])``; bare
    coins already covered by a pair (as base or quote) are dropped.
    """
    found: dict[str, str] = {}
    spans: list[tuple[int, int, str]] = []
    bare: list[tuple[int, int, str]] = []
    for m in _CANDIDATE.finditer(text):
        token = m.group()
        hit = classify(token)
        if hit is None:
            if len(token) == 1 and token not in "AI" and _letter_ticker(text, m.start(), m.end()):
                hit = (token, "stock", False)
            else:
                continue
        symbol, asset_class, is_bare = hit
        (bare if is_bare else spans).append((m.start(), m.end(), symbol))
        if not is_bare:
            found[symbol] = asset_class
    pair_coins = {part for sym in found if "/" in sym for part in sym.split("/")}
    for start, end, symbol in bare:
        coin = symbol.split("/")[0]
        if coin in pair_coins:
            owner = next(s for s in found if "/" in s and coin in s.split("/"))
            spans.append((start, end, owner))
        else:
            found[symbol] = "crypto"
            spans.append((start, end, symbol))
    return found, spans


def normalize_ticker(raw: str) -> tuple[str, str] | None:
    """A TradingView ``ticker`` (``AAPL``, ``BINANCE:BTCUSDT``, ``BTCUSDT.P``) -> (symbol, asset_class)."""
    raw = raw.strip()
    if ":" in raw:
        raw = raw.rsplit(":", 1)[1]
    if not raw or len(raw) > 30:
        return None
    upper = raw.upper()
    m = TOKEN.fullmatch(upper)
    if m is None:
        return None
    hit = classify(upper)
    if hit is None and _CASH.fullmatch(upper) and upper not in _NOT_CRYPTO:
        hit = (upper, "stock", False)  # an explicit ticker field may be "ALL", "NOW" or "F"
    return (hit[0], hit[1]) if hit else None
