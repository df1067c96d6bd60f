"""Signal console state called directly: preview, publish through the real intake, provider-only."""

from __future__ import annotations

from sqlmodel import Session, select

from backend.db.models import Order, Signal
from state.console import NOT_A_SIGNAL, ConsoleState, preview_fields
from webstate import sign_in


def signed_in(db, user) -> ConsoleState:
    state = sign_in(ConsoleState, db, user)
    return state


def test_preview_shows_every_field_or_why_not():
    rows, why = preview_fields("BUY AAPL @ 190 SL 180 TP 200")
    read = {r["field"]: r["value"] for r in rows}
    assert why == "" and read["Symbol"] == "AAPL" and read["Stop loss"] == "180" and read["Take profits"] == "200"
    assert read["Entry prices"] == "190"
    assert preview_fields("anyone think AAPL goes up?") == ([], NOT_A_SIGNAL)
    assert preview_fields("   ") == ([], "")


async def test_provider_publishes_and_followers_get_orders(db, users):
    state = signed_in(db, users["pat"])
    state.load()
    assert state.error == "" and [s["name"] for s in state.sources] == ["Pat's trade calls"]
    state.set_message("BUY AAPL @ 190 SL 180 TP 200")
    assert state.fields and state.explanation == ""
    await state.publish()
    assert state.error == ""
    assert state.result["status"] == "Dispatched"
    assert int(state.result["approved"]) >= 1 and int(state.result["orders"]) >= 1
    with Session(db) as s:
        sig = s.get(Signal, int(state.result["signal_id"]))
        assert sig.source_message_id.startswith("console-")
        assert s.exec(select(Order).where(Order.signal_id == sig.id)).first() is not None


async def test_a_trader_cannot_publish_even_with_the_sources_id(db, users):
    pat = signed_in(db, users["pat"])
    pat.load()
    alex = signed_in(db, users["alex"])
    alex.load()
    assert "not the provider" in alex.error and alex.sources == []
    alex.set_source(pat.source_id)  # a forged choice
    alex.set_message("BUY AAPL @ 190 SL 180 TP 200")
    await alex.publish()
    assert "your own signal sources" in alex.error and alex.result == {}
    with Session(db) as s:
        assert s.exec(select(Signal).where(Signal.source_message_id.like("console-%"))).first() is None


async def test_anonymous_publish_goes_to_login(db):
    state = ConsoleState()
    state.set_message("BUY AAPL")
    assert await state.publish() is not None and state.result == {}
