"""TradingView webhook payloads -> Signal, and every way a payload is refused."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal as D

import pytest

from backend.errors import InvalidSignal, StaleSignal, WebhookAuthError
from backend.signals import Signal, TradingViewAlert, parse_tradingview_alert

SECRET = "s3cr3t-token"
NOW = datetime(2026, 11, 1, 14, 30, tzinfo=timezone.utc)


def alert(**fields) -> dict:
    return {"secret": SECRET, "ticker": "AAPL", "action": "buy", **fields}


def parse(payload, **kw) -> TradingViewAlert:
    return parse_tradingview_alert(payload, secret=kw.pop("secret", SECRET), now=kw.pop("now", NOW), **kw)


# --- valid payloads ---------------------------------------------------------------------
@pytest.mark.parametrize("action,expected", [
    ("buy", ("open", "buy")), ("long", ("open", "buy")), ("short", ("open", "sell")), ("SHORT", ("open", "sell")),
    ("sell", ("close", None)), ("close", ("close", None)), ("exit", ("close", None)), ("cancel", ("cancel", None)),
])
def test_each_action(action, expected):
    signal = parse(alert(action=action)).signal
    assert (signal.action, signal.side) == expected
    assert signal.order_type == "market" and signal.entry_prices == []


def test_modify_needs_and_carries_the_new_stop_or_targets():
    assert parse(alert(action="modify", stop_loss=180)).signal.stop_loss == D(180)
    assert parse(alert(action="modify", take_profits=[200, 210])).signal.take_profits == [D(200), D(210)]
    with pytest.raises(InvalidSignal, match="modify"):
        parse(alert(action="modify"))


def test_full_crypto_limit_order_from_json_bytes():
    body = json.dumps(alert(ticker="BINANCE:BTCUSDT.P", action="short", order_type="limit", price="42000.5",
                            quantity=2, size_mode="percent_equity", stop_loss=43000, take_profits=[41000, 40000],
                            leverage=10, alert_id="abc-1", time="2026-11-01T14:29:45Z", comment="x")).encode()
    result = parse(body)
    assert result.alert_id == "abc-1" and result.sent_at == NOW - timedelta(seconds=15)
    assert result.signal == Signal(action="open", side="sell", symbol="BTC/USDT", asset_class="crypto",
                                   order_type="limit", entry_prices=[D("42000.5")], stop_loss=D(43000),
                                   take_profits=[D(41000), D(40000)], quantity=D(2),
                                   quantity_unit="percent_equity", leverage=D(10))


def test_json_floats_become_exact_decimals():
    signal = parse('{"secret": "%s", "ticker": "AAPL", "action": "buy", "order_type": "limit", "price": 185.1}'
                   % SECRET).signal
    assert signal.entry_prices == [D("185.1")]
    assert parse(alert(order_type="limit", price=0.1)).signal.entry_prices == [D("0.1")]  # dict with a float


@pytest.mark.parametrize("ticker,symbol,asset", [
    ("AAPL", "AAPL", "stock"), ("NASDAQ:AAPL", "AAPL", "stock"), ("BRK.B", "BRK.B", "stock"), ("F", "F", "stock"),
    ("BTCUSDT", "BTC/USDT", "crypto"), ("COINBASE:ETHUSD", "ETH/USD", "crypto"), ("eth/usdt", "ETH/USDT", "crypto"),
    ("BTC", "BTC/USD", "crypto"),
])
def test_tickers_are_normalised_like_the_chat_parser(ticker, symbol, asset):
    signal = parse(alert(ticker=ticker)).signal
    assert (signal.symbol, signal.asset_class) == (symbol, asset)


def test_market_order_ignores_the_bar_price_and_limit_close_keeps_it():
    assert parse(alert(price=185)).signal.entry_prices == []
    signal = parse(alert(action="close", order_type="limit", price=190, quantity=50,
                         size_mode="percent_position")).signal
    assert signal.entry_prices == [D(190)] and signal.quantity_unit == "percent_position"


def test_quantity_defaults_to_units_and_single_target_is_accepted():
    signal = parse(alert(quantity="10", take_profits=195)).signal
    assert (signal.quantity, signal.quantity_unit, signal.take_profits) == (D(10), "units", [D(195)])


@pytest.mark.parametrize("when", [NOW.timestamp(), int(NOW.timestamp() * 1000), str(int(NOW.timestamp())),
                                  "2026-11-01T14:30:00", "2026-11-01T10:30:00-04:00"])
def test_time_formats(when):
    assert parse(alert(time=when)).sent_at == NOW


def test_without_time_there_is_no_age_check():
    assert parse(alert()).sent_at is None


# --- refusals ---------------------------------------------------------------------------
@pytest.mark.parametrize("payload", [alert(secret="wrong"), alert(secret=""), alert(secret=123),
                                     {k: v for k, v in alert().items() if k != "secret"}])
def test_bad_or_missing_secret(payload):
    with pytest.raises(WebhookAuthError):
        parse(payload)


def test_secret_is_checked_before_anything_else():
    with pytest.raises(WebhookAuthError):
        parse({"secret": "nope", "ticker": 5, "action": "explode", "time": "garbage"})


def test_an_unconfigured_secret_accepts_nothing():
    with pytest.raises(WebhookAuthError):
        parse(alert(secret=""), secret="")


def test_stale_alert_message_gives_age_and_limit():
    with pytest.raises(StaleSignal) as err:
        parse(alert(time=(NOW - timedelta(seconds=95)).isoformat()), max_lag_seconds=30)
    assert "95.0 s" in str(err.value) and "30 s" in str(err.value)
    assert parse(alert(time=(NOW - timedelta(seconds=25)).isoformat()), max_lag_seconds=30)


def test_alert_from_the_future_is_refused():
    with pytest.raises(InvalidSignal, match="future"):
        parse(alert(time=(NOW + timedelta(minutes=10)).isoformat()))


@pytest.mark.parametrize("body", [b"not json", "{'single': 'quotes'}", b"\xff\xfe", b"[1, 2]", "42", "",
                                  b"{" * 100_000, 12, None])
def test_non_json_or_non_object_bodies(body):
    with pytest.raises(InvalidSignal):
        parse(body)


@pytest.mark.parametrize("fields,field", [
    ({"ticker": None}, "ticker"), ({"ticker": 42}, "ticker"), ({"ticker": "EURUSD"}, "ticker"),
    ({"ticker": "ES1!"}, "ticker"), ({"action": None}, "action"), ({"action": "hold"}, "action"),
    ({"action": 1}, "action"), ({"order_type": "stop"}, "order_type"), ({"order_type": "limit"}, "price"),
    ({"price": -1}, "price"), ({"price": 0}, "price"), ({"price": "abc"}, "price"), ({"price": True}, "price"),
    ({"price": float("nan")}, "price"), ({"price": float("inf")}, "price"), ({"price": "Infinity"}, "price"),
    ({"quantity": 0}, "quantity"), ({"quantity": -3}, "quantity"), ({"quantity": [1]}, "quantity"),
    ({"quantity": 5, "size_mode": "lots"}, "size_mode"), ({"size_mode": "usd"}, "quantity"),
    ({"quantity": 150, "size_mode": "percent_equity"}, "quantity"), ({"stop_loss": "x"}, "stop_loss"),
    ({"take_profits": [200, "y"]}, "take_profits"), ({"take_profits": {"a": 1}}, "take_profits"),
    ({"leverage": 0.5}, "leverage"), ({"leverage": 500}, "leverage"), ({"alert_id": ["x"]}, "alert_id"),
    ({"alert_id": "x" * 300}, "alert_id"), ({"time": "yesterday"}, "time"), ({"time": 10**30}, "time"),
    ({"stoploss": 180}, "stoploss"),
])
def test_bad_fields_name_the_field(fields, field):
    with pytest.raises(InvalidSignal) as err:
        parse(alert(**fields))
    assert err.value.field == field
    assert field in str(err.value) or "ticker" in str(err.value)


def test_nan_in_a_json_body_is_refused_with_a_clear_message():
    with pytest.raises(InvalidSignal, match="NaN"):
        parse('{"secret": "%s", "ticker": "AAPL", "action": "buy", "price": NaN}' % SECRET)


def test_oversized_body_is_refused():
    with pytest.raises(InvalidSignal, match="larger"):
        parse(b" " * 70_000)
