"""Reconciliation through the real Alpaca adapter (alpaca-py) against the loopback Alpaca API.

The account is connected with ``connect_account`` (credentials sealed in the
vault) and every adapter is built by the credentials provider.  Drift is
made at the fake venue itself: it fills a resting order nobody polled,
forgets an order, the member trades by hand, a stop Alpaca holds inside a
bracket (under an id of Alpaca's own) fires.  Also: one account whose keys
were revoked does not stop the others.
"""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import timedelta
from decimal import Decimal as D

import pytest
from sqlmodel import Session, select

from backend import audit
from backend.brokers.credentials import build_provider
from backend.db.models import BrokerAccount, Order, Position, RealizedPnl
from backend.db.types import utcnow
from backend.execution.adapters import Adapters
from backend.execution.seeding import seed_world, trade_through
from backend.reconcile.run import reconcile_all
from backend.services import trading
from backend.services.accounts import connect_account
from fakes.fake_alpaca import FakeAlpaca
from fakes.loopback import serve
from fakes.venue_book import BookOrder, SymbolRule

OPTIONS = {"alpaca": {"requests_per_minute": 100_000, "timeout": 2.0}}


def later():
    return utcnow() + timedelta(minutes=2)


def new_fake() -> FakeAlpaca:
    fake = FakeAlpaca(api_key=f"PK{uuid.uuid4().hex[:14].upper()}", api_secret=f"sec-{uuid.uuid4().hex}")
    fake.book.prices["MSFT"] = D("420")
    fake.book.rules["MSFT"] = SymbolRule(min_quantity=D("0.0001"))
    return fake


async def connect(engine, user_id: int, fake: FakeAlpaca, url: str, label: str = "Alpaca paper") -> int:
    account = await connect_account(engine, user_id, "alpaca", label,
                                    {"api_key": fake.api_key, "api_secret": fake.api_secret}, base_url=url,
                                    adapter_options=OPTIONS["alpaca"])
    return account["id"]


def follow_through(engine, world, account_id: int) -> None:
    """The follower trades through the Alpaca account; the seeded paper account is put away."""
    trade_through(engine, world, account_id)


async def say(engine, world, mid: str, text: str, adapters: Adapters) -> dict:
    return await trading.ingest_discord_message(channel_id=world.source.discord_channel_id, message_id=mid,
                                                content=text, sent_at=utcnow(), engine=engine, adapters=adapters)


def by_hand(fake: FakeAlpaca, symbol: str, side: str, qty: str) -> None:
    """The member trades in Alpaca's own app: an order the product never placed."""
    fake.book.submit(BookOrder(fake.book.new_order_id(), f"app-{uuid.uuid4().hex[:8]}", symbol, side, "market", D(qty)))


def venue_order(fake: FakeAlpaca, client_id: str) -> BookOrder:
    return fake.book.by_client_id(client_id)


def rows(engine, model, *where):
    with Session(engine) as s:
        return s.exec(select(model).where(*where).order_by(model.id)).all()


@pytest.fixture
def world(engine):
    with Session(engine, expire_on_commit=False) as s:
        return seed_world(s)


async def test_drift_at_alpaca_is_repaired_once_and_matches_the_venue(engine, world):
    fake = new_fake()
    async with serve(fake.app()) as url:
        account_id = await connect(engine, world.followers[0].id, fake, url)
        follow_through(engine, world, account_id)
        adapters = Adapters(engine, provider=build_provider(options=OPTIONS))
        await say(engine, world, "m1", "Buy SPY 500", adapters)       # rests
        await say(engine, world, "m2", "Buy AAPL 180", adapters)      # rests, then Alpaca forgets it
        await say(engine, world, "m3", "Buy AAPL 191", adapters)      # marketable: filled, then sold by hand
        spy, lost, aapl = rows(engine, Order, Order.broker_account_id == account_id)
        assert (spy.status, lost.status, aapl.status) == ("submitted", "submitted", "filled")

        fake.book.fill(venue_order(fake, spy.client_order_id).order_id)
        del fake.book.orders[venue_order(fake, lost.client_order_id).order_id]
        by_hand(fake, "AAPL", "sell", "10")
        by_hand(fake, "MSFT", "buy", "3")

        first = await reconcile_all(engine, adapters, clock=later)
        assert not first.failed
        assert Counter(r.kind for r in first.repairs) == Counter(
            {"missed_fill": 1, "order_missing": 1, "position_closed": 1, "unknown_position": 1})
        second = await reconcile_all(engine, adapters, clock=later)
        assert second.repairs == [] and not second.failed

        spy, lost, aapl = rows(engine, Order, Order.broker_account_id == account_id)
        assert (spy.status, spy.filled_quantity, spy.avg_fill_price) == ("filled", D(10), D(500))
        assert lost.status == "cancelled"
        held = {p.symbol: p.quantity for p in rows(engine, Position, Position.broker_account_id == account_id,
                                                   Position.quantity != 0)}
        assert held == {s: q for s, (q, _) in fake.book.positions.items()} == {"SPY": D(10), "MSFT": D(3)}
        [closed] = rows(engine, RealizedPnl, RealizedPnl.symbol == "AAPL", RealizedPnl.fill_id.is_(None))
        assert closed.amount == D(0)  # sold by hand at the price it was bought: priced from the venue's fill
        assert audit.verify(engine).ok
        await adapters.aclose()


