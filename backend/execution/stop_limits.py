"""The engine's stop, sent as a stop-limit where the venue takes no plain stop (Coinbase).

A signal's protective stop is planned as a ``stop``.  A venue whose
capabilities list ``stop_limit`` but not ``stop`` would refuse it, which
leaves the member unprotected; instead the stop goes out as a stop-limit
whose limit sits ``STOP_LIMIT_SLIPPAGE_BPS`` beyond the trigger, against the
position (a long's sell stop: below it), rounded to the market's price tick
away from the trigger, so the limit leaves at least the configured room to
fill in a falling market.  The row then records what was sent
(``order_type`` stop_limit, ``limit_price``), in ``submit._record``.

Decided from capabilities only, at the moment of sending (the tick is the
adapter's current market metadata).  A later move of the stop (breakeven)
starts again from a plain stop (``brackets.replacement_fields``) so its
limit follows the new trigger.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal

from backend.brokers.base import BrokerAdapter, Capabilities, OrderRequest
from backend.config import get_settings
from backend.execution.intents import opposite
from backend.risk import round_price

BPS = Decimal(10000)


def sends_stops_as_stop_limits(caps: Capabilities | None) -> bool:
    """The venue takes stop-limits but no plain stops."""
    return caps is not None and "stop" not in caps.order_types and "stop_limit" in caps.order_types


def sent_order_type(caps: Capabilities | None, order_type: str) -> str:
    """The type an order of ``order_type`` goes out as at a venue with ``caps``."""
    return "stop_limit" if order_type == "stop" and sends_stops_as_stop_limits(caps) else order_type


def stop_limit_price(side: str, stop: Decimal, tick: Decimal | None, bps: Decimal) -> Decimal:
    """The limit of a ``side`` stop-limit triggered at ``stop``: ``bps`` worse, rounded away from the trigger."""
    offset = stop * bps / BPS
    raw = stop - offset if side == "sell" else stop + offset
    # round_price rounds a buy down and a sell up; the limit moves away from the trigger: a sell's down.
    return round_price(raw, tick, opposite(side))


async def as_sent(adapter: BrokerAdapter, request: OrderRequest) -> OrderRequest:
    """``request`` as the venue behind ``adapter`` takes it: a plain stop becomes a stop-limit where needed."""
    if request.order_type != "stop" or not sends_stops_as_stop_limits(adapter.capabilities):
        return request
    info = await adapter.instrument(request.symbol, request.asset_class)
    bps = Decimal(get_settings().stop_limit_slippage_bps)
    limit = stop_limit_price(request.side, request.stop_price, info.price_tick, bps)
    return dataclasses.replace(request, order_type="stop_limit", limit_price=limit)
