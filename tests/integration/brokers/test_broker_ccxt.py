"""CcxtAdapter with ccxt.async_support against loopback Binance, Kraken and Coinbase APIs."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlmodel import Session

from backend.brokers import registry
from backend.brokers.base import OrderRequest
from backend.brokers.ccxt_adapter import CcxtAdapter
from backend.brokers.rate_limit import shared_bucket
from backend.db.models.identity import User
from backend.db.models.trading import BrokerAccount, Order
from backend.db.types import utcnow
from backend.errors import (
    AuthenticationFailed,
    ConfigurationError,
    OrderNotFound,
    OrderTooSmall,
    RateLimited,
    TemporaryBrokerError,
    ValidationError,
)
from fakes.fake_ccxt import make_fake
from fakes.loopback import serve

SPEC = {
    "binance": dict(symbol="BTC/USDT", venue_symbol="BTCUSDT", price=Decimal("60000"), cid_param="newClientOrderId",
                    order_path="POST /api/v3/order", min_qty=Decimal("0.00001"), step=Decimal("0.00001"),
                    tick=Decimal("0.01"), min_notional=Decimal("5"), markets_path="/api/v3/exchangeInfo"),
    "kraken": dict(symbol="BTC/USD", venue_symbol="XXBTZUSD", price=Decimal("30000"), cid_param="cl_ord_id",
                   order_path="POST /0/private/AddOrder", min_qty=Decimal("0.00005"), step=Decimal("0.00000001"),
                   tick=Decimal("0.1"), min_notional=Decimal("0.5"), markets_path="/0/public/AssetPairs"),
    "coinbase": dict(symbol="BTC/USD", venue_symbol="BTC-USD", price=Decimal("67060"), cid_param="client_order_id",
                     order_path="POST /api/v3/brokerage/orders", min_qty=Decimal("0.00000001"),
                     step=Decimal("0.00000001"), tick=Decimal("0.01"), min_notional=Decimal("1"),
                     markets_path="/api/v3/brokerage/market/products"),
}


def build(fake, exchange_id: str, url: str, **kw) -> CcxtAdapter:
    return CcxtAdapter(credentials={"exchange_id": exchange_id, "api_key": fake.api_key, "secret": fake.secret},
                       base_url=url, timeout=kw.pop("timeout", 2.0), requests_per_minute=100_000,
                       ccxt_throttle=False, **kw)


@pytest.fixture(params=sorted(SPEC))
async def venue(request):
    exchange_id = request.param
    fake = make_fake(exchange_id, api_key=f"key-{uuid.uuid4().hex[:10]}")
    async with serve(fake.app()) as url:
        adapter = build(fake, exchange_id, url)
        yield exchange_id, fake, adapter, url
        await adapter.close()


def req(spec: dict, cid: str = "", **kw) -> OrderRequest:
    base = dict(client_order_id=cid or f"c-{uuid.uuid4().hex[:12]}", symbol=spec["symbol"], side="buy",
                quantity=Decimal("0.01"), asset_class="crypto", reference_price=spec["price"])
    base.update(kw)
    return OrderRequest(**base)


def sent(fake, spec) -> dict:
    method, path = spec["order_path"].split(" ")
    return [p for m, pth, p in fake.requests if m == method and pth == path][-1]


async def test_validate_reads_balances(venue):
    exchange_id, fake, adapter, _ = venue
    info = await adapter.validate()
    assert info.cash == Decimal("100000") and info.currency == ("USDT" if exchange_id == "binance" else "USD")
    assert fake.api_key not in info.account_id


async def test_market_order_is_acknowledged_and_filled_with_the_client_id(venue):
    exchange_id, fake, adapter, _ = venue
    spec = SPEC[exchange_id]
    snap = await adapter.place_order(req(spec, "mkt-1"))
    assert snap.status == "filled" and snap.client_order_id == "mkt-1" and snap.symbol == spec["symbol"]
    assert snap.filled_quantity > 0 and snap.avg_fill_price == spec["price"]
    assert sent(fake, spec)[spec["cid_param"]] == "mkt-1"
    assert fake.book.by_client_id("mkt-1").order_id == snap.broker_order_id


async def test_limit_order_rests_then_fills(venue):
    exchange_id, fake, adapter, _ = venue
    spec = SPEC[exchange_id]
    snap = await adapter.place_order(req(spec, "lmt-1", order_type="limit", limit_price=spec["price"] / 2))
    assert snap.status == "submitted" and snap.filled_quantity == 0
    assert [o.client_order_id for o in await adapter.open_orders()] == ["lmt-1"]
    fake.book.fill(snap.broker_order_id)
    done = await adapter.order_status("lmt-1")
    assert done.status == "filled" and done.avg_fill_price == spec["price"] / 2


async def test_cancel_a_resting_limit(venue):
    exchange_id, fake, adapter, _ = venue
    spec = SPEC[exchange_id]
    await adapter.place_order(req(spec, "lmt-c", order_type="limit", limit_price=spec["price"] / 2))
    assert (await adapter.cancel_order("lmt-c")).status == "cancelled"
    assert await adapter.open_orders() == []
    assert (await adapter.cancel_order("lmt-c")).status == "cancelled"


async def test_re_place_after_the_first_filled_returns_it_even_from_a_new_instance(venue):
    """Binance and Kraken accept a reused client id once the first order closed; the adapter must not."""
    exchange_id, fake, adapter, url = venue
    spec = SPEC[exchange_id]
    first = await adapter.place_order(req(spec, "idem-1"))
    again = await adapter.place_order(req(spec, "idem-1"))
    fresh = build(fake, exchange_id, url)
    after_restart = await fresh.place_order(req(spec, "idem-1"))
    await fresh.close()
    assert first.broker_order_id == again.broker_order_id == after_restart.broker_order_id
    assert len(fake.book.orders) == 1


async def test_duplicate_of_an_open_order_refused_by_the_venue_is_fetched(venue):
    exchange_id, fake, adapter, url = venue
    spec = SPEC[exchange_id]
    resting = await adapter.place_order(req(spec, "dup-open", order_type="limit", limit_price=spec["price"] / 2))
    adapter._known.clear()
    adapter.dialect = dataclasses.replace(adapter.dialect, client_ids_unique_forever=True)  # skip the pre-check
    again = await adapter.place_order(req(spec, "dup-open", order_type="limit", limit_price=spec["price"] / 2))
    assert again.broker_order_id == resting.broker_order_id and len(fake.book.orders) == 1


async def test_timeout_is_temporary_and_the_retry_finds_the_accepted_order(venue):
    exchange_id, fake, adapter, url = venue
    spec = SPEC[exchange_id]
    quick = build(fake, exchange_id, url, timeout=0.3)
    await quick.instrument(spec["symbol"])
    fake.delay_seconds = 0.6
    fake.fail_next("timeout", spec["order_path"])
    with pytest.raises(TemporaryBrokerError) as err:
        await quick.place_order(req(spec, "slow-1"))
    assert err.value.retryable
    import asyncio

    await asyncio.sleep(0.5)
    retried = await quick.place_order(req(spec, "slow-1"))
    await quick.close()
    assert retried.status == "filled" and len(fake.book.orders) == 1


@pytest.mark.parametrize("kind", ["rate_limited", "server_error"])
async def test_venue_throttling_and_outages_are_retryable(venue, kind):
    exchange_id, fake, adapter, _ = venue
    await adapter.instrument(SPEC[exchange_id]["symbol"])
    fake.fail_next(kind)
    with pytest.raises(RateLimited if kind == "rate_limited" else TemporaryBrokerError) as err:
        await adapter.account()
    assert err.value.retryable


async def test_too_small_is_caught_from_market_metadata_before_sending(venue):
    exchange_id, fake, adapter, _ = venue
    spec = SPEC[exchange_id]
    await adapter.instrument(spec["symbol"])
    before = len(fake.requests)
    with pytest.raises(OrderTooSmall):
        await adapter.place_order(req(spec, quantity=spec["min_notional"] / spec["price"] / 2))
    assert not [r for r in fake.requests[before:] if f"{r[0]} {r[1]}" == spec["order_path"]]


async def test_too_small_refused_by_the_venue_is_order_too_small(venue):
    exchange_id, fake, adapter, _ = venue
    spec = SPEC[exchange_id]
    fake.book.rules[spec["venue_symbol"]].min_notional = Decimal("1000000")
    with pytest.raises(OrderTooSmall):
        await adapter.place_order(req(spec))


@pytest.mark.parametrize("wrong", ["key", "secret"])
async def test_bad_credentials_are_authentication_failed_and_never_echoed(venue, wrong):
    exchange_id, fake, _, url = venue
    bad_secret = "V1JPTkctc2VjcmV0LXZhbHVl"  # base64, so Kraken's signer accepts it
    creds = {"exchange_id": exchange_id, "api_key": fake.api_key if wrong == "secret" else "WRONG-key-value",
             "secret": bad_secret if wrong == "secret" else fake.secret}
    bad = CcxtAdapter(credentials=creds, base_url=url, requests_per_minute=100_000, ccxt_throttle=False)
    with pytest.raises(AuthenticationFailed) as err:
        await bad.validate()
    await bad.close()
    for secret in (bad_secret, fake.secret, "WRONG-key-value"):
        assert secret not in str(err.value)


async def test_unknown_order_is_order_not_found(venue):
    _, _, adapter, _ = venue
    with pytest.raises(OrderNotFound):
        await adapter.order_status("never-placed")
    with pytest.raises(OrderNotFound):
        await adapter.cancel_order("never-placed")


async def test_instrument_metadata_comes_from_the_markets(venue):
    exchange_id, _, adapter, _ = venue
    spec = SPEC[exchange_id]
    info = await adapter.instrument(spec["symbol"])
    assert (info.min_quantity, info.quantity_step, info.price_tick, info.min_notional) == (
        spec["min_qty"], spec["step"], spec["tick"], spec["min_notional"])
    assert (await adapter.instrument(spec["venue_symbol"])).symbol == spec["symbol"]


async def test_markets_are_cached_for_the_ttl(venue):
    exchange_id, fake, _, url = venue
    spec = SPEC[exchange_id]
    now = [1000.0]
    adapter = build(fake, exchange_id, url, markets_ttl=60, clock=lambda: now[0])

    def loads():
        return sum(1 for m, p, q in fake.requests if p == spec["markets_path"] and q.get("product_type") != "FUTURE")

    before = loads()
    await adapter.instrument(spec["symbol"])
    await adapter.instrument(spec["symbol"])
    assert loads() == before + 1
    now[0] += 61
    await adapter.instrument(spec["symbol"])
    assert loads() == before + 2
    await adapter.close()


async def test_positions_after_a_fill(venue):
    exchange_id, _, adapter, _ = venue
    spec = SPEC[exchange_id]
    snap = await adapter.place_order(req(spec, quantity=Decimal("0.02")))
    [pos] = await adapter.positions()
    assert pos.symbol == spec["symbol"] and pos.quantity == snap.filled_quantity and pos.market_price == spec["price"]
    account = await adapter.account()
    assert account.equity > account.cash


async def test_reconciliation_after_restart_matches_the_venue(venue):
    exchange_id, fake, adapter, url = venue
    spec = SPEC[exchange_id]
    start = utcnow() - timedelta(seconds=1)
    await adapter.place_order(req(spec, "r-fill"))
    fake.book.next_fill = "partial"
    await adapter.place_order(req(spec, "r-part", order_type="limit", limit_price=spec["price"], quantity=Decimal("0.04")))
    await adapter.place_order(req(spec, "r-rest", order_type="limit", limit_price=spec["price"] / 2))
    fresh = build(fake, exchange_id, url)
    open_now = {o.client_order_id: o for o in await fresh.open_orders()}
    assert set(open_now) == {o.client_id for o in fake.book.open_orders()} == {"r-part", "r-rest"}
    assert open_now["r-part"].filled_quantity == Decimal("0.02")
    fills = await fresh.fills_since(start)
    expected = [(fake.book.get(f.order_id).client_id, f.fill_id, f.quantity, f.price, f.fee)
                for f in fake.book.fills_since(start)]
    assert [(cid, f.fill_id, f.quantity, f.price, f.fee) for cid, f in fills] == expected
    assert await fresh.fills_since(utcnow() + timedelta(minutes=1)) == []
    await fresh.close()


@pytest.mark.parametrize("order_type", ["stop", "stop_limit"])
@pytest.mark.parametrize("exchange_id", ["binance", "kraken"])
async def test_stop_orders_rest_at_the_venue_as_stops(exchange_id, order_type):
    """A stop must never reach the venue as a market order (ccxt's kraken ignores the unified triggerPrice)."""
    fake = make_fake(exchange_id, api_key=f"key-{uuid.uuid4().hex[:10]}")
    spec = SPEC[exchange_id]
    stop = spec["price"] * Decimal("0.9")
    limit = stop - Decimal("10") if order_type == "stop_limit" else None
    async with serve(fake.app()) as url:
        adapter = build(fake, exchange_id, url)
        await adapter.place_order(req(spec))             # spot: a sell needs the coins it sells
        snap = await adapter.place_order(req(spec, side="sell", order_type=order_type, stop_price=stop, limit_price=limit))
        await adapter.close()
    booked = fake.book.get(snap.broker_order_id)
    assert snap.status == "submitted" and booked.order_type == order_type
    assert (booked.stop_price, booked.limit_price) == (stop, limit)


async def test_coinbase_refuses_plain_stop_orders_locally():
    fake = make_fake("coinbase")
    async with serve(fake.app()) as url:
        adapter = build(fake, "coinbase", url)
        with pytest.raises(ValidationError):
            await adapter.place_order(req(SPEC["coinbase"], order_type="stop", stop_price=Decimal("60000")))
        await adapter.close()


async def test_binance_finds_a_closed_order_of_another_instance_through_the_orders_table(engine):
    """Binance history needs a symbol: after a restart the held markets, else the engine's orders table, supply it."""
    fake = make_fake("binance", api_key=f"key-{uuid.uuid4().hex[:10]}")
    spec = SPEC["binance"]
    with Session(engine) as s:
        user = User(username="trader")
        s.add(user)
        s.commit()
        account = BrokerAccount(user_id=user.id, broker="ccxt", label="binance", exchange_id="binance")
        s.add(account)
        s.commit()
        user_id, account_id = user.id, account.id
    async with serve(fake.app()) as url:
        first = build(fake, "binance", url)
        snap = await first.place_order(req(spec, "db-1"))
        await first.close()
        with Session(engine) as s:
            s.add(Order(client_order_id="db-1", user_id=user_id, broker_account_id=account_id, symbol="BTC/USDT",
                        side="buy", quantity=Decimal("0.01"), broker_order_id=snap.broker_order_id))
            s.commit()
        held = build(fake, "binance", url)                 # no table, but the account still holds BTC
        assert (await held.order_status("db-1")).broker_order_id == snap.broker_order_id
        await held.place_order(req(spec, "db-2", side="sell"))   # ... until it is sold flat
        await held.close()
        blind = build(fake, "binance", url)
        with pytest.raises(OrderNotFound):
            await blind.order_status("db-1")
        await blind.close()
        informed = build(fake, "binance", url, engine=engine, broker_account_id=account_id)
        assert (await informed.order_status("db-1")).broker_order_id == snap.broker_order_id
        fills = await informed.fills_since(utcnow() - timedelta(minutes=1))
        assert [cid for cid, _ in fills] == ["db-1", "db-2"]
        await informed.close()


def test_rate_limit_is_half_the_published_rate_and_shared_per_account():
    a = CcxtAdapter(credentials={"exchange_id": "binance", "api_key": "shared-key", "secret": "s"},
                    base_url="http://127.0.0.1:9")
    b = CcxtAdapter(credentials={"exchange_id": "binance", "api_key": "shared-key", "secret": "s"},
                    base_url="http://127.0.0.1:9")
    assert a.capabilities.max_requests_per_minute == 600  # ccxt binance rateLimit 50 ms -> 1200/min published
    assert a._bucket is b._bucket is shared_bucket("ccxt", a.account_key, 1)
    kraken = CcxtAdapter(credentials={"exchange_id": "kraken", "api_key": "k", "secret": "czE="},
                         base_url="http://127.0.0.1:9")
    assert kraken.capabilities.max_requests_per_minute == 30


def test_unknown_exchange_and_missing_sandbox_are_configuration_errors():
    with pytest.raises(ConfigurationError):
        CcxtAdapter(credentials={"exchange_id": "not-an-exchange"})
    with pytest.raises(ConfigurationError) as err:
        CcxtAdapter(credentials={"exchange_id": "kraken", "api_key": "k", "secret": "czE="}, live=False)
    assert "sandbox" in str(err.value)


async def test_registry_builds_it_with_the_engine_kwargs(venue):
    exchange_id, fake, _, url = venue
    built = registry.build("ccxt", credentials={"exchange_id": exchange_id, "api_key": fake.api_key,
                                                 "secret": fake.secret},
                           live=True, base_url=url, engine=None, broker_account_id=3, ccxt_throttle=False)
    assert isinstance(built, CcxtAdapter) and built.exchange_id == exchange_id
    assert (await built.account()).cash == Decimal("100000")
    await built.close()


async def test_open_orders_lock_spot_balances_and_a_sell_beyond_the_free_coins_is_insufficient_funds(venue):
    """Like the real exchanges: a resting sell locks its coins, a resting buy its quote currency."""
    from backend.errors import InsufficientFunds

    exchange_id, fake, adapter, _ = venue
    spec = SPEC[exchange_id]
    base, quote = spec["symbol"].split("/")
    await adapter.place_order(req(spec, quantity=Decimal("0.02")))
    await adapter.place_order(req(spec, "lock-sell", side="sell", order_type="limit", quantity=Decimal("0.015"),
                                  limit_price=spec["price"] * 2, time_in_force="gtc"))
    cash_before = (await adapter.account()).cash
    await adapter.place_order(req(spec, "lock-buy", order_type="limit", limit_price=spec["price"] / 2,
                                  time_in_force="gtc"))
    balance = await adapter._ex.fetch_balance()
    assert (Decimal(str(balance[base]["free"])), Decimal(str(balance[base]["used"]))) == (
        Decimal("0.005"), Decimal("0.015"))
    assert cash_before - (await adapter.account()).cash == Decimal("0.01") * spec["price"] / 2
    with pytest.raises(InsufficientFunds):
        await adapter.place_order(req(spec, "too-much", side="sell", order_type="limit", quantity=Decimal("0.01"),
                                      limit_price=spec["price"] * 2, time_in_force="gtc"))
    assert [o.client_id for o, _ in fake.book.refusals] == ["too-much"]
    await adapter.cancel_order("lock-sell")
    await adapter.place_order(req(spec, "fits-now", side="sell", quantity=Decimal("0.01")))   # freed by the cancel
    assert fake.book.by_client_id("fits-now").status == "filled"


async def test_order_fees_reach_the_snapshot_in_the_quote_currency(venue):
    """Kraken and Coinbase state the order's cumulative fee only (ccxt ``fee``); Binance per trade."""
    exchange_id, fake, adapter, _ = venue
    spec = SPEC[exchange_id]
    snap = await adapter.place_order(req(spec, "fee-1", order_type="limit", limit_price=spec["price"] / 2))
    assert snap.fee is None and snap.fills == ()                          # nothing filled, no fee yet
    fake.book.fill(snap.broker_order_id, quantity=Decimal("0.004"))
    part = await adapter.order_status("fee-1")
    charged = fake.book.get(snap.broker_order_id).fee
    fake.book.fill(snap.broker_order_id)
    done = await adapter.order_status("fee-1")
    total = fake.book.get(snap.broker_order_id).fee
    assert Decimal(0) < charged < total
    if exchange_id == "binance":   # fetch_order carries no trades and no fee: the fills came with the placing
        assert (part.fee, done.fee) == (None, None)
    else:
        assert (part.fee, done.fee, done.fills) == (charged, total, ())


@pytest.mark.parametrize("asset,expected", [("USDT", Decimal("0.6")), ("BTC", Decimal("0.00001") * 60000),
                                            ("BNB", Decimal(0))])
async def test_a_binance_fee_in_another_currency_is_valued_or_left_out_never_added_as_quote(asset, expected, caplog):
    """A BTC commission on BTC/USDT is worth commission x price; a BNB one has no price here: out of P&L."""
    fake = make_fake("binance", api_key=f"key-{uuid.uuid4().hex[:10]}")
    async with serve(fake.app()) as url:
        adapter = build(fake, "binance", url)
        try:
            snap = await adapter.place_order(req(SPEC["binance"], "bnb-1"))
            raw = fake.render(fake.book.get(snap.broker_order_id), full=True)
            commission = {"USDT": "0.6", "BTC": "0.00001", "BNB": "0.0009"}[asset]
            for f in raw["fills"]:
                f.update(commission=commission, commissionAsset=asset)
            parsed = adapter._snapshot(adapter._ex.parse_order(raw), "bnb-1")   # ccxt's own parser
        finally:
            await adapter.close()
    [fill] = parsed.fills
    assert fill.fee == expected and parsed.fee is None
    assert ("BNB" in caplog.text and "left out of P&L" in caplog.text) == (asset == "BNB")
