"""A broker rejection reaches the member as a DM that says why, in words a trader reads (both databases).

The real path: ``trading.close_position`` sends a reduce-only market order to
the paper broker, which refuses it (no price for the symbol); the order ends
``rejected`` with the broker's reason, the money path writes the
notification, and ``notify.take_pending`` turns it into the DM text the bot
sends.
"""

from __future__ import annotations

from decimal import Decimal

from sqlmodel import Session, select

from backend.db.models import BrokerAccount, Notification, Order, Position, User
from backend.services import notify, trading
from backend.services.demo_seed import seed_demo

ALEX_DISCORD = "640000000000000001"


async def test_a_rejected_order_is_told_with_its_reason_in_plain_words(engine):
    seed_demo(engine)
    with Session(engine, expire_on_commit=False) as s:
        alex = s.exec(select(User).where(User.username == "alex")).one()
        alex.discord_id, alex.dm_enabled = ALEX_DISCORD, True
        account = s.exec(select(BrokerAccount).where(BrokerAccount.user_id == alex.id)).one()
        # A position in a symbol the paper venue has no price for: its close cannot be filled.
        s.add(Position(user_id=alex.id, broker_account_id=account.id, symbol="ZZZQ", quantity=Decimal(5),
                       avg_price=Decimal(20)))
        s.commit()

    result = await trading.close_position(alex.id, account.id, "ZZZQ", 100, request_id="dm-test", engine=engine)

    [order] = result["orders"]
    assert order["status"] == "rejected" and "no price for ZZZQ" in order["error_message"]
    with Session(engine) as s:
        stored = s.exec(select(Order).where(Order.user_id == alex.id, Order.symbol == "ZZZQ")).one()
        [note] = s.exec(select(Notification).where(Notification.user_id == alex.id,
                                                   Notification.kind == "order.rejected")).all()
        assert note.data["order_id"] == stored.id and note.dm_status == notify.PENDING
        pending, _off = notify.take_pending(s)
    [dm] = [d for d in pending if d.notification_id == note.id]
    assert dm.discord_id == ALEX_DISCORD
    title, _, reason = dm.text.partition("\n")
    assert title == "**Order rejected: sell 5 ZZZQ**"
    # The broker's own sentence: what went wrong and why, for a person.
    assert reason.startswith("The paper market has no price for ZZZQ yet") and "limit price" in reason
    assert reason == stored.error_message
    for jargon in ("InvalidSymbol", "order_rejected", "Traceback", "Exception", "{", "None", "set_quote", "("):
        assert jargon not in dm.text
    assert len(dm.text) <= notify.DISCORD_MESSAGE_LIMIT
