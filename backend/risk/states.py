"""Trading-state transitions driven by today's loss (pure, like the rest of ``backend.risk``).

The same rule runs wherever today's P&L moves: when a signal is evaluated
(``engine.evaluate``), when a fill is booked and when open positions are
marked at a new price (``backend.execution.loss_guard``).  One function, so
the three can never disagree about when an account stops trading.

* today's realised + open P&L at or below minus the daily loss limit:
  HALTED (from ACTIVE or REDUCING), and ``flatten`` when the follower asked
  for it; the halt lasts until the next trading day (``engine.halt_expired``);
* at or below minus ``reduce_at_percent`` % of the limit (a soft threshold,
  e.g. 75): REDUCING (close-only) for the rest of the trading day, from
  ACTIVE only; nothing is flattened, the follower keeps their positions and
  their stops and only stops adding risk;
* otherwise: no change.  The rule never lifts a state; a new trading day does.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from ._util import HUNDRED, WIDE_CTX, fmt_money, fmt_pct
from .limits import check_daily_loss, daily_pnl
from .models import AccountSnapshot, Reason, TradingState


@dataclass(frozen=True)
class StateChange:
    """What the account becomes, why (shown to the follower) and whether to close everything."""

    state: TradingState
    reason: Reason
    flatten: bool = False


def soft_loss_threshold(daily_loss_limit: Decimal | None, reduce_at_percent: Decimal | None) -> Decimal | None:
    """The loss (a positive amount) at which the account turns close-only, or None when not configured."""
    if daily_loss_limit is None or reduce_at_percent is None:
        return None
    return WIDE_CTX.divide(WIDE_CTX.multiply(daily_loss_limit, reduce_at_percent), HUNDRED)


def check_soft_loss(account: AccountSnapshot, daily_loss_limit: Decimal | None,
                    reduce_at_percent: Decimal | None) -> Reason | None:
    """Today's result reached the soft threshold (``reduce_at_percent`` % of the daily loss limit)."""
    threshold = soft_loss_threshold(daily_loss_limit, reduce_at_percent)
    if threshold is None:
        return None
    pnl = daily_pnl(account)
    if pnl > -threshold:
        return None
    return Reason("daily_loss_soft", f"Today's result is {fmt_money(pnl)}, past {fmt_pct(reduce_at_percent)} of "
                                     f"your {fmt_money(daily_loss_limit)} daily loss limit "
                                     f"({fmt_money(-threshold)}): your account is close-only for the rest of the "
                                     "trading day. Closing, moving stops and cancelling still work.")


def loss_change(account: AccountSnapshot, *, daily_loss_limit: Decimal | None,
                reduce_at_percent: Decimal | None = None, flatten: bool = False) -> StateChange | None:
    """The state change today's P&L calls for, or None (already there, or nothing reached)."""
    breach = check_daily_loss(account, daily_loss_limit)
    if breach is not None:
        if account.trading_state is TradingState.HALTED:
            return None
        return StateChange(TradingState.HALTED, breach, flatten)
    soft = check_soft_loss(account, daily_loss_limit, reduce_at_percent)
    if soft is not None and account.trading_state is TradingState.ACTIVE:
        return StateChange(TradingState.REDUCING, soft)
    return None
