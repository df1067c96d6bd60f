"""What a venue cannot do, decided from its capabilities before anything is sent.

An order the adapter's ``Capabilities`` rule out (an asset class it does not
trade, an order type it lacks, a short sale where it cannot short, a
fractional quantity where it trades whole units) is refused by the engine
with a reason the member can act on, instead of being sent and bounced (or,
worse, half-understood) by the venue.  Only capabilities are consulted,
never the broker's name.  A plain stop at a venue that takes stop-limits
only is not refused: it goes out as a stop-limit (``stop_limits``).
"""

from __future__ import annotations

from backend.brokers.base import Capabilities
from backend.brokers.credentials import spec_for
from backend.db.models import BrokerAccount, Order
from backend.errors import OrderRejected
from backend.execution import intents as legs
from backend.execution.stop_limits import sent_order_type


class UnsupportedByVenue(OrderRejected):
    """The venue cannot take this order at all (from its capabilities); never sent, never retried."""

    code = "unsupported_by_venue"


def venue_name(account: BrokerAccount) -> str:
    return account.exchange_id.title() if account.exchange_id else spec_for(account.broker).title


def opens_short(order: Order) -> bool:
    """An entry that sells without reducing a position opens (or adds to) a short."""
    return order.leg == legs.ENTRY and order.side == "sell" and not order.reduce_only


def refusal(caps: Capabilities, order: Order, venue: str) -> UnsupportedByVenue | None:
    """Why ``venue`` (as the member knows it) cannot take ``order``, or None if it can."""
    if order.asset_class not in caps.asset_classes:
        kinds = ", ".join(sorted(caps.asset_classes))
        return UnsupportedByVenue(f"{venue} does not trade {order.asset_class} instruments (only {kinds}), "
                                  f"so this {order.symbol} order was not sent.")
    if sent_order_type(caps, order.order_type) not in caps.order_types:
        kinds = ", ".join(sorted(caps.order_types))
        return UnsupportedByVenue(f"{venue} does not take {order.order_type.replace('_', '-')} orders "
                                  f"(it takes {kinds}), so this {order.symbol} order was not sent.")
    if opens_short(order) and not caps.short_selling:
        return UnsupportedByVenue(f"{venue} does not allow short selling through this account, so the short "
                                  f"entry on {order.symbol} was not sent.")
    if not caps.fractional and order.quantity != order.quantity.to_integral_value():
        return UnsupportedByVenue(f"{venue} trades whole units only, so the order for {order.quantity} "
                                  f"{order.symbol} was not sent.")
    return None
