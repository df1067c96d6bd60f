"""Sending members their direct messages, through the bot's own connection.

``DiscordDMSender`` opens (or reuses) the DM channel with a member and posts
the text; Discord's permanent refusals (the member closed DMs from server
members: 403 / 50007, or an unknown user: 404) become ``DMUndeliverable``
so the row is marked failed instead of retried forever.  ``dm_loop`` runs a
delivery round whenever the router says something happened, and at least
every few seconds (notifications written by the web process or the
scheduler, retries).  Mentions are disabled: a DM never pings anyone.
"""

from __future__ import annotations

import asyncio
import logging

import discord

from backend.services.notify import DMDispatcher, DMUndeliverable

log = logging.getLogger(__name__)


class DiscordDMSender:
    def __init__(self, client: discord.Client) -> None:
        self.client = client

    async def __call__(self, discord_id: str, text: str) -> None:
        if not str(discord_id).isdigit():
            raise DMUndeliverable(f"'{discord_id}' is not a Discord user id.")
        try:
            channel = await self.client.create_dm(discord.Object(int(discord_id)))
            await channel.send(text, allowed_mentions=discord.AllowedMentions.none())
        except (discord.Forbidden, discord.NotFound) as exc:
            raise DMUndeliverable(f"Discord refused the DM ({exc.status} {exc.code}): {exc.text}") from exc


async def dm_loop(dispatcher: DMDispatcher, wake: asyncio.Event, *, interval: float = 2.0) -> None:
    """Deliver pending DMs forever; a failing round is logged and the next one runs as usual."""
    while True:
        try:
            await asyncio.wait_for(wake.wait(), timeout=interval)
        except asyncio.TimeoutError:
            pass
        wake.clear()
        try:
            report = await dispatcher.deliver_pending()
            while len(report.sent) + len(report.failed) + len(report.off) >= dispatcher.batch:
                report = await dispatcher.deliver_pending()  # a backlog: keep going without waiting
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - the loop outlives a database hiccup
            log.exception("DM delivery round failed")
