"""Demo data for the embedded default: one command and every page has something to show.

``seed_demo(engine)`` loads a small, coherent world exactly once (it does
nothing when the demo community already exists): a host who is also a
platform admin and a follower, a signal provider with a Discord channel and
a TradingView endpoint, followers with paper accounts of 100,000 and risk
profiles, subscriptions (so the admin area shows revenue), and one past
signal that was traded end to end (decision, order, events, fill, position)
so the order story has a real example.  Every demo user has ``is_demo`` set:
those are the only accounts the development login offers.

The TradingView demo endpoint is ``POST /webhooks/tradingview/<DEMO_TV_TOKEN>``
with ``DEMO_TV_SECRET`` in the body; only the secret's SHA-256 is stored.

Run it with ``python -m backend.services.demo_seed``.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa
from sqlmodel import Session, select

from backend.db.models import (
    BillingCustomer, BrokerAccount, Community, CommunityRole, EquitySnapshot, Fill, Follow, Membership,
    Notification, Order, OrderEvent, PaperAccount, PaperFill, PaperOrder, PaperPosition, PaperQuote, PlatformRole,
    Position, PositionLot, RiskDecisionRecord, RiskProfileRecord, Signal, SignalSource, SignalStatus, SourceKind,
    Subscription, User,
)
from backend.db.types import utcnow

log = logging.getLogger(__name__)

DEMO_COMMUNITY_SLUG = "demo-trading-club"
DEMO_COMMUNITY_NAME = "Demo Trading Club"
DEMO_DISCORD_CHANNEL_ID = "900000000000000001"
DEMO_TV_TOKEN = "demo-tradingview-token"
DEMO_TV_SECRET = "demo-tradingview-secret"
STARTING_CASH = Decimal("100000")

# (username, display name, platform role, community role, follows the provider)
DEMO_USERS = [
    ("dana", "Dana Host", PlatformRole.ADMIN, CommunityRole.OWNER, True),
    ("pat", "Pat Provider", PlatformRole.USER, CommunityRole.ADMIN, False),
    ("alex", "Alex Trader", PlatformRole.USER, CommunityRole.TRADER, True),
    ("sam", "Sam Swing", PlatformRole.USER, CommunityRole.TRADER, True),
    ("riley", "Riley Crypto", PlatformRole.USER, CommunityRole.VIEWER, True),
]

# (username, provider, plan, amount, interval, status)
DEMO_SUBSCRIPTIONS = [
    ("alex", "stripe", "Pro", Decimal("49"), "month", "active"),
    ("sam", "polar", "Pro yearly", Decimal("490"), "year", "active"),
    ("riley", "stripe", "Basic", Decimal("29"), "month", "canceled"),
]

DEMO_SIGNAL_TEXT = "BTO AAPL @ 190 SL 180 TP 210"


def demo_secret_hash() -> str:
    return hashlib.sha256(DEMO_TV_SECRET.encode()).hexdigest()


def seed_demo(engine: sa.Engine, *, now: datetime | None = None) -> bool:
    """Load the demo world once; returns False (and changes nothing) if it is already there."""
    now = now or utcnow()
    with Session(engine, expire_on_commit=False) as session:
        if session.exec(select(Community.id).where(Community.slug == DEMO_COMMUNITY_SLUG)).first():
            return False
        users = _seed_users(session, now)
        community = _seed_community(session, users, now)
        discord_source, tv_source = _seed_sources(session, community, users["pat"], now)
        accounts = _seed_followers(session, users, discord_source, tv_source, now)
        _seed_billing(session, users, community, now)
        _seed_traded_signal(session, discord_source, users, accounts, now)
        _seed_audit(session, users["dana"], community, now)
        session.commit()
    log.info("demo data loaded: community %r", DEMO_COMMUNITY_NAME)
    return True


def _seed_users(session: Session, now: datetime) -> dict[str, User]:
    users = {}
    for username, name, platform_role, _role, _follows in DEMO_USERS:
        user = User(
            username=username, display_name=name, platform_role=platform_role.value, is_demo=True,
            email=f"{username}@demo.invalid", created_at=now - timedelta(days=30),
        )
        session.add(user)
        users[username] = user
    session.flush()
    return users


def _seed_community(session: Session, users: dict[str, User], now: datetime) -> Community:
    community = Community(
        name=DEMO_COMMUNITY_NAME, slug=DEMO_COMMUNITY_SLUG, owner_id=users["dana"].id,
        created_at=now - timedelta(days=30),
    )
    session.add(community)
    session.flush()
    for username, _name, _platform_role, role, _follows in DEMO_USERS:
        session.add(Membership(community_id=community.id, user_id=users[username].id, role=role.value,
                               joined_at=now - timedelta(days=29)))
    session.flush()
    return community


def _seed_sources(session: Session, community: Community, provider: User, now: datetime):
    discord_source = SignalSource(
        community_id=community.id, provider_id=provider.id, name="Pat's trade calls",
        kind=SourceKind.DISCORD.value, discord_channel_id=DEMO_DISCORD_CHANNEL_ID,
        default_sizing_mode="percent_equity", default_sizing_value=Decimal("2"), created_at=now - timedelta(days=28),
    )
    tv_source = SignalSource(
        community_id=community.id, provider_id=provider.id, name="Pat's TradingView alerts",
        kind=SourceKind.TRADINGVIEW.value, webhook_token=DEMO_TV_TOKEN, webhook_secret_hash=demo_secret_hash(),
        default_sizing_mode="percent_equity", default_sizing_value=Decimal("1"), created_at=now - timedelta(days=28),
    )
    session.add(discord_source)
    session.add(tv_source)
    session.flush()
    return discord_source, tv_source


def _seed_followers(session, users, discord_source, tv_source, now) -> dict[str, BrokerAccount]:
    accounts = {}
    for username, _name, _platform_role, _role, follows in DEMO_USERS:
        if not follows:
            continue
        user = users[username]
        account = BrokerAccount(user_id=user.id, broker="paper", label="Paper account", live=False,
                                created_at=now - timedelta(days=27), last_checked_at=now)
        session.add(account)
        session.flush()
        session.add(PaperAccount(broker_account_id=account.id, cash=STARTING_CASH, created_at=account.created_at))
        # The demo trades around the clock, so market hours are not enforced here.
        session.add(RiskProfileRecord(user_id=user.id, sizing_mode="percent_equity", sizing_value=Decimal("2"),
                                      max_position_notional=Decimal("10000"), max_open_positions=10,
                                      enforce_market_hours=False, daily_loss_limit=Decimal("2000")))
        session.add(Follow(follower_id=user.id, source_id=discord_source.id, broker_account_id=account.id,
                           auto_trade=True, created_at=now - timedelta(days=26)))
        if username in ("riley", "dana"):
            # The README's curl example trades for these two: $500 per alert, auto-trade on.
            session.add(Follow(follower_id=user.id, source_id=tv_source.id, broker_account_id=account.id,
                               auto_trade=True, sizing_mode="fixed_notional", sizing_value=Decimal("500")))
        session.add(EquitySnapshot(broker_account_id=account.id, equity=STARTING_CASH, cash=STARTING_CASH,
                                   taken_at=now - timedelta(days=1)))
        accounts[username] = account
    session.flush()
    return accounts


def _seed_billing(session, users, community, now) -> None:
    for username, provider, plan, amount, interval, status in DEMO_SUBSCRIPTIONS:
        customer = BillingCustomer(user_id=users[username].id, provider=provider,
                                   provider_customer_id=f"demo_cus_{username}")
        session.add(customer)
        session.flush()
        session.add(Subscription(
            customer_id=customer.id, community_id=community.id, provider=provider,
            provider_subscription_id=f"demo_sub_{username}", plan=plan, status=status, amount=amount,
            interval=interval, started_at=now - timedelta(days=20),
            current_period_end=now + timedelta(days=10),
            canceled_at=now - timedelta(days=2) if status == "canceled" else None,
        ))
    session.flush()


def _seed_traded_signal(session, source, users, accounts, now) -> None:
    """One signal, traded by Dana and Alex, so every step of the order story has an example."""
    sent = now - timedelta(hours=3)
    signal = Signal(
        source_id=source.id, source_message_id="demo-message-1", author_id="demo-pat", raw_text=DEMO_SIGNAL_TEXT,
        parsed={"action": "open", "side": "buy", "symbol": "AAPL", "asset_class": "stock", "order_type": "limit",
                "entry_prices": ["190"], "stop_loss": "180", "take_profits": ["210"]},
        action="open", symbol="AAPL", status=SignalStatus.DISPATCHED.value, sent_at=sent, received_at=sent,
    )
    session.add(signal)
    session.add(PaperQuote(symbol="AAPL", price=Decimal("195"), updated_at=now))
    session.flush()
    price, qty = Decimal("190"), Decimal("10")
    for username in ("dana", "alex"):
        user, account = users[username], accounts[username]
        decision = RiskDecisionRecord(
            signal_id=signal.id, follower_id=user.id, broker_account_id=account.id, approved=True, quantity=qty,
            reasons=[{"code": "approved", "message": "2% of 100,000.00 equity at 190.00 = 10 shares"}],
            inputs={"equity": "100000", "price": "190", "sizing_mode": "percent_equity", "sizing_value": "2"},
            created_at=sent,
        )
        session.add(decision)
        session.flush()
        order = Order(
            client_order_id=f"demo-{signal.id}-{user.id}", user_id=user.id, broker_account_id=account.id,
            signal_id=signal.id, decision_id=decision.id, symbol="AAPL", side="buy", order_type="limit",
            quantity=qty, limit_price=price, status="filled", filled_quantity=qty, avg_fill_price=price,
            broker_order_id=f"paper-demo-{user.id}", attempts=1, created_at=sent, updated_at=sent,
            submitted_at=sent, closed_at=sent + timedelta(seconds=1),
        )
        session.add(order)
        session.flush()
        for from_status, to_status, message in (
            (None, "new", "Order intent created from the signal"),
            ("new", "submitted", "Sent to Paper account"),
            ("submitted", "filled", "Filled 10 @ 190.00"),
        ):
            session.add(OrderEvent(order_id=order.id, from_status=from_status, to_status=to_status,
                                   message=message, created_at=sent))
        fill = Fill(order_id=order.id, broker_fill_id=f"paper-fill-demo-{user.id}", quantity=qty, price=price,
                    filled_at=sent)
        session.add(fill)
        paper = session.exec(select(PaperAccount).where(PaperAccount.broker_account_id == account.id)).one()
        paper.cash = STARTING_CASH - qty * price
        paper_order = PaperOrder(paper_account_id=paper.id, client_order_id=order.client_order_id, symbol="AAPL",
                                 side="buy", order_type="limit", quantity=qty, limit_price=price, status="filled",
                                 filled_quantity=qty, avg_fill_price=price, created_at=sent, updated_at=sent)
        session.add(paper_order)
        session.flush()
        session.add(PaperFill(paper_order_id=paper_order.id, symbol="AAPL", side="buy", quantity=qty, price=price,
                              filled_at=sent))
        session.add(PaperPosition(paper_account_id=paper.id, symbol="AAPL", quantity=qty, avg_price=price,
                                  updated_at=sent))  # the venue keeps it with its fills (paper_store)
        position = Position(user_id=user.id, broker_account_id=account.id, symbol="AAPL", quantity=qty,
                            avg_price=price, last_price=Decimal("195"), stop_loss=Decimal("180"),
                            take_profits=["210"], opened_at=sent, updated_at=now)
        session.add(position)
        session.flush()
        session.add(PositionLot(position_id=position.id, quantity=qty, price=price, opened_at=sent))
        session.add(Notification(user_id=user.id, kind="order.filled", title="Bought 10 AAPL @ 190.00",
                                 body=f"From {source.name}: {DEMO_SIGNAL_TEXT}", data={"order_id": order.id},
                                 created_at=sent, dm_status="off"))
    session.flush()


def _seed_audit(session, host, community, now) -> None:
    """Write a few audit events through the real chain (skipped if the audit module is absent)."""
    try:
        from backend.audit import record_many
    except ImportError:  # pragma: no cover - the audit module is part of the product
        return
    record_many(session, [
        {"action": "community.created", "subject_type": "community", "subject_id": community.id,
         "actor_user_id": host.id, "community_id": community.id, "data": {"name": community.name}},
        {"action": "demo.seeded", "actor_user_id": host.id, "community_id": community.id,
         "data": {"users": len(DEMO_USERS)}},
    ])


def main() -> None:
    from backend.db.session import get_engine

    created = seed_demo(get_engine())
    print("demo data loaded" if created else "demo data already present; nothing changed")


if __name__ == "__main__":
    main()
