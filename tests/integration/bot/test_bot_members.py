"""Member use cases and the slash-command bodies, without Discord, on SQLite and Postgres."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlmodel import Session, select

from backend.bot import commands
from backend.db.models import AuditEvent, CommunityRole, DiscordLinkCode, Follow, Position, RealizedPnl, User
from backend.db.types import utcnow
from backend.errors import NotFound, PermissionDenied, ValidationError
from backend.services import follows, members

GUILD_ID = "510000000000000001"  # the world fixture's guild (tests/integration/bot/conftest.py)
STRANGER_DISCORD = "530000000000000009"


def _code_for(engine, user_id: int, **kw) -> str:
    with Session(engine, expire_on_commit=False) as s:
        code = members.create_link_code(s, user_id, **kw).code
        s.commit()
    return code


@pytest.fixture
def new_user(engine, add_member):
    def make(name: str, role: str = CommunityRole.TRADER.value, community_id: int | None = None,
             discord_id: str | None = None) -> int:
        return _new_user(engine, add_member, name, role, community_id, discord_id)
    return make


def _new_user(engine, add_follower, name: str, role: str, community_id: int | None, discord_id: str | None) -> int:
    with Session(engine, expire_on_commit=False) as s:
        if community_id is None:
            user = User(username=name, discord_id=discord_id)
            s.add(user)
        else:
            user, _ = add_follower(s, community_id, None, username=name, discord_id=discord_id, role=role)
        s.commit()
        return user.id


def _position(engine, world, symbol="AAPL", qty="10", avg="100", last="110") -> None:
    with Session(engine) as s:
        s.add(Position(user_id=world.follower_id, broker_account_id=world.account_id, symbol=symbol,
                       quantity=Decimal(qty), avg_price=Decimal(avg), last_price=Decimal(last)))
        s.commit()


# ------------------------------------------------------------------ /link
def test_link_code_joins_accounts_once(engine, world, new_user):
    user_id = new_user("newbie")
    code = _code_for(engine, user_id)
    assert len(code) == members.LINK_CODE_LENGTH

    reply = commands.link(engine, STRANGER_DISCORD, GUILD_ID, code.lower())
    assert reply.startswith("✅ Linked") and "Newbie" not in reply and "newbie" in reply
    with Session(engine) as s:
        assert s.get(User, user_id).discord_id == STRANGER_DISCORD
        assert s.get(DiscordLinkCode, code).used_at is not None
        assert s.exec(select(AuditEvent).where(AuditEvent.action == "member.discord_linked")).one()

    again = commands.link(engine, STRANGER_DISCORD, GUILD_ID, code)
    assert again.startswith(commands.REFUSED) and "unknown, used or expired" in again


def test_link_refuses_expired_unknown_and_taken(engine, world, new_user):
    user_id = new_user("late")
    expired = _code_for(engine, user_id, now=utcnow() - timedelta(hours=1))
    assert "expired" in commands.link(engine, STRANGER_DISCORD, None, expired)
    assert "expired" in commands.link(engine, STRANGER_DISCORD, None, "NOPE1234")
    fresh = _code_for(engine, user_id)
    with Session(engine) as s:  # a new code replaces the old unused one
        assert s.get(DiscordLinkCode, expired) is None
    taken = commands.link(engine, world.follower_discord, None, fresh)  # that Discord id belongs to Alex
    assert taken.startswith(commands.REFUSED) and "already linked to another" in taken
    with Session(engine) as s, pytest.raises(PermissionDenied):
        members.redeem_link_code(s, world.follower_discord, fresh)


def test_unlinked_member_is_refused_clearly_everywhere(engine, world):
    for body in (commands.status, commands.positions, commands.pnl, commands.pause):
        reply = body(engine, STRANGER_DISCORD, GUILD_ID)
        assert reply.startswith(commands.REFUSED) and "/link" in reply, body.__name__
    assert "/link" in commands.follow(engine, STRANGER_DISCORD, GUILD_ID, "Pat Calls")
    with Session(engine) as s, pytest.raises(members.NotLinked):
        members.user_for_discord(s, STRANGER_DISCORD)


# ------------------------------------------------------------------ reading
def test_status_positions_and_pnl(engine, world):
    _position(engine, world)
    with Session(engine) as s:
        s.add(RealizedPnl(user_id=world.follower_id, broker_account_id=world.account_id, symbol="MSFT",
                          amount=Decimal("25.50")))
        s.commit()
    status = commands.status(engine, world.follower_discord, GUILD_ID)
    assert "Paper account (paper) connected" in status and "Auto-trade: ON" in status and "Pat Calls (on)" in status
    assert "Risk state: ACTIVE" in status

    positions = commands.positions(engine, world.follower_discord, GUILD_ID)
    assert "AAPL: long 10 @ $100.00, last $110.00, P&L +$100.00" in positions
    with Session(engine) as s:
        assert [p.symbol for p in members.open_positions(s, world.follower_id)] == ["AAPL"]
        totals = members.pnl_summary(s, world.follower_id)
    assert totals.total_pnl == Decimal("125.50") and totals.unrealized_pnl == Decimal("100")
    pnl = commands.pnl(engine, world.follower_discord, GUILD_ID)
    assert "total +$125.50" in pnl and "realised +$25.50" in pnl


def test_no_positions_is_said_plainly(engine, world):
    assert commands.positions(engine, world.follower_discord, GUILD_ID) == "No open positions."


# ------------------------------------------------------------------ changing
def test_pause_and_resume_all_or_one_provider(engine, world):
    assert "paused for every provider" in commands.pause(engine, world.follower_discord, GUILD_ID)
    assert "already paused" in commands.pause(engine, world.follower_discord, GUILD_ID)
    with Session(engine) as s:
        assert s.exec(select(Follow.auto_trade).where(Follow.follower_id == world.follower_id)).all() == [False]
    assert "resumed for Pat Calls" in commands.resume(engine, world.follower_discord, GUILD_ID, "pat calls")
    with Session(engine) as s:
        assert s.exec(select(Follow.auto_trade).where(Follow.follower_id == world.follower_id)).all() == [True]
        events = s.exec(select(AuditEvent).order_by(AuditEvent.seq)).all()
    # The same audit events the Providers page writes: one per follow changed.
    assert [(e.action, e.subject_type, e.data["auto_trade"]) for e in events] == [
        ("follow.auto_trade", "follow", False), ("follow.auto_trade", "follow", True)]
    assert {e.actor_user_id for e in events} == {world.follower_id}
    assert "No provider named" in commands.pause(engine, world.follower_discord, GUILD_ID, "Nobody")


def test_follow_and_unfollow_need_trader_role_and_a_broker(engine, world, new_user):
    trader = new_user("tina", community_id=world.community_id, discord_id="531")
    viewer = new_user("vic", role=CommunityRole.VIEWER.value, community_id=world.community_id,
                       discord_id="532")
    outsider = new_user("otto", discord_id="533")

    reply = commands.follow(engine, "531", GUILD_ID, "Pat Calls")
    assert reply.startswith("✅ You now follow **Pat Calls**")
    assert "already follow" in commands.follow(engine, "531", GUILD_ID, "PAT CALLS")
    assert commands.follow(engine, "532", GUILD_ID, "Pat Calls").startswith(commands.REFUSED + "You need the trader")
    assert "trader role" in commands.follow(engine, "533", GUILD_ID, "Pat Calls")
    assert "direct message" in commands.follow(engine, "531", None, "Pat Calls")
    assert "not connected to a community" in commands.follow(engine, "531", "999", "Pat Calls")
    with Session(engine) as s:
        row = s.exec(select(Follow).where(Follow.follower_id == trader)).one()
        # No account pinned: each signal trades through the first connected account, as a dashboard follow.
        assert row.auto_trade and row.broker_account_id is None
        created = s.exec(select(AuditEvent).where(AuditEvent.action == "follow.created")).one()
        assert (created.subject_id, created.actor_user_id, created.community_id) == (
            str(row.id), trader, world.community_id)
        assert not s.exec(select(Follow).where(Follow.follower_id.in_([viewer, outsider]))).all()

    assert "no longer follow Pat Calls" in commands.unfollow(engine, "531", GUILD_ID, "Pat Calls")
    assert "do not follow" in commands.unfollow(engine, "531", GUILD_ID, "Pat Calls")
    with Session(engine) as s:
        assert s.exec(select(Follow).where(Follow.follower_id == trader)).all() == []
        assert s.exec(select(AuditEvent.action).where(AuditEvent.action.like("follow.%"))
                      .order_by(AuditEvent.seq)).all() == ["follow.created", "follow.deleted"]


def test_follow_without_a_broker_account_says_what_to_do(engine, world):
    with Session(engine, expire_on_commit=False) as s:
        from backend.db.models import Membership

        user = User(username="nob", discord_id="534")
        s.add(user)
        s.flush()
        s.add(Membership(community_id=world.community_id, user_id=user.id, role="trader"))
        s.commit()
    assert "Connect a broker account" in commands.follow(engine, "534", GUILD_ID, "Pat Calls")
    with Session(engine) as s, pytest.raises(ValidationError) as refused:
        follows.follow(s, user.id, world.source_id)  # the dashboard's Follow button: the same refusal
    assert refused.value.field == "broker_account" and "Brokers page" in refused.value.message
    with Session(engine) as s, pytest.raises(NotFound):
        members.find_source(s, world.community_id, "missing")


def test_dm_preference_and_provider_autocomplete(engine, world):
    assert "off" in commands.dms(engine, world.follower_discord, GUILD_ID, False)
    with Session(engine) as s:
        assert s.get(User, world.follower_id).dm_enabled is False
    assert commands.provider_names(engine, GUILD_ID, "pat") == ["Pat Calls"]
    assert commands.provider_names(engine, GUILD_ID, "zzz") == []
    assert commands.provider_names(engine, None, "") == []


def test_long_answers_fit_in_one_discord_message():
    text = "\n".join(f"line {i} " + "x" * 80 for i in range(60))
    short = commands.fit(text)
    assert len(short) <= 2000 and short.endswith("(more on the dashboard)")
    assert commands.fit("short") == "short"


def test_close_percent_is_checked():
    assert commands.parse_percent(None) == Decimal(100)
    assert commands.parse_percent("50%") == Decimal(50)
    for bad in ("0", "101", "abc"):
        with pytest.raises(ValidationError):
            commands.parse_percent(bad)


def test_unexpected_errors_become_an_apology(engine, world, monkeypatch):
    def boom(*_a, **_k):
        raise RuntimeError("database on fire")

    monkeypatch.setattr(members, "member_status", boom)  # our own seam: nothing else reaches this branch
    assert commands.status(engine, world.follower_discord, GUILD_ID) == commands.OOPS
