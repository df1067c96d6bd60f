"""What the engine needs beyond placing orders, through the real SDKs against the loopback venues.

* ``quote(symbol)``: without a usable price the engine refuses market signals
  for a follower, so every real adapter must give one (Alpaca's market data
  API, an IB market data snapshot, ccxt's ticker), or None, never a guess.
* Native bracket legs under the engine's names: the legs of entry ``X`` are
  ``X-sl`` and ``X-tp1`` in every snapshot, open order and fill, and
  ``order_status`` / ``cancel_order`` take those names (Alpaca gives legs ids of
  its own; IB carries our names in ``orderRef``).
* ``AccountInfo.can_trade``: what the venue says about the key's permission.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from alpaca.data.models import Quote, Trade

from backend.brokers.alpaca import AlpacaAdapter, entry_of_leg, leg_name
from backend.brokers.base import BracketSpec, OrderRequest
from backend.brokers.ccxt_adapter import CcxtAdapter
from backend.brokers.ccxt_dialects import ticker_price
from backend.brokers.ibkr import IbkrAdapter
from backend.db.types import utcnow
from backend.errors import InvalidSymbol, OrderNotFound, OrderRejected, RateLimited
from fakes.fake_alpaca import FakeAlpaca
from fakes.fake_ccxt import make_fake
from fakes.fake_ibkr import FakeIbGateway
from fakes.loopback import serve

BRACKET = BracketSpec(stop_loss=Decimal("180"), take_profits=((Decimal("200"), Decimal("4")),))


def order(cid: str, **kw) -> OrderRequest:
    base = dict(client_order_id=cid, symbol="AAPL", side="buy", quantity=Decimal("4"))
    base.update(kw)
    return OrderRequest(**base)


# --- Alpaca ------------------------------------------------------------------------------------------
def alpaca(fake: FakeAlpaca, url: str, **kw) -> AlpacaAdapter:
    return AlpacaAdapter(credentials={"api_key": fake.api_key, "api_secret": fake.api_secret}, base_url=url,
                         timeout=2.0, requests_per_minute=100_000, **kw)


@pytest.fixture
async def alp():
    fake = FakeAlpaca(api_key=f"PK{uuid.uuid4().hex[:16].upper()}")
    async with serve(fake.app()) as url:
        adapter = alpaca(fake, url)
        yield fake, adapter, url
        await adapter.close()


async def test_alpaca_quote_is_the_latest_trade_from_the_market_data_api(alp):
    fake, adapter, _ = alp
    assert await adapter.quote("AAPL") == Decimal("190.12")
    method, path, params = fake.requests[-1]
    assert (method, path, params["symbols"]) == ("GET", "/v2/stocks/trades/latest", "AAPL")
    fake.no_trades.add("AAPL")  # no trade yet today: the middle of the quote
    assert await adapter.quote("AAPL") == Decimal("190.12")
    assert fake.requests[-1][1] == "/v2/stocks/quotes/latest"


async def test_alpaca_option_quote_prefers_the_quote_mid_then_the_last_trade(alp):
    fake, adapter, _ = alp
    occ = "AAPL250620C00200000"
    assert await adapter.quote(occ) == Decimal("3.10")
    assert fake.requests[-1][1] == "/v1beta1/options/quotes/latest"
    fake.book.prices[occ] = Decimal("3.40")
    fake.no_quotes.add(occ)
    assert await adapter.quote(occ) == Decimal("3.4")
    assert fake.requests[-1][1] == "/v1beta1/options/trades/latest"


async def test_alpaca_quote_without_data_is_none_and_errors_are_translated(alp):
    fake, adapter, _ = alp
    assert await adapter.quote("ZZZZ") is None  # Alpaca leaves unknown symbols out of the answer
    with pytest.raises(InvalidSymbol):
        await adapter.quote("AAPL$")
    fake.faults.append("rate_limited")
    with pytest.raises(RateLimited):
        await adapter.quote("AAPL")


async def test_alpaca_quote_goes_to_the_data_host_of_its_own(alp):
    trading, _, trading_url = alp
    data = FakeAlpaca(api_key=trading.api_key, api_secret=trading.api_secret)
    data.book.prices["AAPL"] = Decimal("191.5")
    async with serve(data.app()) as data_url:
        adapter = alpaca(trading, trading_url, data_url=data_url)
        assert await adapter.quote("AAPL") == Decimal("191.5")
        await adapter.close()
    assert [p for _, p, _ in data.requests] == ["/v2/stocks/trades/latest"]
    assert not [p for _, p, _ in trading.requests if "latest" in p]


async def test_alpaca_market_data_payloads_validate_against_alpaca_py_models(alp):
    """Fidelity of the fake: alpaca-py's own data models accept what it serves."""
    _, adapter, _ = alp
    from alpaca.data.requests import OptionLatestQuoteRequest, StockLatestQuoteRequest, StockLatestTradeRequest

    trades = await asyncio.to_thread(adapter._stocks.get_stock_latest_trade, StockLatestTradeRequest(symbol_or_symbols="AAPL"))
    quotes = await asyncio.to_thread(adapter._stocks.get_stock_latest_quote, StockLatestQuoteRequest(symbol_or_symbols="AAPL"))
    options = await asyncio.to_thread(adapter._options.get_option_latest_quote,
                                      OptionLatestQuoteRequest(symbol_or_symbols="AAPL250620C00200000"))
    assert Trade("AAPL", trades["AAPL"]).price == 190.12
    assert Quote("AAPL", quotes["AAPL"]).bid_price == 190.11
    assert Quote("AAPL250620C00200000", options["AAPL250620C00200000"]).ask_price == 3.15


