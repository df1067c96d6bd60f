"""The real discord.py client against the loopback fake Discord, trading on the paper broker.

Each test starts ``TradeBot`` (login over REST, gateway over a websocket,
slash commands synced) on the ``engine`` fixture, so it runs on SQLite and on
Postgres, with the real money path (``backend.services.trading``) and the
paper broker.  Nothing of discord.py or of our own code is mocked.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlmodel import Session, select

from backend.bot.client import TradeBot
from backend.db.models import (
    Follow, Notification, Order, PaperQuote, Signal, SignalRevision, SignalSource, WorkerHeartbeat,
)
from backend.db.types import utcnow
from fakes.fake_discord import FakeDiscord, running_fake

SIGNAL = "BUY AAPL @ 185.50 SL 180 TP 195"


async def eventually(check, timeout: float = 10.0, interval: float = 0.02):
    """Poll ``check`` (a plain function) until it returns something truthy."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await asyncio.to_thread(check)
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s: {check.__name__}")
        await asyncio.sleep(interval)


class Harness:
    def __init__(self, engine, fake: FakeDiscord) -> None:
        self.engine, self.fake = engine, fake
        self.bot: TradeBot | None = None
        self._task: asyncio.Task | None = None

    async def start(self) -> TradeBot:
        bot = TradeBot(self.engine, heartbeat_seconds=0.2, dm_interval=0.05, guild_ready_timeout=0.01)
        bot.catch_up.retry_first_seconds = 0.1
        await bot.login("fake-token")
        self._task = asyncio.create_task(bot.connect())
        self.bot = bot
        await self.settled()
        return bot

    async def settled(self) -> None:
        bot = self.bot
        await eventually(lambda: bot.connected and not bot.catch_up.running and not bot.router.catching_up)

    async def stop(self) -> None:
        if self.bot is not None:
            await self.bot.close()
            await asyncio.wait_for(self._task, 5)
            self.bot = None

    # ---------------------------------------------------------------- database reads
    def rows(self, model, *where):
        with Session(self.engine) as s:
            return list(s.exec(select(model).where(*where)))

    def entries(self, status: str | None = None) -> list[Order]:
        conds = [Order.leg == "entry"] + ([Order.status == status] if status else [])
        return self.rows(Order, *conds)

    def cursor(self, source_id: int) -> str | None:
        with Session(self.engine) as s:
            return s.get(SignalSource, source_id).last_message_id


@pytest.fixture
async def harness(engine, world, settings_env):
    with Session(engine) as s:
        s.add_all([PaperQuote(symbol="AAPL", price=Decimal("185")), PaperQuote(symbol="TSLA", price=Decimal("250"))])
        s.commit()
    fake = FakeDiscord()
    fake.add_guild(world.guild_id, world.channel_id, "520000000000000099")
    async with running_fake(fake):
        h = Harness(engine, fake)
        try:
            yield h
        finally:
            await h.stop()


async def test_a_signal_trades_for_the_follower_and_dms_them(harness, world):
    bot = await harness.start()
    assert harness.fake.identifies == 1
    assert any(r.method == "PUT" and r.path.endswith("/commands") for r in harness.fake.requests)  # synced
    posted = await harness.fake.post(world.channel_id, SIGNAL, author_id=world.provider_discord)

    [order] = await eventually(lambda: harness.entries("filled"))
    assert order.user_id == world.follower_id and order.symbol == "AAPL" and order.quantity == Decimal(10)
    dm = await harness.fake.wait_for_request(
        lambda r: r.method == "POST" and r.path == f"/channels/{harness.fake.dm_channels.get(world.follower_discord)}/messages")
    assert dm.body["content"].startswith("**Bought 10 AAPL at 185.")
    assert dm.body["allowed_mentions"] == {"parse": []}  # a DM never pings anyone
    opened = await harness.fake.wait_for_request(lambda r: r.path == "/users/@me/channels")
    assert str(opened.body["recipient_id"]) == world.follower_discord
    await eventually(lambda: harness.cursor(world.source_id) == posted["id"])

    def beat():
        [row] = harness.rows(WorkerHeartbeat, WorkerHeartbeat.name == "bot")
        return row.data if row.data.get("last_message_id") == posted["id"] else None

    data = await eventually(beat)
    assert data["connected"] is True and data["guilds"] == 1 and data["source_channels"] == 1
    assert bot.router.handled == 1


async def test_chatter_strangers_and_redeliveries_trade_nothing(harness, world):
    bot = await harness.start()
    fake = harness.fake
    await fake.post(world.channel_id, "what a day, anyone still holding NVDA?", author_id=world.provider_discord)
    await fake.post(world.channel_id, "BUY TSLA @ 250", author_id="530000000000000077")  # not the provider
    await fake.post("520000000000000099", "BUY TSLA @ 250", author_id=world.provider_discord)  # not a source channel
    posted = await fake.post(world.channel_id, SIGNAL, author_id=world.provider_discord)
    await eventually(lambda: harness.entries("filled"))
    await fake.redeliver(posted)
    await eventually(lambda: bot.router.handled == 4)

    signals = harness.rows(Signal)
    assert sorted(s.status for s in signals) == ["dispatched", "ignored"]
    assert len(harness.entries()) == 1 and harness.entries()[0].symbol == "AAPL"
    assert harness.cursor(world.source_id) == posted["id"]


