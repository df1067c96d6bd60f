"""Take-profit ladders at venues whose native bracket holds ONE take-profit (Alpaca, IBKR).

``capabilities.max_bracket_take_profits == 1``: the ladder goes out as one
bracket per target (``capabilities.split_ladder``, ``brackets.add_slices``),
each slice's stop sharing its quantity with its target.

* Alpaca (``exits_reserve_quantity``): open sells hold their shares, so
  targets beside a full-size stop would be refused (403 "insufficient qty
  available", which the fake answers), and a close waits for the cancels
  that free its shares.
* IBKR: open sells hold nothing, so targets beside a full-size stop would be
  accepted, but nothing at IB would link them: a whipsaw that triggers the
  stop and then a resting target would leave the account short.  In one
  bracket per slice IB cancels a slice's other leg when one fills.

The real SDKs talk to their loopback fakes; the legs are filled the way the
venue would fill them.
"""

from __future__ import annotations

import contextlib
import uuid
from decimal import Decimal as D

from types import SimpleNamespace

from sqlmodel import Session, select

from backend.brokers.credentials import build_provider
from backend.db.models import Follow, Order, Position
from backend.db.types import utcnow
from backend.execution.adapters import Adapters
from backend.execution.intents import client_order_id, slice_order_id
from backend.execution.runner import recover
from backend.execution.seeding import connect_followed, seed_world
from backend.services import trading
from fakes.fake_alpaca import FakeAlpaca
from fakes.fake_ibkr import FakeIbGateway
from fakes.loopback import serve

def rows(engine) -> dict[str, Order]:
    with Session(engine) as s:
        return {o.leg: o for o in s.exec(select(Order).order_by(Order.id))}


def held(engine) -> D:
    with Session(engine) as s:
        pos = s.exec(select(Position)).first()
        return pos.quantity if pos else D(0)


def by_cid(engine) -> dict[str, Order]:
    with Session(engine) as s:
        return {o.client_order_id: o for o in s.exec(select(Order).order_by(Order.id))}


def legs_of(fake: FakeAlpaca, entry_cid: str) -> dict[str, object]:
    """The live venue legs of one slice's bracket, by type (a replaced leg followed to its replacement)."""
    out = {}
    for leg in fake.book.by_client_id(entry_cid).legs:
        while leg.replaced_by:
            leg = fake.book.get(leg.replaced_by)
        out[leg.order_type] = leg
    return out


def ladder_world(engine):
    """A follower trading 10 shares a signal, with a 50/30/20 take-profit allocation."""
    with Session(engine, expire_on_commit=False) as s:
        world = seed_world(s, profile={"sizing_value": D(10)})
        s.get(Follow, world.follows[0].id).tp_allocation = ["50", "30", "20"]
        s.commit()
    return world


async def send_ladder(engine, world, adapters) -> list[Order]:
    """The provider's three-target signal; the venue takes it as three filled slices of 5/3/2."""
    result = await trading.ingest_discord_message(
        channel_id=world.source.discord_channel_id, message_id="ladder-3", sent_at=utcnow(),
        content="Buy AAPL 191 SL 180 TP 200 TP 205 TP 210", engine=engine, adapters=adapters)
    assert (result["approved"], result["orders_submitted"]) == (1, 3)  # three entries, legs held with them
    with Session(engine) as s:
        entries = [o for o in s.exec(select(Order).order_by(Order.id)).all() if o.leg == "entry"]
    assert [(e.status, e.quantity, e.filled_quantity) for e in entries] == \
        [("filled", D(5), D(5)), ("filled", D(3), D(3)), ("filled", D(2), D(2))]
    return entries