@pytest.mark.parametrize("patch", [{"trading_blocked": True}, {"account_blocked": True},
                                   {"trade_suspended_by_user": True}, {"status": "APPROVAL_PENDING"}])
async def test_alpaca_account_that_cannot_trade_says_so(alp, patch):
    fake, adapter, _ = alp
    assert (await adapter.account()).can_trade is True
    fake.account_overrides = patch
    assert (await adapter.account()).can_trade is False


def test_alpaca_leg_names():
    assert leg_name("X", {"type": "stop"}) == "X-sl" and leg_name("X", {"type": "stop_limit"}) == "X-sl"
    assert leg_name("X", {"type": "limit"}) == "X-tp1" and leg_name("X", {"type": "market"}) is None
    assert entry_of_leg("dte-abc-sl") == "dte-abc" and entry_of_leg("dte-abc-tp1") == "dte-abc"
    assert entry_of_leg("dte-abc") is None and entry_of_leg("-sl") is None and entry_of_leg("dte-abc-tp2") is None


async def test_alpaca_bracket_legs_answer_to_the_engine_names(alp):
    fake, adapter, _ = alp
    entry = await adapter.place_order(order("br-1", order_type="limit", limit_price=Decimal("150"), bracket=BRACKET))
    venue = fake.book.get(entry.broker_order_id)
    venue_tp, venue_sl = sorted(venue.legs, key=lambda leg: leg.order_type != "limit")
    assert {venue_tp.client_id, venue_sl.client_id}.isdisjoint({"br-1-sl", "br-1-tp1"})  # Alpaca's own ids

    stop = await adapter.order_status("br-1-sl")
    assert (stop.client_order_id, stop.broker_order_id, stop.status, stop.side, stop.quantity) == (
        "br-1-sl", venue_sl.order_id, "submitted", "sell", Decimal("4"))
    assert {o.client_order_id: o.broker_order_id for o in await adapter.open_orders()} == {
        "br-1": venue.order_id, "br-1-sl": venue_sl.order_id, "br-1-tp1": venue_tp.order_id}

    fake.book.fill(venue.order_id)
    start = utcnow()
    fake.book.fill(venue_tp.order_id)
    assert venue_sl.status == "cancelled"  # Alpaca cancels the sibling
    tp = await adapter.order_status("br-1-tp1")
    assert (tp.status, tp.filled_quantity, tp.avg_fill_price) == ("filled", Decimal("4"), Decimal("200"))
    assert [(cid, f.price) for cid, f in await adapter.fills_since(start)] == [("br-1-tp1", Decimal("200"))]
    assert (await adapter.order_status("br-1-sl")).status == "cancelled"
    with pytest.raises(OrderNotFound):
        await adapter.order_status("never-placed-sl")


