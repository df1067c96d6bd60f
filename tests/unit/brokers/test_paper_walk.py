"""The demo's random walk: it moves every paper quote and fills what the new prices reach."""

from __future__ import annotations

import random
from decimal import Decimal

import pydantic
import pytest

from backend.brokers.paper_walk import walk_paper_quotes
from backend.config import load_settings

from unit.brokers.test_paper_orders import make_broker, order

D = Decimal


class Falling(random.Random):
    """A market that only goes down: every shock is minus one standard deviation."""

    def gauss(self, mu=0.0, sigma=1.0):
        return -1.0


async def test_a_walk_moves_every_quote_and_fills_a_resting_limit_it_reaches(engine, settings_env):
    broker = make_broker(engine)
    await broker.set_quote("AAPL", D("100"))
    await broker.set_quote("MSFT", D("400"))
    resting = await broker.place_order(order("walk-1", order_type="limit", limit_price=D("99.50")))
    assert resting.status == "accepted" or resting.filled_quantity == 0

    moved = walk_paper_quotes(engine, sigma_bps=D("100"), rng=Falling())

    assert moved == {"AAPL": D("99.00"), "MSFT": D("396.00")}
    assert await broker.quote("AAPL") == D("99.00")
    filled = await broker.order_status("walk-1")
    assert (filled.status, filled.filled_quantity) == ("filled", D("10"))
    # the market gapped through the limit: filled at the new quote plus the venue's 5 bps slippage
    assert filled.avg_fill_price == D("99.00") * D("1.0005") <= D("99.50")


async def test_the_walk_is_off_unless_the_setting_turns_it_on(engine, settings_env):
    broker = make_broker(engine)
    await broker.set_quote("AAPL", D("100"))
    assert walk_paper_quotes(engine, rng=Falling()) == {}
    assert await broker.quote("AAPL") == D("100")
    settings_env(paper_random_walk_bps="50")
    assert walk_paper_quotes(engine, rng=Falling()) == {"AAPL": D("99.50")}


@pytest.mark.parametrize("value", ["abc", "-5", "NaN"])
def test_a_bad_paper_setting_stops_start_up_naming_the_variable(tmp_path, monkeypatch, value):
    monkeypatch.setenv("PAPER_RANDOM_WALK_BPS", value)
    with pytest.raises(pydantic.ValidationError, match="PAPER_RANDOM_WALK_BPS must be"):
        load_settings(data_dir=tmp_path)
