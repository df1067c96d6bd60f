"""The router's cursor rules, with a recording stand-in for our own MoneyPath seam.

A database outage in the middle of a live message cannot be produced through
the fake Discord, so this drives ``MessageRouter`` directly: the failed
message must not move the cursor, and the channel must go back to catching
up so the history read finds it again.
"""

from __future__ import annotations

from datetime import timedelta

from backend.bot.ingest import IncomingMessage, MessageRouter
from backend.bot.sources import SourceInfo
from backend.db.types import utcnow

CHANNEL = 520000000000000001
PROVIDER = 530000000000000001


class RecordingMoney:
    """Our MoneyPath seam: remembers ingests and cursor moves; fails the ids in ``failing``."""

    def __init__(self) -> None:
        self.ingested: list[int] = []
        self.cursor: int | None = None
        self.failing: set[int] = set()

    async def ingest(self, source, message, *, advance):
        if message.message_id in self.failing:
            raise ConnectionError("database went away")
        self.ingested.append(message.message_id)
        if advance:  # with the message, as the database money path does
            await self.advance(source, message.message_id)
        return {"status": "dispatched"}

    async def advance(self, source, cursor):
        self.cursor = max(self.cursor or 0, cursor)

    async def edit(self, *a):
        return None

    async def delete(self, *a):
        return None


def _source(provider: str | None = str(PROVIDER)) -> SourceInfo:
    return SourceInfo(source_id=1, channel_id=CHANNEL, community_id=1, name="Pat Calls", provider_discord_id=provider,
                      created_at=utcnow() - timedelta(days=1), last_message_id=None)


def _msg(message_id: int, author: int = PROVIDER) -> IncomingMessage:
    return IncomingMessage(message_id=message_id, author_id=author, content="BUY AAPL", sent_at=utcnow(),
                           received_at=utcnow())


async def test_a_failed_live_message_keeps_the_cursor_and_sends_the_channel_back_to_catch_up():
    money = RecordingMoney()
    router = MessageRouter(money)
    router.set_sources({CHANNEL: _source()})
    await router.finish_catch_up(_source(), router.generation)
    await router.handle(_source(), _msg(10), live=True)
    money.failing.add(11)
    assert await router.handle(_source(), _msg(11), live=True) is None
    assert money.cursor == 10 and CHANNEL in router.catching_up
    await router.handle(_source(), _msg(12), live=True)  # traded at once, but the cursor is held at 10
    assert money.ingested == [10, 12] and money.cursor == 10

    money.failing.clear()  # the catch-up reads 11 and 12 again from history
    for message_id in (11, 12):
        await router.handle_locked(_source(), _msg(message_id), live=False)
    await router.finish_catch_up(_source(), router.generation)
    assert money.cursor == 12 and CHANNEL not in router.catching_up


async def test_a_catch_up_begun_before_a_disconnect_does_not_release_the_channel():
    router = MessageRouter(RecordingMoney())
    router.set_sources({CHANNEL: _source()})
    started = router.generation
    router.mark_disconnected()
    await router.finish_catch_up(_source(), started)
    assert CHANNEL in router.catching_up


async def test_only_the_provider_speaks_for_a_linked_source_but_anyone_for_an_unlinked_one():
    money = RecordingMoney()
    router = MessageRouter(money)
    router.bot_user_id = 999
    await router.handle(_source(), _msg(1, author=777), live=False)
    await router.handle(_source(), _msg(2, author=999), live=False)
    await router.handle(_source(provider=None), _msg(3, author=777), live=False)
    await router.handle(_source(provider=None), _msg(4, author=999), live=False)  # never the bot itself
    assert money.ingested == [3] and money.cursor == 4
