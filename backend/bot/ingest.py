"""From a Discord event to the money path, one channel at a time, in order.

``MessageRouter`` receives live events (create / edit / delete) and the
messages the catch-up reads from history, and hands each to the money path
(``backend.bot.money``), which runs it on its own event loop, so a slow
database never stalls the gateway heartbeat.

Ordering: each source channel has its own ``asyncio.Lock``; asyncio locks
are fair, so a channel's messages reach the money path in the order Discord
delivered them ("buy" before "sell"), while different channels run side by
side and a failure in one never touches another.

Cursor rule (no message lost across a restart or reconnect): a channel is
*catching up* from the moment the bot (re)connects until its history since
``last_message_id`` has been read.  Meanwhile live messages are still traded
at once, but they do not move the cursor (that would make the catch-up skip
what was posted while the bot was away); the newest one is remembered and
the cursor jumps to it when the catch-up finishes.  Replays are harmless: the
money path stores a message once per (source, message id).  A message the
money path stores moves the cursor in the same transaction (``ingest(...,
advance=True)``): a second commit per message, on another thread, slowed the
next message's money path down.

Only the provider's own messages are signals when the provider has linked
Discord (``SourceInfo.accepts_author``); other members' chatter in the
channel is dropped, and the bot's own messages always are.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import discord

from backend.bot.sources import SourceInfo
from backend.db.types import utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IncomingMessage:
    message_id: int
    author_id: int
    content: str
    sent_at: datetime           # Discord's own timestamp (the snowflake's time): the stale rule's clock
    received_at: datetime

    @classmethod
    def from_discord(cls, message: discord.Message) -> IncomingMessage:
        return cls(message_id=message.id, author_id=message.author.id, content=message.content or "",
                   sent_at=message.created_at, received_at=utcnow())


class MoneyPath(Protocol):
    """The money path as the bot sees it (``backend.bot.money.DatabaseMoneyPath``)."""

    async def ingest(self, source: SourceInfo, message: IncomingMessage, *, advance: bool) -> Any:
        """Store the message once and trade it if it is a fresh signal; returns the outcome.

        ``advance``: move the channel's cursor to the message too, with it (no transaction of its own)."""

    async def advance(self, source: SourceInfo, cursor: int) -> None:
        """Move the channel's catch-up cursor forward to ``cursor``."""

    async def edit(self, source: SourceInfo, message_id: int, content: str, edited_at: datetime | None) -> Any: ...

    async def delete(self, source: SourceInfo, message_id: int) -> Any: ...


Observer = Callable[[SourceInfo, IncomingMessage, Any], None]


class MessageRouter:
    def __init__(self, money: MoneyPath, *, observer: Observer | None = None) -> None:
        self.money = money
        self.sources: dict[int, SourceInfo] = {}
        self.bot_user_id: int | None = None
        self.observer = observer
        self.catching_up: set[int] = set()        # channel ids whose cursor live messages must not move
        self.generation = 0                       # bumped on every disconnect: older catch-ups are void
        self._held_cursor: dict[int, int] = {}    # newest live message seen while catching up
        self._locks: dict[int, asyncio.Lock] = {}
        self.last_message_at: datetime | None = None
        self.last_message_id: int | None = None
        self.handled = 0
        self.after_ingest: Callable[[], None] = lambda: None  # wakes the DM loop

    def lock(self, channel_id: int) -> asyncio.Lock:
        return self._locks.setdefault(channel_id, asyncio.Lock())

    def set_sources(self, sources: dict[int, SourceInfo]) -> list[int]:
        """Replace the directory; returns the channels that are new (they need a catch-up)."""
        new = [c for c in sources if c not in self.sources]
        self.sources = sources
        self.catching_up.intersection_update(sources)
        self.catching_up.update(new)
        return new

    def mark_disconnected(self) -> None:
        self.generation += 1
        self.catching_up.update(self.sources)

    # ------------------------------------------------------------------ live events
    async def on_message(self, message: discord.Message) -> None:
        source = self.sources.get(message.channel.id)
        if source is None:
            return
        await self.handle(source, IncomingMessage.from_discord(message), live=True)

    async def handle(self, source: SourceInfo, msg: IncomingMessage, *, live: bool) -> Any:
        async with self.lock(source.channel_id):
            return await self.handle_locked(source, msg, live=live)

    async def handle_locked(self, source: SourceInfo, msg: IncomingMessage, *, live: bool) -> Any:
        """``handle`` for a caller that already holds the channel lock (the catch-up).

        If the money path fails on a live message, the channel goes back to
        catching up: its cursor stays before the message, and the catch-up
        (retried from the heartbeat) reads it again.  In the catch-up itself
        the error propagates, so that catch-up stops there and is retried.
        """
        channel = source.channel_id
        self.last_message_at, self.last_message_id = msg.received_at, msg.message_id
        hold = live and channel in self.catching_up
        result = None
        stored = msg.author_id != self.bot_user_id and source.accepts_author(msg.author_id)
        if stored:
            try:
                result = await self.money.ingest(source, msg, advance=not hold)
            except Exception:
                if not live:
                    raise
                log.exception("message %s of channel %s failed; the channel will catch up", msg.message_id, channel)
                self.catching_up.add(channel)
                return None
            self.after_ingest()
            if self.observer is not None:
                self.observer(source, msg, result)
        if hold:
            self._held_cursor[channel] = max(self._held_cursor.get(channel, 0), msg.message_id)
        elif not stored:  # a stored message moved the cursor in its own transaction
            await self.money.advance(source, msg.message_id)
        self.handled += 1
        return result

    async def on_edit(self, payload: discord.RawMessageUpdateEvent) -> None:
        source = self.sources.get(payload.channel_id)
        if source is None or "content" not in payload.data:
            return
        message = payload.message
        if not source.accepts_author(message.author.id):
            return
        async with self.lock(source.channel_id):
            await self.money.edit(source, payload.message_id, message.content or "", message.edited_at)
        self.after_ingest()

    async def on_delete(self, channel_id: int, message_ids: list[int]) -> None:
        source = self.sources.get(channel_id)
        if source is None:
            return
        async with self.lock(source.channel_id):
            for message_id in message_ids:
                await self.money.delete(source, message_id)

    # ------------------------------------------------------------------ catch-up bookkeeping
    async def finish_catch_up(self, source: SourceInfo, generation: int) -> None:
        """Called under the channel lock once history is read: release the held cursor.

        A catch-up that started before the latest disconnect proves nothing about
        what was missed during it, so it leaves the channel catching up.
        """
        channel = source.channel_id
        if generation != self.generation:
            return
        held = self._held_cursor.pop(channel, None)
        self.catching_up.discard(channel)
        if held is not None:
            await self.money.advance(source, held)
