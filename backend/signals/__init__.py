"""Signals: Discord chat messages and TradingView alerts -> :class:`Signal`.

``parse_signal(text, now=...)`` implements ``shared/contracts/signals.md``;
``parse_tradingview_alert(payload, secret=...)`` validates a webhook body.
Both produce the same frozen :class:`Signal`.
"""

from backend.signals.model import Signal
from backend.signals.parser import parse_signal
from backend.signals.tradingview import TradingViewAlert, parse_tradingview_alert

__all__ = ["Signal", "parse_signal", "TradingViewAlert", "parse_tradingview_alert"]
