"""Catch-up: read what a source channel received while the bot was not listening.

Runs for every source channel on start (``on_ready``), after every reconnect
(``on_ready`` for a new session, ``on_resumed`` for a resumed one) and for a
channel registered while the bot runs.  For each channel it reads the history
after the cursor (``signal_sources.last_message_id``; for a channel never
read, after the moment the source was registered), oldest first, and gives
every message to the router exactly as a live one, holding the channel lock
so live messages wait their turn.  The money path applies the stale rule
with ``sent_at = message.created_at``: what was posted long ago is recorded,
not traded, and the followers are told why.

Each channel runs in its own task: a channel the bot cannot read (missing
permission, Discord 5xx) is logged and retried with backoff by
``retry_due`` (called from the heartbeat) and never holds up the others.
discord.py paginates the history 100 messages a request and waits out 429s
itself.
"""

from __future__ import annotations

import asyncio
import logging
import time

import discord
import sqlalchemy as sa
from discord.utils import time_snowflake

from backend.bot.ingest import IncomingMessage, MessageRouter
from backend.bot.sources import SourceInfo, read_cursor

log = logging.getLogger(__name__)

RETRY_FIRST_SECONDS = 15.0
RETRY_MAX_SECONDS = 600.0


class CatchUp:
    def __init__(self, client: discord.Client, router: MessageRouter, engine: sa.Engine) -> None:
        self.client = client
        self.router = router
        self.engine = engine
        self.running: dict[int, asyncio.Task] = {}
        self._failures: dict[int, int] = {}
        self._retry_at: dict[int, float] = {}
        self.caught_up_messages = 0
        self.retry_first_seconds = RETRY_FIRST_SECONDS

    def start(self, channel_ids: list[int] | None = None) -> list[asyncio.Task]:
        """Start a catch-up for each given channel (default: every channel still catching up)."""
        wanted = self.router.catching_up if channel_ids is None else channel_ids
        tasks = []
        for channel_id in list(wanted):
            source = self.router.sources.get(channel_id)
            if source is None or channel_id in self.running:
                continue
            task = asyncio.create_task(self._run(source), name=f"catch-up-{channel_id}")
            self.running[channel_id] = task
            task.add_done_callback(lambda _t, c=channel_id: self.running.pop(c, None))
            tasks.append(task)
        return tasks

    def retry_due(self) -> list[asyncio.Task]:
        now = time.monotonic()
        due = [c for c in self.router.catching_up if c not in self.running and self._retry_at.get(c, 0) <= now]
        return self.start(due)

    async def wait(self) -> None:
        while self.running:
            await asyncio.gather(*list(self.running.values()), return_exceptions=True)

    async def _run(self, source: SourceInfo) -> None:
        channel_id = source.channel_id
        generation = self.router.generation
        try:
            count = await self._read(source, generation)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - one channel's failure stays in that channel
            failures = self._failures.get(channel_id, 0) + 1
            self._failures[channel_id] = failures
            delay = min(self.retry_first_seconds * 2 ** (failures - 1), RETRY_MAX_SECONDS)
            self._retry_at[channel_id] = time.monotonic() + delay
            log.warning("catch-up of channel %s (%s) failed (%s); retrying in %.0f s",
                        channel_id, source.name, exc, delay)
            return
        self._failures.pop(channel_id, None)
        self._retry_at.pop(channel_id, None)
        if count:
            log.info("caught up %d message(s) in channel %s (%s)", count, channel_id, source.name)

    async def _read(self, source: SourceInfo, generation: int) -> int:
        channel_id = source.channel_id
        count = 0
        async with self.router.lock(channel_id):
            cursor = await asyncio.to_thread(read_cursor, self.engine, source.source_id)
            after = discord.Object(int(cursor) if cursor else time_snowflake(source.created_at))
            channel = self.client.get_channel(channel_id) or self.client.get_partial_messageable(channel_id)
            async for message in channel.history(limit=None, after=after, oldest_first=True):
                await self.router.handle_locked(source, IncomingMessage.from_discord(message), live=False)
                count += 1
            self.caught_up_messages += count
            await self.router.finish_catch_up(source, generation)
        return count
