"""Which venues take a take-profit ladder as one bracket per target (``Capabilities.split_ladder``).

The split is what keeps a ladder's stop and targets linked at the venue; a
venue left out of it would rest unlinked targets beside a full-size stop.
"""

from __future__ import annotations

from backend.brokers.alpaca import AlpacaAdapter
from backend.brokers.base import Capabilities
from backend.brokers.ibkr import IbkrAdapter
from backend.brokers.paper import PaperBroker


def test_venues_whose_bracket_holds_one_target_split_a_longer_ladder():
    for venue in (AlpacaAdapter, IbkrAdapter):
        caps = venue.capabilities
        assert [caps.split_ladder(n) for n in (1, 2, 3)] == [False, True, True], venue.__name__
        assert not caps.engine_holds_targets()


def test_venues_holding_any_ladder_or_no_brackets_do_not_split():
    assert not any(PaperBroker.capabilities.split_ladder(n) for n in (1, 2, 5))  # any ladder in one bracket
    no_brackets = Capabilities(exits_reserve_quantity=True)  # spot crypto: the engine holds the targets
    assert not no_brackets.split_ladder(3) and no_brackets.engine_holds_targets()