@contextlib.asynccontextmanager
async def alpaca_ladder(engine):
    """A follower at a loopback Alpaca whose 50/30/20 ladder of 10 shares has filled as three slices (5/3/2)."""
    world = ladder_world(engine)
    fake = FakeAlpaca(api_key=f"PKL{uuid.uuid4().hex[:13].upper()}", api_secret="ladder-secret")
    async with serve(fake.app()) as url:  # the account's rate bucket is made by the first adapter: unthrottled
        account = await connect_followed(engine, world, "alpaca", "Alpaca paper",
                                         {"api_key": fake.api_key, "api_secret": fake.api_secret}, base_url=url,
                                         adapter_options={"requests_per_minute": 100_000})
        adapters = Adapters(engine, provider=build_provider(options={"alpaca": {"requests_per_minute": 100_000}}))
        try:
            entries = await send_ladder(engine, world, adapters)
            yield SimpleNamespace(fake=fake, account=account["id"], adapters=adapters, user=world.followers[0].id,
                                  entries=entries)
        finally:
            await adapters.aclose()


async def test_an_alpaca_ladder_goes_out_as_one_bracket_per_target(engine):
    """50/30/20 of 10 shares: three brackets of 5/3/2; TP1 ends its slice only; breakeven; close-all."""
    async with alpaca_ladder(engine) as world:
        fake, adapters, user, entries = world.fake, world.adapters, world.user, world.entries
        with Session(engine) as s:
            orders = s.exec(select(Order).order_by(Order.id)).all()
        with Session(engine) as s:  # derived from signal, follower and slice: a re-run writes the same ids
            signal_id = s.exec(select(Order.signal_id)).first()
        first_id = client_order_id(signal_id, user, "entry")
        assert [e.client_order_id for e in entries] == [slice_order_id(first_id, n) for n in (1, 2, 3)]
        kids = {(o.parent_order_id, o.leg): o for o in orders if o.leg != "entry"}
        for n, (entry, price) in enumerate(zip(entries, (D(200), D(205), D(210))), start=1):
            stop, tp = kids[(entry.id, "stop")], kids[(entry.id, f"tp{n}")]
            assert (stop.status, stop.quantity, stop.stop_price) == ("submitted", entry.quantity, D(180))
            assert (tp.status, tp.quantity, tp.limit_price) == ("submitted", entry.quantity, price)
            assert (stop.client_order_id, tp.client_order_id) == (f"{entry.client_order_id}-sl",
                                                                  f"{entry.client_order_id}-tp1")
            venue = fake.book.by_client_id(entry.client_order_id)
            assert venue.order_class == "bracket" and venue.quantity == entry.quantity
            assert {k: (v.quantity, v.limit_price or v.stop_price, v.status)
                    for k, v in legs_of(fake, entry.client_order_id).items()} == \
                {"limit": (entry.quantity, price, "open"), "stop": (entry.quantity, D(180), "open")}
        assert held(engine) == fake.book.positions["AAPL"][0] == D(10)
        assert fake.book.available_to_close("AAPL", "sell") == 0  # every share is held by a slice

        # TP1 fills at the venue: Alpaca cancels slice 1's stop; slices 2 and 3 keep both legs whole.
        first, second, third = entries
        fake.book.fill(legs_of(fake, first.client_order_id)["limit"].order_id)
        await recover(engine, adapters)
        now = by_cid(engine)
        assert now[f"{first.client_order_id}-tp1"].status == "filled"
        assert now[f"{first.client_order_id}-sl"].status == "cancelled"
        for e in (second, third):
            assert [(now[f"{e.client_order_id}-{x}"].status, now[f"{e.client_order_id}-{x}"].quantity)
                    for x in ("sl", "tp1")] == [("submitted", e.quantity)] * 2
            assert {v.status for v in legs_of(fake, e.client_order_id).values()} == {"open"}
        assert held(engine) == fake.book.positions["AAPL"][0] == D(5)
        with Session(engine) as s:
            pos = s.exec(select(Position)).one()
            assert (pos.avg_price, pos.realized_pnl) == (D("190.12"), (D(200) - D("190.12")) * 5)

        # Stop to breakeven: each remaining slice's stop leg is replaced at the venue.
        moved = await trading.move_stop(user, world.account, "AAPL", engine=engine, adapters=adapters)
        assert moved["orders_changed"] == 2
        for e in (second, third):
            stop = legs_of(fake, e.client_order_id)["stop"]
            assert (stop.stop_price, stop.quantity, stop.status) == (D("190.12"), e.quantity, "open")
            row = by_cid(engine)[f"{e.client_order_id}-sl"]
            assert (row.status, row.stop_price) == ("submitted", D("190.12"))

        # Close 40 % (2 of 5): the newest slice gives way whole first, so the close finds its shares free.
        part = await trading.close_position(user, world.account, "AAPL", 40, engine=engine, adapters=adapters)
        assert [(o["leg"], o["status"], o["filled_quantity"]) for o in part["orders"]] == [("close", "filled", D(2))]
        now = by_cid(engine)
        assert {now[f"{third.client_order_id}-{x}"].status for x in ("sl", "tp1")} == {"cancelled"}
        assert [now[f"{second.client_order_id}-{x}"].status for x in ("sl", "tp1")] == ["submitted"] * 2
        assert {v.status for v in legs_of(fake, second.client_order_id).values()} == {"open"}
        assert held(engine) == fake.book.positions["AAPL"][0] == D(3)

        # Close-all: the slices' legs are cancelled first, then one market sell of what is left.
        closed = await trading.close_position(user, world.account, "AAPL", engine=engine, adapters=adapters)
        [close] = closed["orders"]
        assert (close["status"], close["filled_quantity"]) == ("filled", D(3))
        final = by_cid(engine)
        for e in (second, third):
            assert {final[f"{e.client_order_id}-{x}"].status for x in ("sl", "tp1")} == {"cancelled"}
            assert {v.status for v in legs_of(fake, e.client_order_id).values()} == {"cancelled"}
        assert held(engine) == D(0) and "AAPL" not in fake.book.positions
        assert not [o for o in final.values() if o.status in ("rejected", "failed")]
    assert fake.refused == []  # no 403 "insufficient qty available" anywhere
    assert all(isinstance(o.quantity, D) for o in final.values())


