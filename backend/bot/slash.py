"""The slash commands, registered on a ``discord.app_commands.CommandTree``.

Each command is a thin shell: it passes the caller's Discord id, the guild id
and the options to the matching body in ``backend.bot.commands`` (run in a
worker thread: bodies use the blocking database session) and answers with
the returned text, always ephemerally, so a member's positions and P&L are
never shown to the channel.  ``/close`` talks to a broker, which may take
longer than Discord's 3-second answer window, so it defers first and sends
the result as a follow-up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import discord
import sqlalchemy as sa
from discord import app_commands

from backend.bot import commands
from backend.bot.money import MoneyLoop, close_command

log = logging.getLogger(__name__)


def _ids(interaction: discord.Interaction) -> tuple[str, str | None]:
    return str(interaction.user.id), (str(interaction.guild_id) if interaction.guild_id else None)


async def _answer(interaction: discord.Interaction, body: Callable[..., str], engine: sa.Engine, *options: Any) -> None:
    text = await asyncio.to_thread(body, engine, *_ids(interaction), *options)
    await interaction.response.send_message(commands.fit(text), ephemeral=True)


def register_commands(tree: app_commands.CommandTree, engine: sa.Engine, money_loop: MoneyLoop | None = None) -> None:
    """Add every command to ``tree`` (the caller syncs the tree with Discord)."""

    async def providers(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        guild_id = str(interaction.guild_id) if interaction.guild_id else None
        names = await asyncio.to_thread(commands.provider_names, engine, guild_id, current)
        return [app_commands.Choice(name=n, value=n) for n in names]

    @tree.command(name="link", description="Link this Discord account to your dashboard account")
    @app_commands.describe(code="The one-time code shown on the dashboard (Notifications > Discord)")
    async def link(interaction: discord.Interaction, code: str) -> None:
        await _answer(interaction, commands.link, engine, code)

    @tree.command(name="status", description="Your brokers, auto-trade and risk state")
    async def status(interaction: discord.Interaction) -> None:
        await _answer(interaction, commands.status, engine)

    @tree.command(name="positions", description="Your open positions")
    async def positions(interaction: discord.Interaction) -> None:
        await _answer(interaction, commands.positions, engine)

    @tree.command(name="pnl", description="Your profit and loss, today and in total")
    async def pnl(interaction: discord.Interaction) -> None:
        await _answer(interaction, commands.pnl, engine)

    @tree.command(name="close", description="Close a position, entirely or a percentage of it")
    @app_commands.describe(symbol="The symbol, e.g. AAPL or BTC/USDT", percent="How much to close, 1-100 (default 100)")
    async def close(interaction: discord.Interaction, symbol: str,
                    percent: app_commands.Range[int, 1, 100] | None = None) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        text = await close_command(engine, *_ids(interaction), symbol, percent, request_id=str(interaction.id),
                                   loop=money_loop)
        await interaction.followup.send(commands.fit(text), ephemeral=True)

    @tree.command(name="pause", description="Pause auto-trading (all providers, or one)")
    @app_commands.describe(provider="Only this provider (default: all)")
    @app_commands.autocomplete(provider=providers)
    async def pause(interaction: discord.Interaction, provider: str | None = None) -> None:
        await _answer(interaction, commands.pause, engine, provider)

    @tree.command(name="resume", description="Resume auto-trading (all providers, or one)")
    @app_commands.describe(provider="Only this provider (default: all)")
    @app_commands.autocomplete(provider=providers)
    async def resume(interaction: discord.Interaction, provider: str | None = None) -> None:
        await _answer(interaction, commands.resume, engine, provider)

    @tree.command(name="follow", description="Follow a signal provider of this server, with auto-trade on")
    @app_commands.describe(provider="The provider's name")
    @app_commands.autocomplete(provider=providers)
    @app_commands.guild_only()
    async def follow(interaction: discord.Interaction, provider: str) -> None:
        await _answer(interaction, commands.follow, engine, provider)

    @tree.command(name="unfollow", description="Stop following a signal provider of this server")
    @app_commands.describe(provider="The provider's name")
    @app_commands.autocomplete(provider=providers)
    @app_commands.guild_only()
    async def unfollow(interaction: discord.Interaction, provider: str) -> None:
        await _answer(interaction, commands.unfollow, engine, provider)

    @tree.command(name="dms", description="Turn the bot's direct messages (fills, alerts) on or off")
    async def dms(interaction: discord.Interaction, enabled: bool) -> None:
        await _answer(interaction, commands.dms, engine, enabled)

    @tree.error
    async def on_error(interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        log.error("slash command failed: %s", error, exc_info=error)
        send = interaction.followup.send if interaction.response.is_done() else interaction.response.send_message
        try:
            await send(commands.OOPS, ephemeral=True)
        except discord.HTTPException:
            pass
