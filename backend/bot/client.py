"""The Discord client: intents, events, and the bot's background loops.

``TradeBot`` is a plain ``discord.Client`` (no prefix commands: everything
members type is a slash command on ``self.tree``).  It wires discord.py's
events to the parts that do the work:

* messages, edits and deletes in source channels -> ``MessageRouter``;
* ``on_ready`` (new session) and ``on_resumed`` (resumed session) -> a
  catch-up of every source channel; ``on_disconnect`` marks every channel as
  catching up again so no message posted meanwhile is skipped;
* a DM loop (``backend.bot.dm``) that sends pending notifications;
* a heartbeat loop that every ``heartbeat_seconds`` reloads the source
  directory (new channels get their catch-up), retries failed catch-ups and
  writes the ``worker_heartbeats`` row ``bot`` (connected, guilds, last message
  seen) that the readiness check and the admin pages show.

Intents: guilds, guild messages, message content (privileged: enable it in
the Developer Portal) and DMs.  Nothing else is requested.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Any

import discord
import sqlalchemy as sa
from discord import app_commands

from backend.bot.catchup import CatchUp
from backend.bot.dm import DiscordDMSender, dm_loop
from backend.bot.ingest import MessageRouter, MoneyPath, Observer
from backend.bot.money import DatabaseMoneyPath, MoneyLoop
from backend.bot.slash import register_commands
from backend.bot.sources import load_sources
from backend.db.types import utcnow
from backend.services.notify import DMDispatcher
from backend.workers.heartbeat import beat

log = logging.getLogger(__name__)

HEARTBEAT_NAME = "bot"


def bot_intents() -> discord.Intents:
    intents = discord.Intents.none()
    intents.guilds = True
    intents.guild_messages = True
    intents.message_content = True
    intents.dm_messages = True
    return intents


class TradeBot(discord.Client):
    def __init__(self, engine: sa.Engine, *, money: MoneyPath | None = None, observer: Observer | None = None,
                 heartbeat_seconds: float = 15.0, dm_interval: float = 2.0, sync_commands: bool = True,
                 guild_ready_timeout: float = 2.0) -> None:
        super().__init__(intents=bot_intents(), max_messages=None, guild_ready_timeout=guild_ready_timeout,
                         allowed_mentions=discord.AllowedMentions.none())
        self.money_loop = MoneyLoop()
        money = money or DatabaseMoneyPath(engine, self.money_loop)
        self.engine = engine
        self.router = MessageRouter(money, observer=observer)
        self.catch_up = CatchUp(self, self.router, engine)
        self.tree = app_commands.CommandTree(self)
        register_commands(self.tree, engine, self.money_loop)
        self.dm_wake = asyncio.Event()
        self.router.after_ingest = self.dm_wake.set
        self.dispatcher = DMDispatcher(engine, DiscordDMSender(self))
        self.heartbeat_seconds = heartbeat_seconds
        self.dm_interval = dm_interval
        self.sync_commands = sync_commands
        self.connected = False
        self._loops: list[asyncio.Task] = []

    # ------------------------------------------------------------------ lifecycle
    async def setup_hook(self) -> None:
        self.router.set_sources(await asyncio.to_thread(load_sources, self.engine))
        if self.sync_commands:
            try:
                await self.tree.sync()
            except discord.HTTPException as exc:  # commands stay as last synced; messages still flow
                log.warning("could not sync slash commands with Discord: %s", exc)
        self._loops = [asyncio.create_task(dm_loop(self.dispatcher, self.dm_wake, interval=self.dm_interval),
                                           name="bot-dm-loop"),
                       asyncio.create_task(self._heartbeat_loop(), name="bot-heartbeat")]
        log.info("bot ready to connect: listening to %d source channel(s)", len(self.router.sources))

    async def close(self) -> None:
        for task in self._loops:
            task.cancel()
        for task in list(self.catch_up.running.values()):
            task.cancel()
        self.connected = False
        try:
            await asyncio.to_thread(self.write_heartbeat)
        except Exception:  # noqa: BLE001 - closing must finish
            log.warning("last heartbeat failed", exc_info=True)
        await super().close()
        self.money_loop.stop()

    # ------------------------------------------------------------------ gateway events
    async def on_ready(self) -> None:
        self.connected = True
        self.router.bot_user_id = self.user.id if self.user else None
        log.info("connected as %s to %d guild(s); catching up %d channel(s)", self.user, len(self.guilds),
                 len(self.router.sources))
        self.catch_up.start(list(self.router.sources))

    async def on_resumed(self) -> None:
        self.connected = True
        self.catch_up.start(list(self.router.sources))

    async def on_disconnect(self) -> None:
        self.connected = False
        self.router.mark_disconnected()

    async def on_message(self, message: discord.Message) -> None:
        await self.router.on_message(message)

    async def on_raw_message_edit(self, payload: discord.RawMessageUpdateEvent) -> None:
        await self.router.on_edit(payload)

    async def on_raw_message_delete(self, payload: discord.RawMessageDeleteEvent) -> None:
        await self.router.on_delete(payload.channel_id, [payload.message_id])

    async def on_raw_bulk_message_delete(self, payload: discord.RawBulkMessageDeleteEvent) -> None:
        await self.router.on_delete(payload.channel_id, sorted(payload.message_ids))

    async def on_error(self, event_method: str, /, *args: Any, **kwargs: Any) -> None:
        log.exception("error in %s (the bot keeps running)", event_method)

    # ------------------------------------------------------------------ heartbeat
    def heartbeat_data(self) -> dict[str, Any]:
        r = self.router
        return {
            "connected": self.connected and not self.is_closed(),
            "guilds": len(self.guilds),
            "source_channels": len(r.sources),
            "catching_up": len(r.catching_up),
            "last_message_at": r.last_message_at.isoformat() if r.last_message_at else None,
            "last_message_id": str(r.last_message_id) if r.last_message_id else None,
            "messages_handled": r.handled,
            "latency_ms": round(self.latency * 1000, 1) if math.isfinite(self.latency) else None,
            "at": utcnow().isoformat(),
        }

    def write_heartbeat(self) -> None:
        beat(self.engine, HEARTBEAT_NAME, self.heartbeat_data())

    async def refresh_sources(self) -> None:
        new = self.router.set_sources(await asyncio.to_thread(load_sources, self.engine))
        if new and self.connected:
            log.info("new source channel(s) %s: catching up", new)
            self.catch_up.start(new)

    async def _heartbeat_loop(self) -> None:
        while True:
            try:
                await self.refresh_sources()
                if self.connected:
                    self.catch_up.retry_due()
                await asyncio.to_thread(self.write_heartbeat)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001
                log.exception("bot heartbeat failed")
            await asyncio.sleep(self.heartbeat_seconds)
