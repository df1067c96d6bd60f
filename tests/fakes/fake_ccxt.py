"""Loopback crypto exchanges for ccxt: Binance spot, Kraken spot, Coinbase Advanced Trade.

``make_fake("binance" | "kraken" | "coinbase")`` returns a fake whose
``app()`` serves the venue's REST paths in its own wire format (shapes in
``tests/fixtures/<venue>/``) and checks ccxt's real request signatures.
"""

from __future__ import annotations


def make_fake(exchange_id: str, **kwargs):
    if exchange_id == "binance":
        from fakes.fake_binance import FakeBinance

        return FakeBinance(**kwargs)
    if exchange_id == "kraken":
        from fakes.fake_kraken import FakeKraken

        return FakeKraken(**kwargs)
    if exchange_id == "coinbase":
        from fakes.fake_coinbase import FakeCoinbase

        return FakeCoinbase(**kwargs)
    raise ValueError(f"no fake for {exchange_id}")
