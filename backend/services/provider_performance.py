"""A signal provider's track record, computed from what real followers actually got.

Its own module (not inside ``follows``) so the dashboard's read models can
show each followed provider's figures without importing the follow use
cases (``follows`` -> ``risk_settings`` -> ``dashboard`` would be a cycle).

- **signals**: the source's signals that reached the followers
  (status ``dispatched``); chatter, stale and rejected messages do not count.
- **round trip**: one ``realized_pnl`` row whose fill belongs to an order
  created for one of the source's signals (entry, bracket legs and close
  signals carry the signal id).  A partial close is its own round trip.
  Manual closes from the Positions page carry no signal and are not
  attributed to any provider.
- **win rate**: round trips with a positive amount / all round trips.
- **average return**: mean realized amount per round trip, in the account
  currency, net of fees (the row's amount is already net).
- **max drawdown**: the largest fall of the cumulative realized P&L series
  (all followers together, ordered by realisation time) from its running
  peak, the peak starting at 0; in the account currency, >= 0.

``since`` narrows both counts to a recent window (signals received, round
trips realised at or after it): the Overview shows the last 30 days next to
each follow, the Providers page the whole history.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlmodel import Session, func, select

from backend.db.models import Fill, Order, RealizedPnl, Signal, SignalStatus

ZERO = Decimal(0)
HUNDRED = Decimal(100)


@dataclass(frozen=True)
class Performance:
    signals: int = 0
    round_trips: int = 0
    wins: int = 0
    win_rate: Decimal | None = None      # percent, None when no round trip yet
    avg_return: Decimal | None = None    # currency per round trip
    total_pnl: Decimal = ZERO
    max_drawdown: Decimal = ZERO


def performance_from(signals: int, amounts: list[Decimal]) -> Performance:
    """The figures above from the source's realized amounts, in realisation order."""
    if not amounts:
        return Performance(signals=signals)
    wins = sum(1 for a in amounts if a > 0)
    cumulative = peak = drawdown = ZERO
    for amount in amounts:
        cumulative += amount
        peak = max(peak, cumulative)
        drawdown = max(drawdown, peak - cumulative)
    total = sum(amounts, ZERO)
    return Performance(signals=signals, round_trips=len(amounts), wins=wins,
                       win_rate=Decimal(wins) * HUNDRED / len(amounts), avg_return=total / len(amounts),
                       total_pnl=total, max_drawdown=drawdown)


def performance_for(session: Session, source_ids: list[int], *,
                    since: datetime | None = None) -> dict[int, Performance]:
    """Performance per source (two queries however many sources), optionally from ``since`` on."""
    if not source_ids:
        return {}
    count_query = (select(Signal.source_id, func.count(Signal.id))
                   .where(Signal.source_id.in_(source_ids), Signal.status == SignalStatus.DISPATCHED.value))
    amount_query = (select(Signal.source_id, RealizedPnl.amount)
                    .join(Fill, Fill.id == RealizedPnl.fill_id)
                    .join(Order, Order.id == Fill.order_id)
                    .join(Signal, Signal.id == Order.signal_id)
                    .where(Signal.source_id.in_(source_ids)))
    if since is not None:
        count_query = count_query.where(Signal.received_at >= since)
        amount_query = amount_query.where(RealizedPnl.realized_at >= since)
    counts = dict(session.exec(count_query.group_by(Signal.source_id)).all())
    rows = session.exec(amount_query.order_by(RealizedPnl.realized_at, RealizedPnl.id)).all()
    amounts: dict[int, list[Decimal]] = defaultdict(list)
    for source_id, amount in rows:
        amounts[source_id].append(amount)
    return {sid: performance_from(counts.get(sid, 0), amounts.get(sid, [])) for sid in source_ids}
