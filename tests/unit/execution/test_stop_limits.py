"""The limit of a stop sent as a stop-limit, and which venues need it (from capabilities only)."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from backend.brokers.base import Capabilities
from backend.db.models import Order
from backend.execution.brackets import replacement_fields
from backend.execution.stop_limits import sent_order_type, stop_limit_price
from backend.db.types import utcnow

STOP_LIMIT_ONLY = Capabilities(order_types=frozenset({"market", "limit", "stop_limit"}))
BOTH = Capabilities(order_types=frozenset({"market", "limit", "stop", "stop_limit"}))
NEITHER = Capabilities(order_types=frozenset({"market", "limit"}))


@pytest.mark.parametrize("caps, sent", [(STOP_LIMIT_ONLY, "stop_limit"), (BOTH, "stop"), (NEITHER, "stop")])
def test_only_a_venue_without_plain_stops_but_with_stop_limits_converts(caps, sent):
    assert sent_order_type(caps, "stop") == sent
    assert sent_order_type(caps, "limit") == "limit"


@pytest.mark.parametrize("side, stop, tick, bps, limit", [
    ("sell", D("61234.57"), D("0.01"), D(100), D("60622.22")),   # 60622.2243: down, away from the trigger
    ("buy", D("61234.57"), D("0.01"), D(100), D("61846.92")),    # 61846.9157: up
    ("sell", D("100"), D("0.5"), D(25), D("99.5")),               # 99.75 -> 99.5
    ("sell", D("100"), None, D(0), D("100")),
])
def test_the_limit_sits_the_bound_beyond_the_trigger_rounded_away_from_it(side, stop, tick, bps, limit):
    assert stop_limit_price(side, stop, tick, bps) == limit


def test_a_moved_stop_limit_is_planned_as_a_plain_stop_again_and_a_resize_keeps_its_limit():
    old = Order(id=7, client_order_id="s", user_id=1, broker_account_id=1, symbol="BTC/USD", side="sell",
                quantity=D("0.02"), leg="stop", order_type="stop_limit", stop_price=D(60000), limit_price=D(59400),
                asset_class="crypto", reduce_only=True, time_in_force="gtc")
    moved = replacement_fields(old, D("0.02"), now=utcnow(), stop_price=D(61000), tag="be")
    assert (moved["order_type"], moved["stop_price"], moved["limit_price"]) == ("stop", D(61000), None)
    resized = replacement_fields(old, D("0.01"), now=utcnow())
    assert (resized["order_type"], resized["stop_price"], resized["limit_price"]) == (
        "stop_limit", D(60000), D(59400))
