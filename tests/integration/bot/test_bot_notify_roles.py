"""DMs from notification rows and the paid role, through discord.py's real REST client and the fake.

Runs on SQLite and Postgres (``engine``).  The Discord side is discord.py's
HTTP client logged in against the loopback fake (no gateway needed for
REST), so the request building and error mapping are discord.py's own.
"""

from __future__ import annotations

from urllib.parse import unquote

import discord
import pytest
from sqlmodel import Session, select

from backend.bot.dm import DiscordDMSender
from backend.bot.roles import BotRoleApi, RestRoleApi
from backend.db.models import AuditEvent, BillingCustomer, Notification, Subscription, User
from backend.services import notify, roles
from fakes.fake_discord import FakeDiscord, running_fake


def _notify(engine, user_id: int, title: str, status: str | None = "pending") -> int:
    with Session(engine, expire_on_commit=False) as s:
        row = Notification(user_id=user_id, kind="order.filled", title=title, body="10 AAPL @ 185.50",
                           dm_status=status)
        s.add(row)
        s.commit()
        return row.id


def _statuses(engine) -> dict[str, str | None]:
    with Session(engine) as s:
        return {n.title: n.dm_status for n in s.exec(select(Notification))}


@pytest.fixture
async def discord_http():
    async with running_fake(FakeDiscord()) as fake:
        client = discord.Client(intents=discord.Intents.none())
        await client.login("fake-token")  # REST only: GET users/@me + the application
        try:
            yield fake, client
        finally:
            await client.close()


async def test_pending_notifications_become_dms_and_one_failure_stops_nothing(engine, world, add_member,
                                                                             discord_http):
    fake, client = discord_http
    with Session(engine, expire_on_commit=False) as s:
        closed, _ = add_member(s, world.community_id, world.source_id, username="closed", discord_id="535")
        quiet, _ = add_member(s, world.community_id, world.source_id, username="quiet", discord_id="536",
                              dm_enabled=False)
        nolink, _ = add_member(s, world.community_id, world.source_id, username="nolink", discord_id=None)
        s.commit()
    fake.dm_channels["535"] = "600000000000000535"
    fake.failing_channels.add("600000000000000535")  # this member closed DMs: Discord answers 403 / 50007
    _notify(engine, world.follower_id, "first")
    _notify(engine, closed.id, "to closed DMs")
    _notify(engine, quiet.id, "to DMs off")
    _notify(engine, nolink.id, "to nobody")
    _notify(engine, world.follower_id, "second")
    _notify(engine, world.follower_id, "dashboard only", status=None)

    dispatcher = notify.DMDispatcher(engine, DiscordDMSender(client))
    report = await dispatcher.deliver_pending()

    assert len(report.sent) == 2 and len(report.failed) == 1 and len(report.off) == 2
    assert fake.dms_to(world.follower_discord) == ["**first**\n10 AAPL @ 185.50", "**second**\n10 AAPL @ 185.50"]
    assert _statuses(engine) == {"first": "sent", "second": "sent", "to closed DMs": "failed",
                                 "to DMs off": "off", "to nobody": "off", "dashboard only": None}
    with Session(engine) as s:
        failed = s.exec(select(Notification).where(Notification.title == "to closed DMs")).one()
    assert "50007" in failed.data["dm_error"]
    opened = [r for r in fake.requests if r.path == "/users/@me/channels"]
    assert {str(r.body["recipient_id"]) for r in opened} == {world.follower_discord, "535"}
    assert (await dispatcher.deliver_pending()).sent == []  # nothing is sent twice


async def test_temporary_failures_are_retried_then_given_up(engine, world):
    _notify(engine, world.follower_id, "flaky")
    calls = []

    async def flaky_send(discord_id: str, text: str) -> None:  # our own seam: a network error each time
        calls.append(discord_id)
        raise ConnectionError("reset by peer")

    dispatcher = notify.DMDispatcher(engine, flaky_send)
    for _ in range(notify.MAX_ATTEMPTS - 1):
        assert (await dispatcher.deliver_pending()).retry
        assert _statuses(engine) == {"flaky": "pending"}
    assert (await dispatcher.deliver_pending()).failed
    assert _statuses(engine) == {"flaky": "failed"} and len(calls) == notify.MAX_ATTEMPTS


def test_dm_text_is_bounded():
    assert len(notify.dm_text("t", "x" * 5000)) == notify.DISCORD_MESSAGE_LIMIT
    assert notify.dm_text("Filled", "") == "**Filled**"


# ------------------------------------------------------------------ paid role
def _subscribe(engine, world, status: str) -> None:
    with Session(engine) as s:
        customer = BillingCustomer(user_id=world.follower_id, provider="stripe", provider_customer_id="cus_1")
        s.add(customer)
        s.flush()
        s.add(Subscription(customer_id=customer.id, community_id=world.community_id, provider="stripe",
                           provider_subscription_id="sub_1", plan="Pro", status=status))
        s.commit()


async def test_paid_role_granted_and_removed_over_rest(engine, world, discord_http):
    fake, client = discord_http
    _subscribe(engine, world, "active")
    role_path = f"/guilds/{world.guild_id}/members/{world.follower_discord}/roles/540000000000000001"

    async with RestRoleApi("fake-token") as api:  # what the web process uses (no gateway)
        with Session(engine) as s:
            change = await roles.sync_paid_role(s, api, user_id=world.follower_id, community_id=world.community_id)
            s.commit()
    assert change.grant and change.reason == "subscription active"
    put = await fake.wait_for_request(lambda r: r.method == "PUT" and r.path == role_path)
    assert unquote(put.headers["X-Audit-Log-Reason"]) == "subscription active"

    with Session(engine) as s:  # billing says it lapsed; the bot's own connection applies it
        change = await roles.sync_paid_role(s, BotRoleApi(client), user_id=world.follower_id,
                                            community_id=world.community_id, active=False)
        s.commit()
    assert not change.grant
    await fake.wait_for_request(lambda r: r.method == "DELETE" and r.path == role_path)
    with Session(engine) as s:
        actions = s.exec(select(AuditEvent.action).order_by(AuditEvent.seq)).all()
    assert actions == ["community.paid_role_granted", "community.paid_role_removed"]


async def test_paid_role_needs_a_linked_member_and_a_role(engine, world, discord_http):
    _fake, client = discord_http
    with Session(engine) as s:
        assert roles.paid_role_change(s, world.follower_id, world.community_id).grant is False  # no subscription
        s.get(User, world.follower_id).discord_id = None
        s.flush()
        assert await roles.sync_paid_role(s, BotRoleApi(client), user_id=world.follower_id,
                                          community_id=world.community_id) is None
        assert not s.exec(select(AuditEvent)).all()
