"""Submission errors: temporary ones retried with exponential backoff, permanent ones never.

The venue here is a tiny fake of OUR ``BrokerAdapter`` interface (not of a
vendor SDK), so a test can make it fail exactly N times, or lose an ack
after storing the order, and count what reached it.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal as D

import pytest
from sqlmodel import Session, select

from backend.brokers.base import (
    AccountInfo, BrokerAdapter, Capabilities, InstrumentInfo, OrderRequest, OrderSnapshot, VenueFill,
)
from backend.db.models import AuditEvent, Order
from backend.errors import InsufficientFunds, OrderNotFound, TemporaryBrokerError
from backend.execution.adapters import Adapters
from backend.execution.runner import dispatch_signal
from backend.execution.seeding import seed_world, store_signal
from backend.signals import Signal

NOW = datetime(2026, 11, 2, 15, 0, tzinfo=timezone.utc)


class FlakyVenue(BrokerAdapter):
    """Fills market orders at 100; fails the first ``failures`` placements with ``error``."""

    name = "flaky"
    capabilities = Capabilities(fractional=True)

    def __init__(self, failures: int = 0, error: Exception | None = None, lose_ack: bool = False) -> None:
        self.failures, self.error, self.lose_ack = failures, error or TemporaryBrokerError("Timed out."), lose_ack
        self.calls = 0
        self.orders: dict[str, OrderSnapshot] = {}

    async def place_order(self, request: OrderRequest) -> OrderSnapshot:
        self.calls += 1
        if request.client_order_id not in self.orders and (self.failures == 0 or self.lose_ack):
            fill = VenueFill(f"F{len(self.orders)}", request.quantity, D(100), D(0), NOW)
            self.orders[request.client_order_id] = OrderSnapshot(
                request.client_order_id, f"B{len(self.orders)}", request.symbol, request.side, request.quantity,
                "filled", request.quantity, D(100), (fill,))
        if self.failures:
            self.failures -= 1
            raise self.error
        return self.orders[request.client_order_id]

    async def order_status(self, client_order_id: str) -> OrderSnapshot:
        if client_order_id not in self.orders:
            raise OrderNotFound("unknown")
        return self.orders[client_order_id]

    async def validate(self) -> AccountInfo:
        return await self.account()

    async def account(self) -> AccountInfo:
        return AccountInfo("fake", "USD", D(100000), D(100000), D(100000))

    async def positions(self):
        return []

    async def instrument(self, symbol: str, asset_class: str = "stock") -> InstrumentInfo:
        return InstrumentInfo(symbol, asset_class, quantity_step=D("0.0001"), fractional=True)

    async def quote(self, symbol: str):
        return D(100)

    async def cancel_order(self, client_order_id: str) -> OrderSnapshot:
        return await self.order_status(client_order_id)

    async def open_orders(self):
        return []

    async def fills_since(self, since):
        return []


class FakeClock:
    def __init__(self) -> None:
        self.now, self.sleeps = NOW, []

    def __call__(self) -> datetime:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += timedelta(seconds=seconds)


BUY = Signal(action="open", symbol="AAPL", asset_class="stock", side="buy")


async def _run(engine, venue: FlakyVenue) -> tuple[Order, FakeClock]:
    with Session(engine, expire_on_commit=False) as s:
        world = seed_world(s)
    signal_id = store_signal(engine, world.source, BUY, message_id="m1", now=NOW)
    clock = FakeClock()
    adapters = Adapters(engine, provider=lambda account, eng: venue)
    await dispatch_signal(engine, adapters, signal_id, now=NOW, sleep=clock.sleep, clock=clock)
    with Session(engine) as s:
        order = s.exec(select(Order).where(Order.leg == "entry")).one()
    return order, clock


async def test_temporary_errors_are_retried_with_backoff_1_2_4(engine, settings_env):
    venue = FlakyVenue(failures=3)
    order, clock = await _run(engine, venue)
    assert clock.sleeps == [1.0, 2.0, 4.0]
    assert venue.calls == 4 and len(venue.orders) == 1
    assert order.status == "filled" and order.attempts == 4 and order.next_attempt_at is None
    with Session(engine) as s:
        retries = s.exec(select(AuditEvent).where(AuditEvent.action == "order.retry_scheduled")).all()
    assert [e.data["attempts"] for e in retries] == [1, 2, 3]


async def test_a_lost_ack_is_retried_without_doubling_the_order(engine, settings_env):
    venue = FlakyVenue(failures=1, lose_ack=True)  # the venue stored the order, then the answer was lost
    order, clock = await _run(engine, venue)
    assert venue.calls == 2 and len(venue.orders) == 1
    assert order.status == "filled" and order.filled_quantity == D(10)


async def test_retries_stop_at_the_configured_maximum(engine, settings_env):
    settings_env(EXECUTION_MAX_RETRIES="3", EXECUTION_BACKOFF_BASE_SECONDS="0.5")
    venue = FlakyVenue(failures=99)
    order, clock = await _run(engine, venue)
    assert clock.sleeps == [0.5, 1.0]
    assert venue.calls == 3
    assert order.status == "failed" and order.error_code == "temporary"
    assert order.error_message == "Gave up after 3 attempts: Timed out."


@pytest.mark.parametrize("error,status,code", [
    (InsufficientFunds("Order needs $1,000.00 but only $10.00 buying power is available."), "rejected",
     "insufficient_funds"),
    (RuntimeError("adapter bug"), "failed", "internal"),
])
async def test_permanent_errors_are_not_retried(engine, settings_env, error, status, code):
    venue = FlakyVenue(failures=1, error=error)
    order, clock = await _run(engine, venue)
    assert venue.calls == 1 and clock.sleeps == []
    assert order.status == status and order.error_code == code
    if status == "rejected":
        assert order.error_message == error.message