async def test_edits_and_deletes_are_recorded_not_traded(harness, world):
    await harness.start()
    posted = await harness.fake.post(world.channel_id, SIGNAL, author_id=world.provider_discord)
    await eventually(lambda: harness.entries("filled"))
    await harness.fake.edit(posted, "BUY AAPL @ 185.50 SL 182 TP 199")
    [revision] = await eventually(lambda: harness.rows(SignalRevision))
    assert revision.revision == 2 and revision.changed is True and "SL 182" in revision.raw_text
    await harness.fake.delete(posted)
    await eventually(lambda: harness.rows(Signal, Signal.deleted_at.is_not(None)))
    assert len(harness.entries()) == 1  # neither the edit nor the delete traded


async def test_a_restart_catches_up_and_a_stale_signal_is_not_traded(harness, world):
    fake = harness.fake
    await harness.start()
    first = await fake.post(world.channel_id, "good morning", author_id=world.provider_discord,
                            when=utcnow() - timedelta(minutes=30))
    await eventually(lambda: harness.cursor(world.source_id) == first["id"])
    await harness.stop()

    stale = await fake.post(world.channel_id, SIGNAL, author_id=world.provider_discord,
                            when=utcnow() - timedelta(minutes=10), deliver=False)
    fresh = await fake.post(world.channel_id, "BUY TSLA @ 250", author_id=world.provider_discord, deliver=False)

    await harness.start()  # a new process: on_ready -> catch-up
    [order] = await eventually(lambda: harness.entries("filled"))
    assert order.symbol == "TSLA"
    reads = fake.history_reads(world.channel_id)
    assert reads[-1].query["after"] == first["id"]
    statuses = {s.source_message_id: s.status for s in harness.rows(Signal)}
    assert statuses[stale["id"]] == "stale" and statuses[fresh["id"]] == "dispatched"
    assert harness.cursor(world.source_id) == fresh["id"]
    [note] = harness.rows(Notification, Notification.kind == "signal.stale")
    assert note.user_id == world.follower_id
    await eventually(lambda: any("not traded" in text for text in fake.dms_to(world.follower_discord)))


async def test_a_dropped_connection_resumes_and_catches_up(harness, world):
    bot = await harness.start()
    fake = harness.fake
    await fake.drop_connection()
    missed = await fake.post(world.channel_id, SIGNAL, author_id=world.provider_discord, deliver=False)
    await eventually(lambda: fake.resumes == 1)
    [order] = await eventually(lambda: harness.entries("filled"))
    assert order.symbol == "AAPL" and fake.identifies == 1
    await harness.settled()
    assert harness.cursor(world.source_id) == missed["id"] and bot.connected


async def test_one_unreadable_channel_does_not_hold_up_another(harness, world, engine):
    fake = harness.fake
    with Session(engine, expire_on_commit=False) as s:
        other = SignalSource(community_id=world.community_id, provider_id=world.provider_id, name="Pat Crypto",
                             discord_channel_id="520000000000000099", max_signals_per_minute=None,
                             created_at=utcnow() - timedelta(days=1))
        s.add(other)
        s.flush()
        s.add(Follow(follower_id=world.follower_id, source_id=other.id, broker_account_id=world.account_id))
        s.commit()
    fake.failing_history.add(world.channel_id)  # Discord answers 500 for this channel's history
    blocked = await fake.post(world.channel_id, SIGNAL, author_id=world.provider_discord, deliver=False)
    fine = await fake.post("520000000000000099", "BUY TSLA @ 250", author_id=world.provider_discord, deliver=False)

    bot = TradeBot(engine, heartbeat_seconds=0.1, dm_interval=0.05, guild_ready_timeout=0.01)
    bot.catch_up.retry_first_seconds = 0.1
    harness.bot = bot
    await bot.login("fake-token")
    harness._task = asyncio.create_task(bot.connect())
    await eventually(lambda: harness.cursor(other.id) == fine["id"], timeout=30)
    assert int(world.channel_id) in bot.router.catching_up
    assert {s.source_message_id for s in harness.rows(Signal)} == {fine["id"]}

    fake.failing_history.clear()  # Discord recovers: the heartbeat's retry catches the channel up
    await eventually(lambda: harness.cursor(world.source_id) == blocked["id"], timeout=30)
    # The cursor moves with the stored message, before its order is sent: wait for the fill.
    await eventually(lambda: {o.symbol for o in harness.entries("filled")} == {"AAPL", "TSLA"})


async def test_a_channel_registered_while_running_is_heard_without_restart(harness, world, engine):
    bot = await harness.start()
    early = await harness.fake.post("520000000000000099", "BUY TSLA @ 250", author_id=world.provider_discord)
    with Session(engine, expire_on_commit=False) as s:  # a host registers the channel on the dashboard
        other = SignalSource(community_id=world.community_id, provider_id=world.provider_id, name="Pat Crypto",
                             discord_channel_id="520000000000000099", max_signals_per_minute=None,
                             created_at=utcnow() - timedelta(minutes=1))
        s.add(other)
        s.flush()
        s.add(Follow(follower_id=world.follower_id, source_id=other.id, broker_account_id=world.account_id))
        s.commit()
    await eventually(lambda: int("520000000000000099") in bot.router.sources)
    [order] = await eventually(lambda: harness.entries("filled"))  # read by the new channel's catch-up
    assert order.symbol == "TSLA"
    # The cursor is advanced after the message is handled (a separate write): wait for it, do not race it.
    def cursor_at_the_early_message() -> bool:
        return harness.cursor(other.id) == early["id"]

    await eventually(cursor_at_the_early_message)