async def test_alpaca_leg_is_cancelled_and_replaced_by_its_engine_name(alp):
    fake, adapter, url = alp
    entry = await adapter.place_order(order("br-2", bracket=BRACKET))  # market: filled, legs working
    assert entry.status == "filled"
    fresh = alpaca(fake, url)  # no memory of the placement: the legs are found through the entry
    moved = await fresh.replace_order("br-2-sl", stop_price=Decimal("185"))
    assert moved.client_order_id == "br-2-sl" and fake.book.get(moved.broker_order_id).stop_price == Decimal("185")
    assert (await fresh.order_status("br-2-sl")).broker_order_id == moved.broker_order_id
    cancelled = await fresh.cancel_order("br-2-sl")
    assert (cancelled.client_order_id, cancelled.status) == ("br-2-sl", "cancelled")
    assert (await fresh.order_status("br-2-tp1")).status == "submitted"
    assert {o.client_order_id for o in await fresh.open_orders()} == {"br-2-tp1"}
    await fresh.close()


async def test_alpaca_legs_are_named_after_a_restart_from_listings_alone(alp):
    """A fresh adapter meets the legs first in the open orders and fills: one nested listing names them."""
    fake, adapter, url = alp
    start = utcnow() - timedelta(seconds=2)
    await adapter.place_order(order("br-3", bracket=BracketSpec(stop_loss=Decimal("180"))))  # OTO: a stop only
    await adapter.place_order(order("plain-1", order_type="limit", limit_price=Decimal("100")))
    [leg] = fake.book.by_client_id("br-3").legs
    fake.book.fill(leg.order_id, price=Decimal("180"))
    await adapter.close()

    fresh = alpaca(fake, url)
    assert {o.client_order_id for o in await fresh.open_orders()} == {"plain-1"}
    fills = [(cid, f.price) for cid, f in await fresh.fills_since(start)]
    assert fills == [("br-3", Decimal("190.12")), ("br-3-sl", Decimal("180"))]
    nested = [q for m, p, q in fake.requests if p == "/v2/orders" and m == "GET" and q.get("nested") == "True"]
    assert len(nested) == 1 and nested[0]["status"] == "all"
    await fresh.close()


# --- Interactive Brokers ---------------------------------------------------------------------------
@pytest.fixture
async def ib():
    gateway = FakeIbGateway()
    await gateway.start()
    adapter = IbkrAdapter(credentials={"host": "127.0.0.1", "port": gateway.port, "client_id": 5,
                                       "account": gateway.account}, timeout=3, ack_timeout=2,
                          requests_per_minute=100_000)
    yield gateway, adapter
    await adapter.close()
    await gateway.stop()


async def test_ibkr_quote_is_a_market_data_snapshot(ib):
    gateway, adapter = ib
    assert await adapter.quote("AAPL") == Decimal("190.12")
    [request] = [f for f in gateway.received if f[0] == "1"]
    assert request[4] == "AAPL" and request[3] == "265598" and request[-3] == "1"  # qualified contract, snapshot
    gateway.ticks["AAPL"] = {1: Decimal("190.00"), 2: Decimal("190.40")}  # no trade yet: the middle of the quote
    assert await adapter.quote("AAPL") == Decimal("190.2")
    gateway.ticks["AAPL"] = {9: Decimal("188.5")}  # only yesterday's close
    assert await adapter.quote("AAPL") == Decimal("188.5")


async def test_ibkr_quote_without_a_subscription_is_none_and_unknown_is_invalid(ib):
    gateway, adapter = ib
    gateway.market_data_subscribed = False
    assert await adapter.quote("AAPL") is None
    with pytest.raises(InvalidSymbol):
        await adapter.quote("ZZZZ")


def test_ibkr_quotes_occ_symbols_as_options():
    adapter = IbkrAdapter(credentials={"port": 1})
    for symbol in ("AAPL250620C00200000", "AAPL  250620P00192500"):
        c = adapter._quote_contract(symbol)
        assert (c.secType, c.symbol, c.lastTradeDateOrContractMonth, c.exchange) == ("OPT", "AAPL", "20250620", "SMART")
    assert (adapter._quote_contract("AAPL250620C00200000").strike, adapter._quote_contract("AAPL  250620P00192500").right) == (
        200.0, "P")
    assert adapter._quote_contract("AAPL").secType == "STK"


