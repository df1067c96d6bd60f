"""Fresh messages in the styles of real Discord signal channels (not copies of public.jsonl).

The parser is scored on a held-out corpus it never sees, so this file is a
second, independent sample written the way channels write: alert headers,
``|``-separated one-liners, multi-line crypto cards, option shorthand,
partial exits, stop moves and cancels - and, weighted heavily, the chatter
that *looks* like a signal: action words used as nouns or idioms ("buying
power", "cancel culture"), descriptive statements ("short X is a crowded
trade"), numbers that count days or reasons instead of pricing an order,
conditional or future orders, recaps, news and jokes.

Each case asserts the fields that decide what order is placed (action,
side, symbol, asset class, order type, prices, stop, targets, size,
leverage, option contract); a chatter case asserts ``None``.
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
    assert parse_signal(text, now=NOW) == signal  # the safety net hid nothing
    return signal


# --- opening: stocks ------------------------------------------------------------------
STOCK_OPENS = [
    ("BUY $AAPL 227.80 | SL 223.50 | TP 234 / 238",
     dict(action="open", side="buy", symbol="AAPL", asset_class="stock", order_type="limit",
          entry_prices=[D("227.8")], stop_loss=D("223.5"), take_profits=[D(234), D(238)])),
    ("Long MSFT @ 415 stop 408 target 430",
     dict(action="open", side="buy", symbol="MSFT", entry_prices=[D(415)], stop_loss=D(408), take_profits=[D(430)])),
    ("🟢 LONG $NVDA\nEntry: 138.50 - 139.20\nSL: 134.90\nTP1: 143\nTP2: 147",
     dict(action="open", side="buy", symbol="NVDA", entry_prices=[D("138.5"), D("139.2")], stop_loss=D("134.9"),
          take_profits=[D(143), D(147)])),
    ("Short $TSLA 352-355, stop 362, targets 340 / 332",
     dict(action="open", side="sell", symbol="TSLA", entry_prices=[D(352), D(355)], stop_loss=D(362),
          take_profits=[D(340), D(332)])),
    ("Buying 25 shares of KO at 62.40",
     dict(action="open", side="buy", symbol="KO", quantity=D(25), quantity_unit="units", entry_prices=[D("62.4")])),
    ("Starter position: buy $SHOP 10 shares @ 78.10 sl 74",
     dict(action="open", side="buy", symbol="SHOP", quantity=D(10), quantity_unit="units",
          entry_prices=[D("78.1")], stop_loss=D(74))),
    ("Entry $AMD 148.25, stop 144, PT 156",
     dict(action="open", side="buy", symbol="AMD", entry_prices=[D("148.25")], stop_loss=D(144),
          take_profits=[D(156)])),
    ("buy META at market, stop 560",
     dict(action="open", side="buy", symbol="META", order_type="market", entry_prices=[], stop_loss=D(560))),
    ("Going short IWM here 228.40 SL 231",
     dict(action="open", side="sell", symbol="IWM", entry_prices=[D("228.4")], stop_loss=D(231))),
    ("Scalp: long SPY 583.20 stop 582 tp 585",
     dict(action="open", side="buy", symbol="SPY", entry_prices=[D("583.2")], stop_loss=D(582),
          take_profits=[D(585)])),
    ("Buy 200 shares $SOFI @ 14.05",
     dict(action="open", side="buy", symbol="SOFI", quantity=D(200), quantity_unit="units",
          entry_prices=[D("14.05")])),
    ("Long $PLTR 2% of account @ 64.30, SL 61",
     dict(action="open", side="buy", symbol="PLTR", quantity=D(2), quantity_unit="percent_equity",
          entry_prices=[D("64.3")], stop_loss=D(61))),
    ("Buy $1,000 worth of JPM at market",
     dict(action="open", side="buy", symbol="JPM", order_type="market", quantity=D(1000), quantity_unit="usd")),
    ("Short COIN @ 285 SL 298 TP 262",
     dict(action="open", side="sell", symbol="COIN", entry_prices=[D(285)], stop_loss=D(298),
          take_profits=[D(262)])),
    ("AAPL buy limit 224 stop 219",
     dict(action="open", side="buy", symbol="AAPL", order_type="limit", entry_prices=[D(224)], stop_loss=D(219))),
    ("Adding to $CRWD @ 361.50", dict(action="open", side="buy", symbol="CRWD", entry_prices=[D("361.5")])),
    ("SELL SHORT $DKNG 41.20 stop 43",
     dict(action="open", side="sell", symbol="DKNG", entry_prices=[D("41.2")], stop_loss=D(43))),
    ("Long BRK.B 478.50 sl 471", dict(action="open", side="buy", symbol="BRK.B", entry_prices=[D("478.5")])),
    ("BUY UBER 74.10-74.60 SL 71.90 TP 79",
     dict(action="open", side="buy", symbol="UBER", entry_prices=[D("74.1"), D("74.6")], stop_loss=D("71.9"),
          take_profits=[D(79)])),
    ("buy 15 $DIS @ 98.75",
     dict(action="open", side="buy", symbol="DIS", quantity=D(15), quantity_unit="units", entry_prices=[D("98.75")])),
    ("Swing long $HOOD 35.20, stop 32.80, targets 38 / 41 / 44",
     dict(action="open", side="buy", symbol="HOOD", entry_prices=[D("35.2")], stop_loss=D("32.8"),
          take_profits=[D(38), D(41), D(44)])),
    ("BUY 40 shares T @ 22.15 SL 21.40",
     dict(action="open", side="buy", symbol="T", quantity=D(40), quantity_unit="units", entry_prices=[D("22.15")],
          stop_loss=D("21.4"))),
    ("📈 TRADE ALERT 📈\n$AVGO\nBuy: 171.20\nStop: 165.90\nTarget 1: 178\nTarget 2: 184",
     dict(action="open", side="buy", symbol="AVGO", entry_prices=[D("171.2")], stop_loss=D("165.9"),
          take_profits=[D(178), D(184)])),
    ("Shorting $SNOW around 168.50, SL 173, TP 160",
     dict(action="open", side="sell", symbol="SNOW", entry_prices=[D("168.5")], stop_loss=D(173),
          take_profits=[D(160)])),
    ("Buy XLE here, risk 0.5%, stop 88.40",
     dict(action="open", side="buy", symbol="XLE", order_type="market", quantity=D("0.5"),
          quantity_unit="percent_equity", stop_loss=D("88.4"))),
    ("Buy GOOGL", dict(action="open", side="buy", symbol="GOOGL", order_type="market", entry_prices=[])),
    ("Long $ARM 139 sl 132 tp 150 160",
     dict(action="open", side="buy", symbol="ARM", entry_prices=[D(139)], stop_loss=D(132),
          take_profits=[D(150), D(160)])),
    ("**SHORT** $BA @ 151.30\nSL 156\nTP 144",
     dict(action="open", side="sell", symbol="BA", entry_prices=[D("151.3")], stop_loss=D(156),
          take_profits=[D(144)])),
    ("Swing trade alert: Long $DELL 118.40, stop 112, target 130. Risk 1% of account.",
     dict(action="open", side="buy", symbol="DELL", entry_prices=[D("118.4")], stop_loss=D(112),
          take_profits=[D(130)], quantity=D(1), quantity_unit="percent_equity")),
]

# --- opening: crypto --------------------------------------------------------------------
CRYPTO_OPENS = [
    ("#ETHUSDT LONG\nLeverage: Cross 20x\nEntry: 2,450 - 2,480\nTargets: 2,520 - 2,560 - 2,610\nStop Loss: 2,395",
     dict(action="open", side="buy", symbol="ETH/USDT", asset_class="crypto", leverage=D(20),
          entry_prices=[D(2450), D(2480)], take_profits=[D(2520), D(2560), D(2610)], stop_loss=D(2395))),
    ("SHORT SOL/USDT x15\nEntry 182.5\nSL 187\nTP 176 / 171",
     dict(action="open", side="sell", symbol="SOL/USDT", leverage=D(15), entry_prices=[D("182.5")],
          stop_loss=D(187), take_profits=[D(176), D(171)])),
    ("BTC/USDT long 20x entry 67,200 sl 66,100 tp 68,900",
     dict(action="open", side="buy", symbol="BTC/USDT", leverage=D(20), entry_prices=[D(67200)],
          stop_loss=D(66100), take_profits=[D(68900)])),
    ("Buy 0.1 BTC at 66,500",
     dict(action="open", side="buy", symbol="BTC/USD", asset_class="crypto", quantity=D("0.1"),
          quantity_unit="units", entry_prices=[D(66500)])),
    ("LONG #AVAXUSDT lev 10 entry 34.10-34.60 sl 32.90 tp 36.50 38",
     dict(action="open", side="buy", symbol="AVAX/USDT", leverage=D(10), entry_prices=[D("34.1"), D("34.6")],
          stop_loss=D("32.9"), take_profits=[D("36.5"), D(38)])),
    ("DOGE/USDT short 0.1820 sl 0.1895 tp 0.1710 0.1650",
     dict(action="open", side="sell", symbol="DOGE/USDT", entry_prices=[D("0.182")], stop_loss=D("0.1895"),
          take_profits=[D("0.171"), D("0.165")])),
    ("Long LINK/USDT, risk 1%, SL 13.80",
     dict(action="open", side="buy", symbol="LINK/USDT", order_type="market", quantity=D(1),
          quantity_unit="percent_equity", stop_loss=D("13.8"))),
    ("#XRPUSDT Buy zone 0.5150-0.5250 | Targets 0.55, 0.58, 0.62 | SL 0.4950",
     dict(action="open", side="buy", symbol="XRP/USDT", entry_prices=[D("0.515"), D("0.525")],
          take_profits=[D("0.55"), D("0.58"), D("0.62")], stop_loss=D("0.495"))),
    ("Buy ETH at market, 5x, SL 2380",
     dict(action="open", side="buy", symbol="ETH/USD", order_type="market", leverage=D(5), stop_loss=D(2380))),
    ("SUI/USDT LONG 🚀\nEntry: 1.92\nTP: 2.05 / 2.18 / 2.30\nSL: 1.84\nLeverage: Isolated 10x",
     dict(action="open", side="buy", symbol="SUI/USDT", entry_prices=[D("1.92")],
          take_profits=[D("2.05"), D("2.18"), D("2.3")], stop_loss=D("1.84"), leverage=D(10))),
    ("Short BNBUSDT 10x @ 598 sl 612 tp 575",
     dict(action="open", side="sell", symbol="BNB/USDT", leverage=D(10), entry_prices=[D(598)], stop_loss=D(612),
          take_profits=[D(575)])),
    ("long $ETH 2450 sl 2390",
     dict(action="open", side="buy", symbol="ETH/USD", entry_prices=[D(2450)], stop_loss=D(2390))),
    ("ENTRY: #ARBUSDT 0.78-0.80 SL 0.74 TP 0.85/0.90",
     dict(action="open", side="buy", symbol="ARB/USDT", entry_prices=[D("0.78"), D("0.8")], stop_loss=D("0.74"),
          take_profits=[D("0.85"), D("0.9")])),
    ("Buy 500 USDT of SOL/USDT at 150",
     dict(action="open", side="buy", symbol="SOL/USDT", quantity=D(500), quantity_unit="usd",
          entry_prices=[D(150)])),
    ("🔴 SHORT #OPUSDT\nLev: 25x\nEntry: 1.71\nSL: 1.78\nTP1: 1.65 TP2: 1.60 TP3: 1.52",
     dict(action="open", side="sell", symbol="OP/USDT", leverage=D(25), entry_prices=[D("1.71")],
          stop_loss=D("1.78"), take_profits=[D("1.65"), D("1.6"), D("1.52")])),
    ("Long BTC 3x, entry 66k-66.5k, stop 64.8k",
     dict(action="open", side="buy", symbol="BTC/USD", leverage=D(3), entry_prices=[D(66000), D(66500)],
          stop_loss=D(64800))),
    ("Buy 2 SOL @ 148.20", dict(action="open", side="buy", symbol="SOL/USD", quantity=D(2), entry_prices=[D("148.2")])),
    ("INJUSDT long, 10x, entry 21.40, sl 20.60, targets 22.50 / 23.80",
     dict(action="open", side="buy", symbol="INJ/USDT", leverage=D(10), entry_prices=[D("21.4")],
          stop_loss=D("20.6"), take_profits=[D("22.5"), D("23.8")])),
]

# --- opening: options --------------------------------------------------------------------
OPTION_OPENS = [
    ("BTO AAPL 230C 11/22 @ 2.35",
     dict(action="open", side="buy", symbol="AAPL", asset_class="option", option_right="call", strike=D(230),
          expiry=date(2026, 11, 22), entry_prices=[D("2.35")])),
    ("BTO 5 SPY 11/8 585P @ 1.12",
     dict(action="open", side="buy", symbol="SPY", asset_class="option", option_right="put", strike=D(585),
          expiry=date(2026, 11, 8), quantity=D(5), quantity_unit="units", entry_prices=[D("1.12")])),
    ("STO 2 AMD 12/20 130P @ 2.80",
     dict(action="open", side="sell", symbol="AMD", asset_class="option", option_right="put", strike=D(130),
          expiry=date(2026, 12, 20), quantity=D(2), entry_prices=[D("2.8")])),
    ("Bought 3 TSLA 360 calls 11/29 @ 6.40",
     dict(action="open", side="buy", symbol="TSLA", option_right="call", strike=D(360), expiry=date(2026, 11, 29),
          quantity=D(3), entry_prices=[D("6.4")])),
    ("BTO NVDA 150C 12/19/2026 @ 4.05 SL 2.50 PT 7",
     dict(action="open", side="buy", symbol="NVDA", option_right="call", strike=D(150), expiry=date(2026, 12, 19),
          entry_prices=[D("4.05")], stop_loss=D("2.5"), take_profits=[D(7)])),
    ("BTO QQQ Dec 20 500 puts @ 7.15",
     dict(action="open", side="buy", symbol="QQQ", option_right="put", strike=D(500), expiry=date(2026, 12, 20),
          entry_prices=[D("7.15")])),
    ("$META 600c 11/15 BTO @ 5.20",
     dict(action="open", side="buy", symbol="META", option_right="call", strike=D(600), expiry=date(2026, 11, 15),
          entry_prices=[D("5.2")])),
    ("BTO 10 contracts IWM 225C 11/15 @ .45",
     dict(action="open", side="buy", symbol="IWM", quantity=D(10), quantity_unit="units", strike=D(225),
          entry_prices=[D("0.45")])),
    ("Buy to open AMZN 11/22 210c @ 3.10",
     dict(action="open", side="buy", symbol="AMZN", option_right="call", strike=D(210), expiry=date(2026, 11, 22),
          entry_prices=[D("3.1")])),
    ("🎯 LOTTO: BTO SPY 0DTE 590C @ .30",
     dict(action="open", side="buy", symbol="SPY", option_right="call", strike=D(590), expiry=date(2026, 11, 1),
          entry_prices=[D("0.3")])),
]

# --- closing ----------------------------------------------------------------------------------
CLOSES = [
    ("STC AAPL 230C 11/22 @ 3.40",
     dict(action="close", side=None, symbol="AAPL", asset_class="option", option_right="call", strike=D(230))),
    ("STC half of SPY 585P 11/8 @ 1.90",
     dict(action="close", symbol="SPY", asset_class="option", quantity=D(50), quantity_unit="percent_position")),
    ("Sell to close 2 NFLX 800C 11/15 @ 12.60",
     dict(action="close", symbol="NFLX", asset_class="option", quantity=D(2), quantity_unit="units")),
    ("Sold all my $ROKU here", dict(action="close", symbol="ROKU", quantity=None)),
    ("Out of $SNAP, small loss", dict(action="close", symbol="SNAP")),
    ("All out of SOL/USDT", dict(action="close", symbol="SOL/USDT", asset_class="crypto")),
    ("Closing AMZN @ 201.30", dict(action="close", symbol="AMZN")),
    ("Trim 1/3 of my NVDA here",
     dict(action="close", symbol="NVDA", quantity=D("33.33"), quantity_unit="percent_position")),
    ("Taking 50% off $TSLA", dict(action="close", symbol="TSLA", quantity=D(50), quantity_unit="percent_position")),
    ("Scaling out of half my PLTR",
     dict(action="close", symbol="PLTR", quantity=D(50), quantity_unit="percent_position")),
    ("Stopped out of $RIVN", dict(action="close", symbol="RIVN")),
    ("took profits on MSFT, all out", dict(action="close", symbol="MSFT")),
    ("Exit ETH/USDT now", dict(action="close", symbol="ETH/USDT")),
    ("Sell 10 shares of AMD @ 152",
     dict(action="close", symbol="AMD", quantity=D(10), quantity_unit="units")),
    ("Covering my QQQ short here", dict(action="close", symbol="QQQ")),
    ("Sell half BTC", dict(action="close", symbol="BTC/USD", quantity=D(50), quantity_unit="percent_position")),
    ("Closed HOOD @ 37.90, +8%", dict(action="close", symbol="HOOD")),
    ("Trimming some $CRWD into strength", dict(action="close", symbol="CRWD", quantity=None)),
    ("Closing the #LINKUSDT long", dict(action="close", symbol="LINK/USDT")),
    ("Take 25% off AVGO here", dict(action="close", symbol="AVGO", quantity=D(25), quantity_unit="percent_position")),
]

# --- modifying ---------------------------------------------------------------------------------
MODIFIES = [
    ("Moving my stop on $AMD up to 146", dict(action="modify", side=None, symbol="AMD", stop_loss=D(146))),
    ("SL to breakeven on ETH/USDT", dict(action="modify", symbol="ETH/USDT", stop_loss=None)),
    ("Raise stop on NVDA to 141.50", dict(action="modify", symbol="NVDA", stop_loss=D("141.5"))),
    ("Stop now 2,420 on #ETHUSDT", dict(action="modify", symbol="ETH/USDT", stop_loss=D(2420))),
    ("New stop for $COIN: 279", dict(action="modify", symbol="COIN", stop_loss=D(279))),
    ("TSLA stop moved to 348", dict(action="modify", symbol="TSLA", stop_loss=D(348))),
    ("Move SL to entry on SOL/USDT", dict(action="modify", symbol="SOL/USDT", stop_loss=None)),
    ("SL 1.88 on SUI/USDT now", dict(action="modify", symbol="SUI/USDT", stop_loss=D("1.88"))),
    ("New targets on AVAX/USDT: 37 / 39", dict(action="modify", symbol="AVAX/USDT", take_profits=[D(37), D(39)])),
    ("Trail stop to 582.50 on SPY", dict(action="modify", symbol="SPY", stop_loss=D("582.5"))),
    ("Stops to BE on PLTR", dict(action="modify", symbol="PLTR", stop_loss=None)),
    ("$MSFT stop loss now 409", dict(action="modify", symbol="MSFT", stop_loss=D(409))),
]

# --- cancelling -------------------------------------------------------------------------------
CANCELS = [
    ("Cancel the $SHOP limit", dict(action="cancel", symbol="SHOP", side=None)),
    ("Cancel AMD limit buy", dict(action="cancel", symbol="AMD")),
    ("ETH/USDT entry cancelled", dict(action="cancel", symbol="ETH/USDT")),
    ("Void the NFLX alert", dict(action="cancel", symbol="NFLX")),
    ("Cancelled: $UBER 74.10 buy", dict(action="cancel", symbol="UBER")),
    ("cancel #DOGEUSDT short order", dict(action="cancel", symbol="DOGE/USDT")),
]

SIGNALS = STOCK_OPENS + CRYPTO_OPENS + OPTION_OPENS + CLOSES + MODIFIES + CANCELS

# --- chatter that looks like a signal: all must be None --------------------------------------
CHATTER = [
    # descriptive statements: the verb phrase is the subject of "is"/"are"
    "Short NVDA is the most crowded trade on the street",
    "Long TSLA is a marathon, not a sprint",
    "Buying AAPL here is a bold move",
    "long $PLTR has been my best trade",
    # action words used as nouns, adjectives or idioms
    "Buying power on Webull resets for AAPL traders",
    "Entry level analyst jobs at GS are brutal",
    "Cancel culture came for BUD again",
    "Sold out arena for the TSLA shareholder meeting",
    "ETH short liquidations topped $200M overnight",
    "BTC long liquidations at $300M",
    "Best Buy earnings beat, BBY up 6% premarket",
    "Buy now pay later names like AFRM are ripping",
    "Long live $GME",
    "Short and simple: QQQ is range bound",
    "Stopped out of patience with $NIO honestly",
    "Exit polls have DJT moving",
    "Cover story on NVDA in Barron's this week",
    "New stop loss feature on Robinhood for TSLA traders",
    "Take profit orders on TSLA keep getting skipped",
    "Selling pressure on BTC is wild",
    "Entry fees on this exchange for SOL are insane",
    "Close call on SPY today, almost got stopped",
    "Short sellers lost $5B on TSLA today",
    # chatter around "buy and hold", rules and habits
    "buy and hold QQQ, check back in 10 years",
    "Exit TSLA before earnings, that's my rule",
    "Stop buying TSLA at the highs",
    "dca into BTC every friday no matter the price",
    "Adding AMD to the tracker sheet",
    "Adding JPM to my list of bank names",
    # numbers that count, time or money - not prices
    "Buy MSFT for the next 3 weeks and chill",
    "Long BTC until 2027, 200k cycle top",
    "Short SPY, 2 of my indicators flipped",
    "Buy NVDA, 5 reasons in the thread",
    "Long ETH target 5k in 6 months",
    "Short TSLA, 1 of the best setups ever",
    "Hold AAPL for 5 years and buy more every dip",
    "BUY AAPL 3",
    "Buy COIN with 50 bucks and see what happens",
    # prices that cannot be one order (typos, far apart, conditional levels)
    "Buy AAPL @ 225 SL 22",
    "Long SOL 150 TP 1500",
    "Long above 590 on SPY",
    "Short QQQ below 495",
    "Buy AAPL when it breaks 235",
    "Bought AAPL at 150, now it's 230",
    # hedges, questions, future intentions
    "Short ETH/USDT at 3000 if rejected",
    "I would buy PLTR at 50",
    "What's your stop on MSFT",
    "Move stops? no, let AAPL breathe",
    "Longing ETH soon, just waiting on a retest",
    "Lmk if you want the SPY entry",
    # recaps, status, other people, news, jokes
    "Stop loss hunters got me on SOL again",
    "My entry on AMD was 142, holding",
    "Took profits too early on NVDA again smh",
    "TP2 smashed on LINK/USDT 🎯",
    "Buy the rumor sell the news on the AAPL event",
    "TSLA closed green for 4 straight days",
    "AAPL sold 50 million iPhones last quarter",
    "NVDA bought back $20B of stock",
    "Closing thoughts: NFLX had a great quarter",
    "Buy signal on the weekly for $AMD",
    "Long NVDA calls since summer, still green",
    "BTC entry for most of us was around 60k",
    "Exit plan for COIN: scale out above 300",
    "My brother bought TSLA at the top lol",
    "Sell AAPL 190, buy MSFT 420",
    "Long AAPL, short MSFT, classic pair",
]


@pytest.mark.parametrize("text,expect", SIGNALS, ids=[t for t, _ in SIGNALS])
def test_signal(text, expect):
    signal = parse(text)
    assert signal is not None, f"signal missed: {text!r}"
    for name, value in expect.items():
        assert getattr(signal, name) == value, f"{name}: {getattr(signal, name)!r} != {value!r} in {text!r}"


@pytest.mark.parametrize("text", CHATTER)
def test_chatter(text):
    signal = parse(text)
    assert signal is None, f"chatter parsed as a trade: {text!r} -> {signal}"


def test_sample_is_broad_and_weighted_to_chatter():
    """The file is only useful as a held-out proxy if it stays large and mixed."""
    assert len(SIGNALS) >= 80 and len(CHATTER) >= 60
    assert len({t for t, _ in SIGNALS} | set(CHATTER)) == len(SIGNALS) + len(CHATTER)  # no duplicates