async def _fill_tp1(engine, world) -> None:
    """TP1 fills: slice 1 ends, 5 shares are left in slices 2 (3) and 3 (2), each fully held by its legs."""
    first = world.entries[0]
    world.fake.book.fill(legs_of(world.fake, first.client_order_id)["limit"].order_id)
    await recover(engine, world.adapters)
    assert held(engine) == world.fake.book.positions["AAPL"][0] == D(5)


def _posted(fake: FakeAlpaca, client_order_id: str) -> int:
    return sum(1 for method, path, body in fake.requests
               if (method, path) == ("POST", "/v2/orders") and body.get("client_order_id") == client_order_id)


def _leg_rows(engine, entry) -> set[str]:
    now = by_cid(engine)
    return {now[f"{entry.client_order_id}-{x}"].status for x in ("sl", "tp1")}


async def test_an_alpaca_close_waits_for_the_cancels_alpaca_confirms_later(engine):
    """Alpaca cancels asynchronously: a close goes out only once the legs holding its shares are cancelled."""
    async with alpaca_ladder(engine) as world:
        fake, adapters, user = world.fake, world.adapters, world.user
        _first, second, third = world.entries
        await _fill_tp1(engine, world)
        fake.cancel_mode = fake.replace_mode = "pending"

        # Stop to breakeven while Alpaca confirms replaces later: the rows follow the new orders throughout.
        moved = await trading.move_stop(user, world.account, "AAPL", engine=engine, adapters=adapters)
        assert moved["orders_changed"] == 2 and len(fake.pending_replaces) == 2
        await recover(engine, adapters)  # a poll while the old stops are pending_replace changes nothing
        assert [(by_cid(engine)[f"{e.client_order_id}-sl"].status, by_cid(engine)[f"{e.client_order_id}-sl"].quantity)
                for e in (second, third)] == [("submitted", e.quantity) for e in (second, third)]
        assert len(fake.complete_replaces()) == 2
        await recover(engine, adapters)
        for e in (second, third):
            row = by_cid(engine)[f"{e.client_order_id}-sl"]
            assert (row.status, row.stop_price, row.quantity) == ("submitted", D("190.12"), e.quantity)
            venue_stop = legs_of(fake, e.client_order_id)["stop"]
            assert (venue_stop.stop_price, venue_stop.quantity, venue_stop.status) == (D("190.12"), e.quantity, "open")

        # Close 40 % (2 of 5): slice 3's legs are being cancelled, still hold their 2 shares: the close waits.
        part = await trading.close_position(user, world.account, "AAPL", 40, request_id="part", engine=engine,
                                            adapters=adapters)
        [close] = part["orders"]
        assert (close["leg"], close["status"], close["quantity"]) == ("close", "new", D(2))
        assert {v.order_id for v in legs_of(fake, third.client_order_id).values()} == set(fake.pending_cancels)
        assert {fake.render_order(v)["status"] for v in legs_of(fake, third.client_order_id).values()} == \
            {"pending_cancel"}
        await recover(engine, adapters)  # polls: still pending, the close still waits
        assert by_cid(engine)[close["client_order_id"]].status == "new" and _leg_rows(engine, third) == {"submitted"}
        assert _posted(fake, close["client_order_id"]) == 0

        assert len(fake.complete_cancels()) == 2
        await recover(engine, adapters)  # the poll sees them cancelled: the close is released and sent
        now = by_cid(engine)[close["client_order_id"]]
        assert (now.status, now.quantity, now.filled_quantity) == ("filled", D(2), D(2))
        assert _leg_rows(engine, third) == {"cancelled"} and _leg_rows(engine, second) == {"submitted"}
        assert held(engine) == fake.book.positions["AAPL"][0] == D(3)

        # Close-all: slice 2's legs confirm after two reads each (the worker's polls); one sell of the 3 left.
        fake.cancel_after_reads = 2
        closed = await trading.close_position(user, world.account, "AAPL", request_id="all", engine=engine,
                                              adapters=adapters)
        [close_all] = closed["orders"]
        assert close_all["status"] == "new"
        for _ in range(3):
            await recover(engine, adapters)
        final = by_cid(engine)
        assert (final[close_all["client_order_id"]].status, final[close_all["client_order_id"]].filled_quantity) \
            == ("filled", D(3))
        assert _leg_rows(engine, second) == {"cancelled"} and not fake.pending_cancels
        assert held(engine) == D(0) and "AAPL" not in fake.book.positions
        assert [_posted(fake, c["client_order_id"]) for c in (close, close_all)] == [1, 1]  # never two closes
        assert not [o for o in final.values() if o.status in ("rejected", "failed")]
    assert fake.refused == []  # no 403 "insufficient qty available"