async def test_ibkr_bracket_legs_carry_the_engine_names_through_fills_and_cancels(ib):
    gateway, adapter = ib
    start = utcnow() - timedelta(seconds=2)
    entry = await adapter.place_order(order("br-1", quantity=Decimal("10"), bracket=BRACKET))
    refs = {o.order_ref: o for o in gateway.orders.values()}
    assert set(refs) == {"br-1", "br-1-tp1", "br-1-sl"}
    assert entry.status == "filled" and (await adapter.order_status("br-1-sl")).status == "submitted"

    await gateway.push_fill(refs["br-1-tp1"].order_id)  # the take-profit fills; IB cancels the stop
    tp = await adapter.order_status("br-1-tp1")
    assert (tp.client_order_id, tp.status, tp.avg_fill_price) == ("br-1-tp1", "filled", Decimal("200"))
    assert (await adapter.cancel_order("br-1-sl")).status == "cancelled"
    fills = [(cid, f.price) for cid, f in await adapter.fills_since(start)]
    assert fills == [("br-1", Decimal("190.12")), ("br-1-tp1", Decimal("200"))]


async def test_ibkr_leg_is_cancelled_by_its_engine_name(ib):
    gateway, adapter = ib
    await adapter.place_order(order("br-2", quantity=Decimal("10"), order_type="limit", limit_price=Decimal("150"),
                                    bracket=BRACKET))
    cancelled = await adapter.cancel_order("br-2-sl")
    assert (cancelled.client_order_id, cancelled.status) == ("br-2-sl", "cancelled")
    assert {o.client_order_id for o in await adapter.open_orders()} == {"br-2", "br-2-tp1"}


async def test_ibkr_read_only_gateway_refuses_orders_and_reports_it_cannot_trade(ib):
    gateway, adapter = ib
    assert (await adapter.account()).can_trade is True
    gateway.read_only = True
    with pytest.raises(OrderRejected) as err:
        await adapter.place_order(order("ro-1"))
    assert "Read-Only API" in str(err.value)
    assert (await adapter.account()).can_trade is False
    assert (await adapter.order_status("ro-1")).status == "rejected"


# --- ccxt --------------------------------------------------------------------------------------------
VENUES = {"binance": ("BTC/USDT", Decimal("60000")), "kraken": ("BTC/USD", Decimal("30000")),
          "coinbase": ("BTC/USD", Decimal("67060"))}


def ccxt_adapter(fake, exchange_id: str, url: str) -> CcxtAdapter:
    return CcxtAdapter(credentials={"exchange_id": exchange_id, "api_key": fake.api_key, "secret": fake.secret},
                       base_url=url, timeout=2.0, requests_per_minute=100_000, ccxt_throttle=False)


@pytest.fixture(params=sorted(VENUES))
async def crypto(request):
    exchange_id = request.param
    fake = make_fake(exchange_id, api_key=f"key-{uuid.uuid4().hex[:10]}")
    async with serve(fake.app()) as url:
        adapter = ccxt_adapter(fake, exchange_id, url)
        yield exchange_id, fake, adapter
        await adapter.close()


async def test_ccxt_quote_is_the_tickers_last_price(crypto):
    exchange_id, fake, adapter = crypto
    symbol, price = VENUES[exchange_id]
    assert await adapter.quote(symbol) == price
    path = {"binance": "/api/v3/ticker/24hr", "kraken": "/0/public/Ticker",
            "coinbase": "/api/v3/brokerage/market/products/BTC-USD/ticker"}[exchange_id]
    assert fake.requests[-1][:2] == ("GET", path)
    with pytest.raises(InvalidSymbol):
        await adapter.quote("DOGE/EUR")


def test_ticker_price_falls_back_to_the_mid_then_the_close():
    assert ticker_price({"last": 10.5, "bid": 10, "ask": 11}) == Decimal("10.5")
    assert ticker_price({"last": None, "bid": 10, "ask": 11}) == Decimal("10.5")
    assert ticker_price({"last": None, "bid": 10, "ask": None, "close": 9.5}) == Decimal("9.5")
    assert ticker_price({}) is None


async def test_ccxt_can_trade_is_what_the_venue_says_about_the_key(crypto):
    exchange_id, fake, adapter = crypto
    assert (await adapter.account()).can_trade is True
    if exchange_id == "kraken":  # Kraken does not expose a key's permissions
        return
    fake.can_trade = False
    assert (await adapter.account()).can_trade is False
    if exchange_id == "coinbase":
        assert ("GET", "/api/v3/brokerage/key_permissions") in [r[:2] for r in fake.requests]
