"""The demo's moving market: a random walk of every paper quote, then matching.

In the embedded default nothing else moves the paper venue's prices, so a
newcomer's open positions would sit still forever. With
``PAPER_RANDOM_WALK_BPS`` above zero the scheduler moves every quoted symbol
one step (a normal shock of that many basis points) on each tick; resting
limit and stop orders then fill as a real market would fill them, and the
worker's marks carry the new prices to positions and P&L. Off (0) unless
set: the run command turns it on for the demo only.
"""

from __future__ import annotations

import random
from decimal import Decimal

import sqlalchemy as sa

from backend.brokers import paper_store as store
from backend.brokers import paper_venue as venue
from backend.brokers.paper import fill_terms_from_settings
from backend.brokers.paper_rules import random_walk
from backend.config import get_settings

_rng = random.Random()


def walk_paper_quotes(engine: sa.Engine, *, sigma_bps: Decimal | None = None,
                      rng: random.Random | None = None) -> dict[str, Decimal]:
    """Move every paper quote one step and match working orders at the new prices; returns the moves."""
    sigma = Decimal(get_settings().paper_random_walk_bps) if sigma_bps is None else sigma_bps
    if sigma <= 0:
        return {}
    with engine.connect() as conn:
        current = store.read_quotes(conn, None)
    moved = random_walk(current, 1, sigma, rng or _rng)
    if moved:
        venue.match(engine, fill_terms_from_settings(), sorted(moved), moved)
    return moved