async def test_an_alpaca_leg_that_fills_instead_of_cancelling_leaves_nothing_to_oversell(engine):
    """The target (then the stop) fills while its cancel is pending: the close it made room for is dropped."""
    async with alpaca_ladder(engine) as world:
        fake, adapters, user = world.fake, world.adapters, world.user
        _first, second, third = world.entries
        await _fill_tp1(engine, world)
        fake.cancel_mode = "pending"

        part = await trading.close_position(user, world.account, "AAPL", 40, request_id="part", engine=engine,
                                            adapters=adapters)
        [close] = part["orders"]
        fake.book.fill(legs_of(fake, third.client_order_id)["limit"].order_id)  # TP3 sells the 2 shares first
        assert fake.complete_cancels() == []  # Alpaca already cancelled the stop (one-cancels-other)
        await recover(engine, adapters)
        now = by_cid(engine)
        assert (now[close["client_order_id"]].status, now[f"{third.client_order_id}-tp1"].status) == \
            ("cancelled", "filled")
        assert _posted(fake, close["client_order_id"]) == 0
        assert held(engine) == fake.book.positions["AAPL"][0] == D(3) and _leg_rows(engine, second) == {"submitted"}

        closed = await trading.close_position(user, world.account, "AAPL", request_id="all", engine=engine,
                                              adapters=adapters)
        [close_all] = closed["orders"]
        fake.book.fill(legs_of(fake, second.client_order_id)["stop"].order_id)  # the stop triggers meanwhile
        await recover(engine, adapters)
        final = by_cid(engine)
        assert final[close_all["client_order_id"]].status == "cancelled"
        assert _posted(fake, close_all["client_order_id"]) == 0
        assert held(engine) == D(0) and "AAPL" not in fake.book.positions  # flat, not short
        assert not [o for o in final.values() if o.status in ("rejected", "failed")]
    assert fake.refused == []


