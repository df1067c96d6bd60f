"""Slash commands through the fake gateway: INTERACTION_CREATE in, the ephemeral answer out.

The answer arrives as discord.py really sends it: ``POST
/interactions/{id}/{token}/callback`` (type 4, or type 5 "thinking" for
``/close`` followed by ``POST /webhooks/{app}/{token}``), flag 64 =
ephemeral.  Runs on SQLite and Postgres (``engine``).
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from sqlmodel import Session, select

from backend.bot.client import TradeBot
from backend.db.models import PaperQuote, Position, User
from backend.services import members
from fakes.fake_discord import FakeDiscord, running_fake

EPHEMERAL = 64
STRANGER = "530000000000000009"


async def eventually(check, timeout: float = 10.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not (value := await asyncio.to_thread(check)):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.02)
    return value


@pytest.fixture
async def bot(engine, world, settings_env):
    with Session(engine) as s:
        s.add(PaperQuote(symbol="AAPL", price=Decimal("185")))
        s.commit()
    fake = FakeDiscord()
    fake.add_guild(world.guild_id, world.channel_id)
    async with running_fake(fake):
        client = TradeBot(engine, heartbeat_seconds=0.2, dm_interval=0.05, guild_ready_timeout=0.01)
        await client.login("fake-token")
        task = asyncio.create_task(client.connect())
        await eventually(lambda: client.connected and not client.router.catching_up)
        try:
            yield fake, client
        finally:
            await client.close()
            await asyncio.wait_for(task, 5)


async def run(fake: FakeDiscord, name: str, user_id: str, guild_id: str | None, **options) -> dict:
    """Run ``/name`` as ``user_id`` and return the interaction callback body discord.py posted."""
    types = {str: 3, int: 4, bool: 5}
    opts = [{"name": k, "type": types[type(v)], "value": v} for k, v in options.items()]
    interaction = await fake.slash(name, user_id=user_id, guild_id=guild_id, channel_id="520000000000000001",
                                   options=opts)
    rec = await fake.wait_for_request(lambda r: r.path == f"/interactions/{interaction['id']}/{interaction['token']}/callback")
    return rec.body


async def test_link_through_discord(engine, world, bot):
    fake, _client = bot
    with Session(engine, expire_on_commit=False) as s:
        user = User(username="newbie")
        s.add(user)
        s.flush()
        code = members.create_link_code(s, user.id).code
        s.commit()
    body = await run(fake, "link", STRANGER, world.guild_id, code=code)
    assert body["type"] == 4 and body["data"]["flags"] == EPHEMERAL
    assert body["data"]["content"].startswith("✅ Linked") and "newbie" in body["data"]["content"]
    with Session(engine) as s:
        assert s.get(User, user.id).discord_id == STRANGER


async def test_unlinked_member_is_refused(world, bot):
    fake, _client = bot
    body = await run(fake, "positions", STRANGER, world.guild_id)
    assert body["data"]["flags"] == EPHEMERAL
    assert "not linked" in body["data"]["content"] and "/link" in body["data"]["content"]


async def test_positions_then_close_half(engine, world, bot):
    fake, _client = bot
    assert (await run(fake, "positions", world.follower_discord, None))["data"]["content"] == "No open positions."
    await fake.post(world.channel_id, "BUY AAPL @ 185.50 SL 180 TP 195", author_id=world.provider_discord)

    def held():
        with Session(engine) as s:
            return s.exec(select(Position.quantity).where(Position.symbol == "AAPL")).first()

    assert await eventually(held) == Decimal(10)
    listing = (await run(fake, "positions", world.follower_discord, world.guild_id))["data"]["content"]
    assert "AAPL: long 10 @ $185.09" in listing

    body = await run(fake, "close", world.follower_discord, world.guild_id, symbol="aapl", percent=50)
    assert body["type"] == 5 and body["data"]["flags"] == EPHEMERAL  # "thinking": the broker may be slow
    follow_up = await fake.wait_for_request(lambda r: r.method == "POST" and r.path.startswith("/webhooks/"))
    text = follow_up.body["content"]
    assert follow_up.body["flags"] == EPHEMERAL
    assert text.startswith("Closing 50% of AAPL:") and "sell 5 AAPL filled" in text
    assert held() == Decimal(5)

    again = await run(fake, "close", world.follower_discord, world.guild_id, symbol="MSFT")
    assert again["type"] == 5
    refusal = await fake.wait_for_request(lambda r: r.path.startswith("/webhooks/") and "MSFT" in r.body["content"])
    assert "no open MSFT position" in refusal.body["content"]


async def test_follow_and_provider_autocomplete(engine, world, bot, add_member):
    fake, _client = bot
    with Session(engine) as s:
        add_member(s, world.community_id, None, username="tina", discord_id="531")
        s.commit()
    typing = await fake.slash("follow", user_id="531", guild_id=world.guild_id, channel_id=world.channel_id,
                              options=[{"name": "provider", "type": 3, "value": "pat", "focused": True}],
                              autocomplete=True)
    choices = await fake.wait_for_request(lambda r: r.path.startswith(f"/interactions/{typing['id']}/"))
    assert choices.body == {"type": 8, "data": {"choices": [{"name": "Pat Calls", "value": "Pat Calls"}]}}
    body = await run(fake, "follow", "531", world.guild_id, provider="Pat Calls")
    assert "You now follow **Pat Calls**" in body["data"]["content"]
    pause = await run(fake, "pause", "531", world.guild_id)
    assert "paused for every provider" in pause["data"]["content"]