async def test_a_stop_alpaca_fires_inside_a_bracket_is_booked_on_our_stop_order(engine, world):
    fake = new_fake()
    async with serve(fake.app()) as url:
        account_id = await connect(engine, world.followers[0].id, fake, url)
        follow_through(engine, world, account_id)
        adapters = Adapters(engine, provider=build_provider(options=OPTIONS))
        await say(engine, world, "m1", "Buy AAPL 191 SL 180 TP 200", adapters)
        entry, stop, tp = rows(engine, Order, Order.broker_account_id == account_id)
        assert (entry.status, stop.status, tp.status) == ("filled", "submitted", "submitted")
        venue_entry = venue_order(fake, entry.client_order_id)
        venue_stop, venue_tp = sorted(venue_entry.legs, key=lambda leg: leg.order_type == "limit")
        fake.book.fill(venue_stop.order_id, price=D("180"))           # the stop fires at Alpaca ...
        assert venue_tp.status == "cancelled"                          # ... and Alpaca cancels its sibling

        # Alpaca's legs are reported under our ids (<entry>-sl / -tp1), so the missed stop
        # fill is booked on our own stop order and the cancelled sibling is mirrored.
        first = await reconcile_all(engine, adapters, clock=later)
        assert [(r.kind, r.subject) for r in first.repairs] == [
            ("missed_fill", f"{entry.client_order_id}-sl"), ("order_status", f"{entry.client_order_id}-tp1")]
        assert (await reconcile_all(engine, adapters, clock=later)).repairs == []
        _, stop, tp = rows(engine, Order, Order.broker_account_id == account_id)
        assert (stop.status, stop.filled_quantity, stop.avg_fill_price) == ("filled", D("10"), D("180"))
        assert tp.status == "cancelled"
        [position] = rows(engine, Position, Position.broker_account_id == account_id)
        assert (position.quantity, position.realized_pnl) == (D(0), (D("180") - D("190.12")) * 10)
        await adapters.aclose()


async def test_a_broken_account_is_isolated_and_recovers(engine, world):
    healthy, revoked = new_fake(), new_fake()
    async with serve(healthy.app()) as url_ok, serve(revoked.app()) as url_bad:
        ok_id = await connect(engine, world.followers[0].id, healthy, url_ok, "healthy")
        bad_id = await connect(engine, world.followers[0].id, revoked, url_bad, "revoked")
        by_hand(healthy, "MSFT", "buy", "2")
        secret, revoked.api_secret = revoked.api_secret, "rotated-by-the-member"
        adapters = Adapters(engine, provider=build_provider(options=OPTIONS))

        report = await reconcile_all(engine, adapters, clock=later)
        assert [a.account_id for a in report.failed] == [bad_id]
        assert "Alpaca rejected the API key" in report.failed[0].error
        assert [(r.account_id, r.kind) for r in report.repairs] == [(ok_id, "unknown_position")]
        with Session(engine) as s:
            bad, ok = s.get(BrokerAccount, bad_id), s.get(BrokerAccount, ok_id)
            assert (bad.status, ok.status) == ("error", "connected")
            assert "Alpaca rejected the API key" in bad.status_message

        revoked.faults.append("server_error")                          # a blip is not a broken account
        revoked.api_secret = secret
        report = await reconcile_all(engine, adapters, account_id=bad_id, clock=later)
        [bad] = rows(engine, BrokerAccount, BrokerAccount.id == bad_id)
        assert report.failed and "will try again" in bad.status_message
        report = await reconcile_all(engine, adapters, clock=later)
        assert not report.failed and report.repairs == []
        assert {a.status for a in rows(engine, BrokerAccount, BrokerAccount.id.in_((ok_id, bad_id)))} == {"connected"}
        assert audit.verify(engine).ok
        await adapters.aclose()
