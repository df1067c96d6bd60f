"""Client order ids, take-profit ladders and position keys: the pure pieces of an order intent."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D

from backend.execution.intents import (
    ENTRY, child_order_id, client_order_id, command_order_id, position_key, slice_order_id, split_into_slices,
    split_quantity, split_take_profits,
)


def test_client_order_id_is_deterministic_short_and_distinct_per_leg():
    a = client_order_id(42, 7, "entry")
    assert a == client_order_id(42, 7, "entry")  # a re-run or a recovery gets the same id
    assert a.startswith("dte-") and len(a) == 28  # fits binance (36) and alpaca (48)
    others = {client_order_id(42, 7, "stop"), client_order_id(43, 7, "entry"), client_order_id(42, 8, "entry")}
    assert a not in others and len(others) == 3


def test_bracket_leg_ids_follow_the_entry_and_fit_binance():
    entry = client_order_id(1, 2, "entry")
    assert child_order_id(entry, "stop") == entry + "-sl"
    assert child_order_id(entry, "tp3") == entry + "-tp3"
    assert len(child_order_id(entry, "tp12")) <= 36


def test_command_ids_depend_on_the_request_id():
    assert command_order_id("close", 3, "AAPL", "r1") == command_order_id("close", 3, "AAPL", "r1")
    assert command_order_id("close", 3, "AAPL", "r1") != command_order_id("close", 3, "AAPL", "r2")


def test_even_split_rounds_down_and_gives_the_remainder_to_the_last_target():
    assert split_take_profits(D(10), [D(1), D(2), D(3)], D(1)) == [(D(1), D(3)), (D(2), D(3)), (D(3), D(4))]


def test_configured_allocation_50_30_20():
    parts = split_take_profits(D(100), [D(1), D(2), D(3)], D(1), [D(50), D(30), D(20)])
    assert [q for _, q in parts] == [D(50), D(30), D(20)]


def test_fractional_step_split_adds_up_exactly():
    parts = split_quantity(D("0.1"), 3, D("0.001"))
    assert parts == [D("0.033"), D("0.033"), D("0.034")]
    assert sum(parts) == D("0.1")


def test_targets_too_small_to_split_are_dropped_not_rounded_up():
    assert split_take_profits(D(1), [D(1), D(2), D(3)], D(1)) == [(D(3), D(1))]
    assert split_take_profits(D(0), [D(1)], D(1)) == []


def test_allocation_of_the_wrong_length_falls_back_to_even():
    assert [q for _, q in split_take_profits(D(4), [D(1), D(2)], D(1), [D(50), D(30), D(20)])] == [D(2), D(2)]


def test_option_positions_are_keyed_by_contract_not_underlying():
    assert position_key("SPY", "option", "call", D("450"), date(2026, 11, 17)) == "SPY261117C00450000"
    assert position_key("AAPL", "option", "put", D("187.5"), date(2027, 1, 15)) == "AAPL270115P00187500"
    assert position_key("SPY") == "SPY"
    assert position_key("BTC/USDT", "crypto") == "BTC/USDT"


def test_slices_are_whole_units_rounded_down_and_never_more_than_approved():
    prices = [D(200), D(205), D(210)]
    alloc = [D(50), D(30), D(20)]
    assert split_into_slices(D(10), prices, None, alloc) == [(D(200), D(5)), (D(205), D(3)), (D(210), D(2))]
    # a fractional approval at a fractional venue: whole shares only, the fraction is left out
    assert split_into_slices(D("10.75"), prices, D("0.0001"), alloc) == [(D(200), D(5)), (D(205), D(3)),
                                                                          (D(210), D(2))]
    # 7 shares 50/30/20: 3 and 2 rounded down, the remainder (2) to the last slice
    assert split_into_slices(D(7), prices, D(1), alloc) == [(D(200), D(3)), (D(205), D(2)), (D(210), D(2))]
    # too small for every slice: empty slices are dropped, their share goes to the last
    assert split_into_slices(D(2), prices, None, alloc) == [(D(200), D(1)), (D(210), D(1))]
    assert split_into_slices(D("0.5"), prices, None, alloc) == []


def test_slice_ids_derive_from_the_entry_and_keep_slice_one_as_the_entry():
    entry = client_order_id(7, 3, ENTRY)
    ids = [slice_order_id(entry, n) for n in (1, 2, 3)]
    assert ids[0] == entry and len(set(ids)) == 3
    assert ids == [slice_order_id(entry, n) for n in (1, 2, 3)]  # the same on every run
    assert all(len(child_order_id(i, "tp1")) <= 36 for i in ids)