def ib_legs(gateway: FakeIbGateway, entry_cid: str) -> dict[str, object]:
    """One slice's bracket at the gateway: the entry and its child legs, by IB order type."""
    entry = next(o for o in gateway.orders.values() if o.order_ref == entry_cid)
    out = {"entry": entry}
    out.update({o.order_type: o for o in gateway.orders.values() if o.parent_id == entry.order_id})
    return out


@contextlib.asynccontextmanager
async def ib_ladder(engine):
    """A follower at a loopback IB Gateway whose 50/30/20 ladder of 10 shares has filled as three slices (5/3/2)."""
    options = {"timeout": 3, "ack_timeout": 2, "requests_per_minute": 100_000}
    gateway = FakeIbGateway()
    await gateway.start()
    try:
        world = ladder_world(engine)
        account = await connect_followed(engine, world, "ibkr", "IBKR paper",
                                         {"host": "127.0.0.1", "port": str(gateway.port), "client_id": "21",
                                          "account": gateway.account}, adapter_options=options)
        adapters = Adapters(engine, provider=build_provider(options={"ibkr": options}))
        try:
            entries = await send_ladder(engine, world, adapters)
            yield SimpleNamespace(gateway=gateway, account=account["id"], adapters=adapters,
                                  user=world.followers[0].id, entries=entries)
        finally:
            await adapters.aclose()
    finally:
        await gateway.stop()


def _ib_short_anywhere(engine, gateway: FakeIbGateway) -> bool:
    return held(engine) < 0 or gateway.positions.get("AAPL", (D(0), D(0)))[0] < 0


