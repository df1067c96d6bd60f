"""The contract's vocabulary, in the styles of real signal channels.

A held-out corpus measures the parser, so these cases are written the way
messages are written (case, markdown, emoji, cashtags, line breaks), not
the way the code is written.  Most weight is on chatter: a chatter message
parsed as a trade is the worst possible outcome.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal as D

import pytest

from backend.signals import Signal, parse_signal
from backend.signals.parser import _parse

NOW = datetime(2026, 11, 1, tzinfo=timezone.utc)


def parse(text: str) -> Signal | None:
    signal = _parse(text, NOW)
    assert parse_signal(text, now=NOW) == signal
    return signal


def check(text: str, **expect) -> None:
    signal = parse(text)
    assert signal is not None, f"missed: {text!r}"
    for name, value in expect.items():
        assert getattr(signal, name) == value, f"{name}: {getattr(signal, name)!r} != {value!r} in {text!r}"


# --- opening ----------------------------------------------------------------------
OPENS = [
    ("BUY TSLA @ 242.10 SL 235 TP 255", dict(action="open", side="buy", symbol="TSLA", order_type="limit",
                                              entry_prices=[D("242.1")], stop_loss=D(235), take_profits=[D(255)])),
    ("Buying AAPL here 185.5, stop 180", dict(side="buy", entry_prices=[D("185.5")], stop_loss=D(180))),
    ("Bought NVDA at 120.40", dict(action="open", side="buy", symbol="NVDA", entry_prices=[D("120.4")])),
    ("Long $AMD entry 120-122, SL 115, TP 130/135/140",
     dict(side="buy", entry_prices=[D(120), D(122)], take_profits=[D(130), D(135), D(140)])),
    ("Going long GOOGL at 140, stop 136, target 150", dict(side="buy", symbol="GOOGL", take_profits=[D(150)])),
    ("🟢 **BUY** $MSFT @ 410.25 | SL 400 | TP 425", dict(symbol="MSFT", entry_prices=[D("410.25")])),
    ("$AAPL - BUY - 185.50 - SL 180 - TP 195", dict(entry_prices=[D("185.5")], stop_loss=D(180))),
    ("Entry AAPL 185", dict(action="open", side="buy", entry_prices=[D(185)])),
    ("Entering MSFT 410-412 SL 400 TP 430", dict(side="buy", entry_prices=[D(410), D(412)])),
    ("Adding to NVDA @ 118.50", dict(action="open", side="buy", entry_prices=[D("118.5")])),
    ("Buy GOOGL here", dict(order_type="market", entry_prices=[])),
    ("Long NVDA 10 shares at market", dict(order_type="market", quantity=D(10), quantity_unit="units")),
    ("buy AAPL @ mkt", dict(order_type="market", entry_prices=[])),
    ("Buy $1000 of NVDA at market", dict(quantity=D(1000), quantity_unit="usd", order_type="market")),
    ("BUY AAPL limit 12.30 sl 11.80", dict(order_type="limit", entry_prices=[D("12.3")], stop_loss=D("11.8"))),
    ("Buy AAPL @ 185, 2% of account, TP1 190 TP2 195",
     dict(quantity=D(2), quantity_unit="percent_equity", take_profits=[D(190), D(195)])),
    ("BUY BRK.B @ 410", dict(symbol="BRK.B", asset_class="stock")),
    ("buy $F @ 12.30", dict(symbol="F")),
    ("BUY XOM at 65.5 SL 62 Target: 71", dict(entry_prices=[D("65.5")], take_profits=[D(71)])),
    ("Day Trade Alert: Bought AMD @ 120", dict(action="open", symbol="AMD")),
    # shorts
    ("Short $TSLA 260-262 stop 270 targets 250, 240",
     dict(side="sell", entry_prices=[D(260), D(262)], stop_loss=D(270), take_profits=[D(250), D(240)])),
    ("Shorting QQQ here 400 stop 405", dict(action="open", side="sell", entry_prices=[D(400)])),
    ("Sell short NFLX @ 450 SL 465", dict(action="open", side="sell", symbol="NFLX")),
    ("SELL BTCUSDT @ 42000 SL 43000 TP 40000", dict(action="open", side="sell", symbol="BTC/USDT")),
]


@pytest.mark.parametrize("text,expect", OPENS, ids=[t for t, _ in OPENS])
def test_opening_signals(text, expect):
    check(text, **expect)


# --- crypto -----------------------------------------------------------------------
CRYPTO = [
    ("SHORT BTCUSDT\nEntry: 43000\nSL: 44000\nTP1: 42000\nTP2: 41000\nLeverage 20x",
     dict(side="sell", symbol="BTC/USDT", asset_class="crypto", entry_prices=[D(43000)], stop_loss=D(44000),
          take_profits=[D(42000), D(41000)], leverage=D(20))),
    ("#ETHUSDT LONG\nEntry zone: 3150 - 3200\nTake Profit 1: 3300\nTake Profit 2: 3400\nStop: 3050",
     dict(symbol="ETH/USDT", entry_prices=[D(3150), D(3200)], take_profits=[D(3300), D(3400)], stop_loss=D(3050))),
    ("BTC/USDT Long\nEntry: 42,000 - 42,500\nTargets:\n1) 43,000\n2) 44,000\nStop Loss: 41,000\nLeverage: Cross 5x-10x",
     dict(entry_prices=[D(42000), D(42500)], take_profits=[D(43000), D(44000)], leverage=D(5))),
    ("Buy 0.5 BTC", dict(symbol="BTC/USD", asset_class="crypto", quantity=D("0.5"), quantity_unit="units")),
    ("Long ETH 5x", dict(symbol="ETH/USD", leverage=D(5), order_type="market")),
    ("SOL-USDT long entry 95.5 sl 92 tp 100 105 110", dict(symbol="SOL/USDT", take_profits=[D(100), D(105), D(110)])),
    ("LONG $BTC Entry 42k SL 41k TP 44k lev 10x", dict(entry_prices=[D(42000)], stop_loss=D(41000), leverage=D(10))),
    ("ETHBTC buy 0.052 sl 0.05", dict(symbol="ETH/BTC", entry_prices=[D("0.052")])),
    ("#ADA/USDT\nBuy zone: 0.45-0.47\nSell targets: 0.50, 0.55\nStop: 0.42",
     dict(side="buy", entry_prices=[D("0.45"), D("0.47")], take_profits=[D("0.5"), D("0.55")])),
    ("$XRP\nTarget 1: 0.50\nTarget 2: 0.55\nStop-loss: 0.42\nEntry 0.45",
     dict(take_profits=[D("0.5"), D("0.55")], stop_loss=D("0.42"), entry_prices=[D("0.45")])),
    ("Risk 0.5% on this one: long ETH/USDT 3200 sl 3100", dict(quantity=D("0.5"), quantity_unit="percent_equity")),
    ("Long XRP/USDT entry 1.02 sl: 0.98 lev 5x", dict(stop_loss=D("0.98"), leverage=D(5))),
]


@pytest.mark.parametrize("text,expect", CRYPTO, ids=[t for t, _ in CRYPTO])
def test_crypto_signals(text, expect):
    check(text, **expect)


# --- options ----------------------------------------------------------------------
OPTIONS = [
    ("BTO NVDA 500C 12/20 @ 5.40", dict(symbol="NVDA", asset_class="option", option_right="call", strike=D(500),
                                        expiry=date(2026, 12, 20), entry_prices=[D("5.4")])),
    ("Bought SPY 11/17 445p @ 1.05", dict(option_right="put", strike=D(445), expiry=date(2026, 11, 17))),
    ("BTO 3 AMZN 150c 11/29 @ 2.15", dict(quantity=D(3), quantity_unit="units")),
    ("Bought 10 SPY 450 calls 11/17 @ .85", dict(strike=D(450), entry_prices=[D("0.85")], quantity=D(10))),
    ("BTO QQQ Jan 16 2027 500 calls @ 25.30", dict(expiry=date(2027, 1, 16), strike=D(500))),
    ("BTO IWM Jan 16 190C @ 3", dict(expiry=date(2027, 1, 16))),  # no year: the next Jan 16
    ("BTO TSLA 12/19/2026 250C @ 12.50 PT 20.00 SL 8.00", dict(take_profits=[D(20)], stop_loss=D(8))),
    ("STO SPY 430P 11/21 @ 1.50", dict(action="open", side="sell", option_right="put")),
    ("STC NVDA 500C 12/20 @ 8.10", dict(action="close", side=None, order_type="limit", entry_prices=[D("8.1")])),
    ("STC half SPY 450C 11/17 @ 2.40", dict(quantity=D(50), quantity_unit="percent_position")),
    ("SPY 0DTE 450C BTO @ 1.10", dict(expiry=date(2026, 11, 1))),
    ("BTO 5 contracts SPY 450 call 11/17 @ 1.20", dict(quantity=D(5), quantity_unit="units", strike=D(450))),
    ("BTO SPY 450C 1/2 @ 1.20", dict(expiry=date(2027, 1, 2), quantity=None)),  # a date, not "half"
    ("STC 1/2 SPY 450C 11/17 @ 2.10", dict(action="close", quantity=D(50), expiry=date(2026, 11, 17))),
]


@pytest.mark.parametrize("text,expect", OPTIONS, ids=[t for t, _ in OPTIONS])
def test_option_signals(text, expect):
    check(text, **expect)


# --- closing, modifying, cancelling -------------------------------------------------
EXITS = [
    ("Exit TSLA here", dict(action="close", symbol="TSLA", order_type="market", quantity=None)),
    ("Closing out NVDA @ 140.50", dict(action="close", order_type="limit", entry_prices=[D("140.5")])),
    ("Sell AMD here", dict(action="close", side=None)),
    ("Closing my TSLA short", dict(action="close", symbol="TSLA")),
    ("all out of ETH", dict(action="close", symbol="ETH/USD")),
    ("I'm out of AAPL +35%", dict(action="close", symbol="AAPL")),
    ("Stopped out of the NVDA trade", dict(action="close", symbol="NVDA")),
    ("Take profits on SOL, all out", dict(action="close", symbol="SOL/USD")),
    ("Covering TSLA short @ 250", dict(action="close", entry_prices=[D(250)])),
    ("Closed half of AMD at 130", dict(quantity=D(50), quantity_unit="percent_position")),
    ("Take 50% off NVDA", dict(action="close", quantity=D(50), quantity_unit="percent_position")),
    ("Trim 25% of AAPL at 195", dict(quantity=D(25), entry_prices=[D(195)])),
    ("Scale out of half TSLA here", dict(quantity=D(50))),
    ("Selling 1/2 of my BTC", dict(action="close", quantity=D(50), quantity_unit="percent_position")),
    ("Trimming some AAPL", dict(action="close", quantity=None)),
    ("Sell ½ AAPL", dict(action="close", quantity=D(50), quantity_unit="percent_position")),
    ("sell 10 shares of AAPL at 190", dict(action="close", quantity=D(10), quantity_unit="units")),
    ("Stopped out of COIN -$230", dict(action="close", entry_prices=[], order_type="market")),
    ("Out of TSLA, +$500", dict(action="close", entry_prices=[])),
    ("Nice, took profits on NVDA", dict(action="close", symbol="NVDA")),
    ("TSLA 250c 12/19 STC all @ 9", dict(action="close", asset_class="option", entry_prices=[D(9)])),
    ("New stop on AAPL is 180", dict(action="modify", stop_loss=D(180))),
    ("Move SL to 185 on AAPL", dict(action="modify", stop_loss=D(185), side=None)),
    ("Moving stop up to 245 on TSLA", dict(action="modify", stop_loss=D(245))),
    ("Raise stop to 240 on $TSLA", dict(action="modify", stop_loss=D(240))),
    ("Stop loss now 3100 for ETH/USDT", dict(action="modify", stop_loss=D(3100), symbol="ETH/USDT")),
    ("Move stop to breakeven on NVDA", dict(action="modify", stop_loss=None)),
    ("SL to BE on BTCUSDT", dict(action="modify", symbol="BTC/USDT")),
    ("Move stop on TSLA long to 250", dict(action="modify", stop_loss=D(250))),
    ("New targets for ETH/USDT: 3400/3500", dict(action="modify", take_profits=[D(3400), D(3500)])),
    ("Cancel the AAPL buy order", dict(action="cancel", symbol="AAPL", side=None)),
    ("ETH long cancelled", dict(action="cancel", symbol="ETH/USD")),
    ("NVDA 500C void", dict(action="cancel", asset_class="option")),
]


@pytest.mark.parametrize("text,expect", EXITS, ids=[t for t, _ in EXITS])
def test_close_modify_cancel(text, expect):
    check(text, **expect)


# --- chatter: must all be None --------------------------------------------------------
CHATTER = [
    # questions
    "anyone buying TSLA here?", "Should I sell AAPL", "When do you guys take profits on NVDA",
    "Is SPY a buy here", "How do you set a stop loss on BTC", "Who's still long ETH",
    # hedges and intentions
    "Thinking about buying some AAPL here", "Might short SPY if it loses 450", "Watching NVDA for a breakout",
    "NVDA looking strong, could run to 550", "Not sure about TSLA, maybe a short at 260",
    "Buying more AAPL tomorrow at open", "I'm going to short NVDA", "Gonna long ETH soon",
    "Planning to add to AAPL", "Waiting for a pullback before I buy MSFT", "If BTC breaks 45k I'll go long",
    # negations and opinions
    "Don't buy AAPL here", "Not selling my NVDA anytime soon", "Never short TSLA",
    "I'd never buy BTC at these levels lol", "AAPL is a buy under 180", "We are long TSLA from 200",
    "Holding my AAPL long through earnings",
    # recaps of the past
    "Was up 20% on NVDA yesterday", "Took profits yesterday on TSLA", "Bought NVDA at 120 back in 2023",
    "Sold AMD last week for a nice gain", "I sold AMD way too early smh", "TP1 hit on BTC/USDT ✅",
    "Target 2 reached on ETH 🎯", "Bought AAPL at 150 in 2020",
    # other people / news
    "Cathie Wood bought more TSLA today", "Berkshire sold its entire stake in PARA",
    "Congress members bought MSFT", "NVDA added to S&P 500", "Analysts upgrade AAPL to buy",
    # announcements, links, praise, jokes
    "Reminder: the weekly AMA is Thursday at 5pm", "Check out my latest video on TSLA https://youtu.be/abc",
    "https://www.tradingview.com/x/abc123/", "Great call on NVDA, sold mine at 140",
    "Congrats to everyone who bought SPY calls", "Great entry on NVDA today 🔥", "NVDA to the moon, buy buy buy",
    "Market closed for Thanksgiving on Thursday",
    # no actionable instrument / verb, or nouns that look like verbs
    "🚀🚀🚀", "$NVDA 🚀", "SPY 450", "Buy the dip", "Watchlist for tomorrow: AAPL, MSFT, AMD",
    "Shorts getting squeezed on GME", "TSLA short interest at record highs", "Long term I like AMZN",
    "Market sell-off today, SPY down 2%", "AAPL daily close above 190", "NVDA earnings after close today",
    "Exit strategy for NVDA: trail stops", "I'm out of town next week", "Running out of patience with TSLA",
    "Buy signal flashing on AAPL", "AMD sold off hard today", "BTC long/short ratio at 1.5",
    # ambiguous or contradictory
    "BUY AAPL MSFT", "Sold AAPL at 190 (bought at 180)", "Shorted TSLA at 300 and covered at 250",
    "Bought some SPY calls", "BTO SPY 450/455C 11/17 @ 1.20", "EUR/USD long 1.0850", "Long XAUUSD 2350",
    "Short TSLA 250 SL 240 TP 230", "Long TSLA 250 SL 260", "Buy AAPL @ 185 entry 186",
    "Buy AAPL 185 190 195", "Long AAPL SL 5%", "BTO AAPL 200C 11/17/2025 @ 3", "Buy AAPL @ 0",
    "About to buy AAPL", "Ready to short TSLA at 260", "Sell 1 2 AAPL",
    # status updates, examples, figures of speech
    "Entry triggered on AAPL @ 185", "Entry hit on BTC/USDT", "e.g. BUY AAPL @ 185 SL 180",
    "Example: BUY AAPL @ 185 SL 180", "Closing thoughts on AAPL: great quarter", "TSLA long wick on the daily",
    "Short covering rally in TSLA", "Happy Friday! Who made money this week",
    "Was stopped out of NVDA yesterday, lesson learned", "Recap: BTO SPY 450C 11/17 @1.20 then STC @ 2.40",
    "Not financial advice but I like AMD here", "Webinar cancelled, see you next week",
]


@pytest.mark.parametrize("text", CHATTER)
def test_chatter_is_not_a_signal(text):
    assert parse(text) is None


# --- details --------------------------------------------------------------------------
def test_expiry_without_year_is_the_next_such_date():
    later = datetime(2026, 11, 20, tzinfo=timezone.utc)
    assert _parse("BTO SPY 450C 11/17 @ 1", later).expiry == date(2027, 11, 17)
    assert _parse("BTO SPY 450C 11/20 @ 1", later).expiry == date(2026, 11, 20)


def test_now_defaults_to_current_time():
    signal = parse_signal("BTO SPY 450C 12/31 @ 1")
    assert signal is not None and signal.expiry.month == 12 and signal.expiry.day == 31


def test_prices_are_decimal_and_equal_to_their_short_form():
    signal = parse("BUY AAPL @ 185.50")
    assert signal.entry_prices == [D("185.5")] and isinstance(signal.entry_prices[0], D)


def test_noise_is_stripped():
    check("<@&1234> <:fire:9876> __**LONG**__ ~~$AMD~~ `@ 120` ||SL 115||", symbol="AMD",
          entry_prices=[D(120)], stop_loss=D(115))


def test_messages_longer_than_discord_allows_are_refused():
    assert parse("BUY AAPL @ 185 " + " " * 4000) is None


def test_non_string_input_is_not_a_signal():
    assert parse_signal(None) is None  # type: ignore[arg-type]
    assert parse_signal(b"BUY AAPL") is None  # type: ignore[arg-type]


def test_signal_json_round_trip():
    signal = parse("BTO 5 QQQ 12/19/2026 500P @ 4.10 SL 2 TP 8")
    data = signal.to_dict()
    assert data["entry_prices"] == ["4.10"] and data["expiry"] == "2026-12-19" and data["strike"] == "500"
    assert Signal.from_dict(data) == signal
    assert hash(Signal.from_dict(data)) == hash(signal)


@pytest.mark.parametrize("bad", [
    {"action": "open"}, {"action": "hold", "symbol": "A", "asset_class": "stock"},
    {"action": "open", "symbol": "A", "asset_class": "stock", "entry_prices": "1"},
    {"action": "open", "symbol": "A", "asset_class": "stock", "stop_loss": "NaN"},
    {"action": "open", "symbol": "A", "asset_class": "stock", "stop_loss": 1.5},
    {"action": "open", "symbol": "A", "asset_class": "stock", "expiry": "11/17"},
    {"action": "open", "symbol": "A", "asset_class": "stock", "colour": "red"},
    {"action": "open", "symbol": "", "asset_class": "stock"}, "not a dict",
])
def test_from_dict_refuses_malformed_rows(bad):
    with pytest.raises(ValueError):
        Signal.from_dict(bad)  # type: ignore[arg-type]


def test_signal_validates_on_construction():
    with pytest.raises(ValueError):
        Signal(action="open", symbol="A", asset_class="stock", side=["buy"])  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Signal(action="open", symbol="A", asset_class="stock", entry_prices=[1.5])  # type: ignore[list-item]
    with pytest.raises(ValueError):
        Signal(action="open", symbol="A", asset_class="option", expiry=datetime(2026, 1, 1))
    frozen = Signal(action="open", symbol="A", asset_class="stock", entry_prices=(D(1),))  # type: ignore[arg-type]
    assert frozen.entry_prices == [D(1)]


# --- attributes beyond the contract -------------------------------------------------
def test_trim_without_amount_is_marked_partial_not_full():
    sig = parse_signal("Trimming some NVDA here", now=NOW)
    assert sig is not None and sig.action == "close" and sig.quantity is None
    assert sig.partial_close is True
    full = parse_signal("All out of NVDA", now=NOW)
    assert full is not None and full.action == "close" and full.partial_close is False


def test_breakeven_modify_is_marked():
    sig = parse_signal("Move stop to breakeven on AAPL", now=NOW)
    assert sig is not None and sig.action == "modify" and sig.stop_loss is None and sig.breakeven is True
