"""What differs between the exchanges behind ``CcxtAdapter``, as data (freqtrade's ``_ft_has`` idea).

The adapter never branches on an exchange's name; it reads the exchange's
``Dialect`` instead.  An exchange without an entry gets the defaults, which
suit a venue that keeps client ids unique only while an order is open and
lists orders without a symbol.

Besides the order plumbing, a dialect says where the venue tells whether the
API key may trade (``AccountInfo.can_trade``): Binance puts ``canTrade`` in
its account answer (the one ``fetch_balance`` reads), Coinbase has a key
permissions endpoint.  Kraken exposes no such thing: its keys are assumed able
to trade until an order is refused.

Also here: the small value helpers the adapter shares (``D``, ``when``) and
``point_urls_at``, which re-hosts every API URL of an exchange (tests, proxies).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit, urlunsplit


@dataclass(frozen=True)
class Dialect:
    client_id_param: str = "clientOrderId"
    client_ids_unique_forever: bool = False
    lookup: str = "scan"  # "param": fetch_order(None, symbol, {clientOrderId}); "filter": open/closed lists filter by id
    history_needs_symbol: bool = False
    market_buy_needs_price: bool = False
    trigger_param: str = "triggerPrice"  # ccxt's kraken ignores the unified name and would send a MARKET order
    order_types: frozenset[str] = frozenset({"market", "limit", "stop", "stop_limit"})
    quote_currency: str = "USD"
    # where the venue wants a stop's direction (ccxt's coinbase defaults a sell stop to STOP_UP: it would
    # trigger at once above the market); a sell stop triggers on the way down, a buy stop on the way up
    stop_direction_param: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    # where the venue says whether the key may trade (None: it does not say)
    balance_trade_flag: str | None = None              # a key of fetch_balance()["info"]
    permissions_call: tuple[str, str] | None = None    # (ccxt implicit API method, key of its answer)


DIALECTS: dict[str, Dialect] = {
    "binance": Dialect(
        lookup="param", history_needs_symbol=True, quote_currency="USDT", balance_trade_flag="canTrade",
        options={"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False, "fetchMargins": False,
                 "warnOnFetchOpenOrdersWithoutSymbol": False},
    ),
    "kraken": Dialect(lookup="filter", trigger_param="stopLossPrice"),
    "coinbase": Dialect(client_id_param="client_order_id", client_ids_unique_forever=True,
                        market_buy_needs_price=True, order_types=frozenset({"market", "limit", "stop_limit"}),
                        stop_direction_param="stop_direction",
                        options={"fetchBalance": "v3PrivateGetBrokerageAccounts"},
                        permissions_call=("v3PrivateGetBrokerageKeyPermissions", "can_trade")),
}


def dialect_for(exchange_id: str) -> Dialect:
    return DIALECTS.get(exchange_id, Dialect())


def flag(value: Any) -> bool | None:
    """A venue's yes/no, whether JSON ``true`` or the string ``"true"``; None when absent."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


def D(value: Any) -> Decimal | None:
    return None if value is None or value == "" else Decimal(str(value))


def when(ms: int | float | None) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc) if ms else datetime.now(timezone.utc)


def point_urls_at(urls: Any, base_url: str) -> Any:
    """Every API URL of the exchange re-hosted on ``base_url`` (paths kept): tests, self-hosted proxies."""
    if isinstance(urls, str):
        p, b = urlsplit(urls), urlsplit(base_url)
        return urlunsplit((b.scheme, b.netloc, p.path, p.query, p.fragment))
    if isinstance(urls, dict):
        return {k: point_urls_at(v, base_url) for k, v in urls.items()}
    return urls


def ticker_price(ticker: dict) -> Decimal | None:
    """The last trade, else the middle of the book, else the previous close: what sizing can use."""
    last = D(ticker.get("last"))
    if last:
        return last
    bid, ask = D(ticker.get("bid")), D(ticker.get("ask"))
    if bid and ask and bid > 0 and ask > 0:
        return (bid + ask) / 2
    close = D(ticker.get("close"))
    return close if close else None
