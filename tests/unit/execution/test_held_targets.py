"""Engine-held take-profits: which targets are held, what waits for what, and the scheduler's job."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from backend.brokers.base import Capabilities
from backend.config import Settings
from backend.db.models import Order
from backend.execution.brackets import holds_in_engine, is_engine_held, waiting_verdict
from backend.execution.held_targets import reached, run_held_targets
from backend.workers.jobs import JOBS, held_targets_job, kept_loop

SPOT = Capabilities(asset_classes=frozenset({"crypto"}), exits_reserve_quantity=True)
ALPACA = Capabilities(native_brackets=True, max_bracket_take_profits=1, exits_reserve_quantity=True)
IBKR = Capabilities(native_brackets=True, max_bracket_take_profits=1)


def _order(**kw) -> Order:
    base = dict(id=5, client_order_id="x-tp1", user_id=1, broker_account_id=1, symbol="BTC/USDT", side="sell",
                quantity=D("0.01"), leg="tp1", order_type="limit", limit_price=D(65000), asset_class="crypto",
                reduce_only=True, status="new", parent_order_id=2, wait_for_order_id=2)
    base.update(kw)
    return Order(**base)


@pytest.mark.parametrize("caps, held", [(SPOT, True), (ALPACA, False), (IBKR, False), (None, False)])
def test_only_venues_that_lock_exits_and_hold_no_brackets_keep_targets_in_the_engine(caps, held):
    assert holds_in_engine(caps, _order()) is held


def test_a_triggered_target_or_a_stop_is_not_held_again():
    assert not holds_in_engine(SPOT, _order(wait_for_order_id=9))      # waits for the stop that makes room
    assert not holds_in_engine(SPOT, _order(wait_for_order_id=None))   # triggered, no stop to shrink
    assert not holds_in_engine(SPOT, _order(leg="stop", order_type="stop", stop_price=D(55000)))


def test_a_held_target_waits_for_itself_until_triggered():
    target = _order(wait_for_order_id=5)
    assert is_engine_held(target) and waiting_verdict(target, target) == "wait"
    assert not is_engine_held(_order(wait_for_order_id=5, status="cancelled"))


@pytest.mark.parametrize("stop_status, verdict", [("submitted", "wait"), ("cancelled", "ready"),
                                                  ("filled", "cancel")])
def test_a_triggered_target_goes_once_the_stop_made_room_and_is_dropped_if_the_stop_filled(stop_status, verdict):
    stop = _order(id=9, leg="stop", order_type="stop", stop_price=D(55000), status=stop_status)
    assert waiting_verdict(_order(wait_for_order_id=9), stop) == verdict


def test_a_sell_target_is_reached_at_or_above_its_price_a_buy_target_at_or_below():
    assert reached(_order(), D(65000)) and reached(_order(), D(65001)) and not reached(_order(), D(64999))
    assert reached(_order(side="buy", limit_price=D(50)), D(50)) and not reached(_order(side="buy", limit_price=D(50)), D(51))


def test_the_job_runs_at_the_configured_interval_and_does_nothing_while_nothing_is_held(engine):
    import asyncio

    [job] = [j for j in JOBS if j.name == "held_targets"]
    assert job.interval(Settings(held_targets_poll_seconds=2)) == 2 and job.interval(Settings()) == 5
    assert asyncio.run(run_held_targets(engine)) is None
    assert held_targets_job(engine) is None and held_targets_job(engine) is None   # on its kept loop, twice
    assert kept_loop("held_targets") is kept_loop("held_targets") and kept_loop("held_targets").is_running()
    with pytest.raises(ValueError, match="HELD_TARGETS_POLL_SECONDS"):
        Settings(held_targets_poll_seconds=0)


def test_two_processes_claiming_the_same_target_at_once_claim_it_once(engine):
    """The claim is a conditional update: the second writer waits for the first, then finds nothing to claim."""
    import threading
    import time

    from sqlmodel import Session

    from backend.db.models.identity import User
    from backend.db.models.trading import BrokerAccount
    from backend.db.types import utcnow
    from backend.execution.held_targets import _claim

    with Session(engine) as s:
        user = User(username="claimer")
        s.add(user)
        s.commit()
        account = BrokerAccount(user_id=user.id, broker="ccxt", label="binance", exchange_id="binance")
        s.add(account)
        s.commit()
        target = _order(id=None, user_id=user.id, broker_account_id=account.id, parent_order_id=None,
                        wait_for_order_id=None)
        s.add(target)
        s.commit()
        target.wait_for_order_id = target.id      # held: waits for itself
        s.add(target)
        s.commit()
        target_id = target.id
    second: dict = {}

    def other_process():
        with Session(engine) as b:
            second["claimed"] = _claim(b, [target_id], utcnow())
            b.commit()

    with Session(engine) as a:
        assert _claim(a, [target_id], utcnow()) == [target_id]
        rival = threading.Thread(target=other_process)
        rival.start()
        time.sleep(0.3)                              # the rival is now waiting on the first one's write
        a.commit()
    rival.join(timeout=10)
    assert second == {"claimed": []}
    with Session(engine) as s:
        assert s.get(Order, target_id).wait_for_order_id is None