async def test_an_ibkr_ladder_goes_out_as_one_bracket_per_target_and_survives_a_whipsaw(engine):
    """Three IB brackets of 5/3/2; TP1 ends its slice only; then the price falls through the stop and comes
    back: each triggered stop cancels its slice's target at IB, so no target is left to sell shares not held."""
    async with ib_ladder(engine) as world:
        gateway, adapters, entries = world.gateway, world.adapters, world.entries
        with Session(engine) as s:
            orders = s.exec(select(Order).order_by(Order.id)).all()
        kids = {(o.parent_order_id, o.leg): o for o in orders if o.leg != "entry"}
        for n, (entry, price) in enumerate(zip(entries, (D(200), D(205), D(210))), start=1):
            stop, tp = kids[(entry.id, "stop")], kids[(entry.id, f"tp{n}")]
            assert (stop.status, stop.quantity, stop.stop_price) == ("submitted", entry.quantity, D(180))
            assert (tp.status, tp.quantity, tp.limit_price) == ("submitted", entry.quantity, price)
            venue = ib_legs(gateway, entry.client_order_id)
            assert sorted(venue) == ["LMT", "STP", "entry"]  # each slice is one bracket: parent + two attached legs
            assert (venue["entry"].order_type, venue["entry"].quantity, venue["entry"].status) == \
                ("LMT", entry.quantity, "Filled")  # the signal's entry at 191, marketable at 190.12
            assert (venue["LMT"].quantity, venue["LMT"].limit_price, venue["LMT"].order_ref) == \
                (entry.quantity, price, tp.client_order_id)
            assert (venue["STP"].quantity, venue["STP"].aux_price, venue["STP"].order_ref) == \
                (entry.quantity, D(180), stop.client_order_id)
            assert {venue["LMT"].status, venue["STP"].status} == {"Submitted"}
        assert held(engine) == gateway.positions["AAPL"][0] == D(10)

        first, second, third = entries
        await gateway.push_fill(ib_legs(gateway, first.client_order_id)["LMT"].order_id)  # TP1 at 200
        await recover(engine, adapters)
        now = by_cid(engine)
        assert (now[f"{first.client_order_id}-tp1"].status, now[f"{first.client_order_id}-sl"].status) == \
            ("filled", "cancelled")
        assert ib_legs(gateway, first.client_order_id)["STP"].status == "Cancelled"  # IB's one-cancels-other
        for e in (second, third):
            assert {ib_legs(gateway, e.client_order_id)[t].status for t in ("LMT", "STP")} == {"Submitted"}
        assert held(engine) == gateway.positions["AAPL"][0] == D(5)

        # The whipsaw: the price falls through 180 (both stops trigger), then rallies through 205 and 210.
        for e in (second, third):
            await gateway.push_fill(ib_legs(gateway, e.client_order_id)["STP"].order_id, price=D(179))
        for e in (second, third):
            legs_now = ib_legs(gateway, e.client_order_id)
            assert (legs_now["STP"].status, legs_now["LMT"].status) == ("Filled", "Cancelled")
            assert not legs_now["LMT"].working  # nothing left at IB that the rally could fill
        await recover(engine, adapters)
        final = by_cid(engine)
        for e in (second, third):
            assert (final[f"{e.client_order_id}-sl"].status, final[f"{e.client_order_id}-sl"].filled_quantity) == \
                ("filled", e.quantity)
            assert final[f"{e.client_order_id}-tp1"].status == "cancelled"
        assert held(engine) == gateway.positions["AAPL"][0] == D(0)
        assert not _ib_short_anywhere(engine, gateway)
        assert not [o for o in final.values() if o.status in ("rejected", "failed")]
        with Session(engine) as s:
            pos = s.exec(select(Position)).one()
            # bought at the limit 191 (the fake fills a marketable limit at its price), $1 a fill (six fills)
            assert pos.realized_pnl == (D(200) - D(191)) * 5 + (D(179) - D(191)) * 5 - 6 * D(1)


async def test_an_ibkr_ladder_moves_its_stops_and_closes_all_in_one_sell(engine):
    """After TP1: stop to breakeven modifies each remaining slice's stop at IB; close-all sells what is left
    once, and the slices' legs are cancelled at IB (none left to fill after the position is flat)."""
    async with ib_ladder(engine) as world:
        gateway, adapters, user, entries = world.gateway, world.adapters, world.user, world.entries
        first, second, third = entries
        await gateway.push_fill(ib_legs(gateway, first.client_order_id)["LMT"].order_id)
        await recover(engine, adapters)
        assert held(engine) == gateway.positions["AAPL"][0] == D(5)

        moved = await trading.move_stop(user, world.account, "AAPL", engine=engine, adapters=adapters)
        assert moved["orders_changed"] == 2
        for e in (second, third):
            row = by_cid(engine)[f"{e.client_order_id}-sl"]
            assert (row.status, row.stop_price, row.quantity) == ("submitted", D(191), e.quantity)
            working = [o for o in gateway.orders.values() if o.order_type == "STP" and o.working
                       and o.order_ref.startswith(e.client_order_id)]
            assert [(o.aux_price, o.quantity) for o in working] == [(D(191), e.quantity)]  # one stop each

        closed = await trading.close_position(user, world.account, "AAPL", engine=engine, adapters=adapters)
        [close] = closed["orders"]
        for _ in range(2):
            await recover(engine, adapters)
        final = by_cid(engine)
        assert (final[close["client_order_id"]].status, final[close["client_order_id"]].filled_quantity) == \
            ("filled", D(5))
        assert held(engine) == gateway.positions["AAPL"][0] == D(0)
        assert not [o for o in gateway.orders.values() if o.working]  # no leg left at IB
        for e in (second, third):
            assert {final[f"{e.client_order_id}-{x}"].status for x in ("sl", "tp1")} == {"cancelled"}
        assert not [o for o in final.values() if o.status in ("rejected", "failed")]
