"""The Discord side of ``backend.services.roles``: adding and removing a member's role.

Two ways to reach Discord, same calls (``PUT``/``DELETE
/guilds/{guild}/members/{user}/roles/{role}`` with an audit-log reason):

* ``BotRoleApi`` uses the running bot's HTTP client (inside the worker);
* ``RestRoleApi`` logs in over REST only, no gateway, for a process that is
  not the bot (the web process handling a billing webhook):
  ``async with RestRoleApi(token) as api: await sync_paid_role(session, api, ...)``.

The bot needs the Manage Roles permission and its own role must sit above the
paid role in the server's role list (Discord's rule); otherwise Discord
answers 403 and the error reaches the caller, which can retry later.
"""

from __future__ import annotations

import asyncio

import discord
from discord.http import HTTPClient


class BotRoleApi:
    def __init__(self, client: discord.Client) -> None:
        self.http = client.http

    async def add_role(self, guild_id: str, discord_user_id: str, role_id: str, *, reason: str) -> None:
        await self.http.add_role(int(guild_id), int(discord_user_id), int(role_id), reason=reason)

    async def remove_role(self, guild_id: str, discord_user_id: str, role_id: str, *, reason: str) -> None:
        await self.http.remove_role(int(guild_id), int(discord_user_id), int(role_id), reason=reason)


class RestRoleApi(BotRoleApi):
    """A short-lived REST-only session with the bot token (``async with``)."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.http = HTTPClient(asyncio.get_running_loop())

    async def __aenter__(self) -> RestRoleApi:
        await self.http.static_login(self.token)
        return self

    async def __aexit__(self, *_exc) -> None:
        await self.http.close()
