"""Pure risk & sizing engine: signal + follower settings + account -> Decision.

No I/O, no clock, no database: everything arrives as arguments, so each
decision is reproducible from the ``inputs`` it carries.  Money and
quantities are ``Decimal``; percentages are written as percent (2 = 2 %).

Entry point: ``evaluate``.  The caller lifts a HALTED account with
``halt_expired`` and applies ``Decision.new_trading_state`` / ``flatten``;
``loss_change`` is the same loss rule for callers that have no signal (a
fill, a new mark).
"""

from .engine import evaluate, halt_expired, next_trading_day, trading_day
from .limits import (
    check_buying_power, check_daily_loss, check_market_hours, check_max_leverage, check_max_open_positions,
    check_limit_near_quote, check_max_position_notional, check_signal_rate, check_stop_side, check_symbol,
    check_trading_state,
)
from .models import (
    AccountSnapshot, Decision, InstrumentRules, MarketHours, PositionSnapshot, Reason, RiskProfile, SignalLike,
    SizingMode, TradingState,
)
from .sizing import Sizing, compute_sizing, effective_step, round_price, round_quantity, size_order
from .states import StateChange, check_soft_loss, loss_change, soft_loss_threshold

__all__ = [
    "AccountSnapshot", "Decision", "InstrumentRules", "MarketHours", "PositionSnapshot", "Reason", "RiskProfile",
    "SignalLike", "Sizing", "SizingMode", "StateChange", "TradingState",
    "evaluate", "loss_change", "check_soft_loss", "soft_loss_threshold", "check_limit_near_quote", "halt_expired", "next_trading_day", "trading_day",
    "size_order", "compute_sizing", "round_price", "round_quantity", "effective_step",
    "check_buying_power", "check_daily_loss", "check_market_hours", "check_max_leverage",
    "check_max_open_positions", "check_max_position_notional", "check_signal_rate", "check_stop_side",
    "check_symbol", "check_trading_state",
]
