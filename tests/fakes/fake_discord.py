"""A loopback fake of Discord's gateway (websocket) and REST API, for the real discord.py client.

discord.py 2.7.1 is pointed at it with ``pointed_at(fake)`` (which sets
``Route.BASE`` and ``DiscordWebSocket.DEFAULT_GATEWAY`` and restores them
afterwards).  The fake speaks the real wire format: HELLO, IDENTIFY ->
READY + GUILD_CREATE, heartbeats, RESUME -> RESUMED, and DISPATCH events
(MESSAGE_CREATE / UPDATE / DELETE, INTERACTION_CREATE) that a test pushes.
REST answers what the bot calls: login, command sync, channel history
(``after=``, newest first as Discord does), sending messages, opening DM
channels, interaction callbacks and member roles.  Every REST call is kept
in ``requests`` so a test can assert on what the bot really sent.

Responses are ``application/json`` exactly: aiohttp's ``json_response``
appends a charset, which discord.py refuses.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import discord
import yarl
from aiohttp import WSMsgType, web
from discord.utils import time_snowflake

from fakes.loopback import serve

APP_ID = "800000000000000001"
BOT_USER = {"id": APP_ID, "username": "trade-bot", "discriminator": "0", "global_name": None, "avatar": None,
            "bot": True, "flags": 0}


def user_payload(user_id: str, name: str | None = None) -> dict[str, Any]:
    return {"id": str(user_id), "username": name or f"user{user_id[-4:]}", "discriminator": "0",
            "global_name": None, "avatar": None}


def _iso(when: datetime) -> str:
    return when.astimezone(timezone.utc).isoformat()


def json_reply(data: Any, status: int = 200) -> web.Response:
    body = b"" if data is None else json.dumps(data).encode()
    if status == 204:
        return web.Response(status=204)
    return web.Response(body=body, status=status, headers={"Content-Type": "application/json"})


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    headers: dict[str, str]


@dataclass
class FakeDiscord:
    """State of the fake Discord: guilds, channels, message history, and what the bot sent."""

    guilds: dict[str, list[str]] = field(default_factory=dict)  # guild id -> text channel ids
    history: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # channel id -> messages, oldest first
    requests: list[Recorded] = field(default_factory=list)
    sent: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # channel id -> bodies the bot posted
    dm_channels: dict[str, str] = field(default_factory=dict)  # user id -> DM channel id
    callbacks: list[dict[str, Any]] = field(default_factory=list)  # interaction callback bodies (+ id/token)
    followups: list[dict[str, Any]] = field(default_factory=list)  # follow-up bodies after a deferred answer
    failing_channels: set[str] = field(default_factory=set)  # POST messages there -> 403 50007
    failing_history: set[str] = field(default_factory=set)  # GET history there -> 403 50001 (no access)
    identifies: int = 0
    resumes: int = 0
    url: str = ""

    def __post_init__(self) -> None:
        self._ids = itertools.count(1)
        self._sockets: list[web.WebSocketResponse] = []
        self._seq = 0
        self._connected = asyncio.Event()
        self._waiters: list[tuple[asyncio.Future, Any]] = []

    # ------------------------------------------------------------ ids and payloads
    def snowflake(self, when: datetime | None = None) -> str:
        """A snowflake whose embedded time is ``when`` (discord.py derives created_at from it)."""
        base = time_snowflake(when or datetime.now(timezone.utc))
        return str(base + next(self._ids) % 4096)

    def add_guild(self, guild_id: str, *channel_ids: str) -> None:
        self.guilds.setdefault(str(guild_id), []).extend(str(c) for c in channel_ids)
        for channel_id in channel_ids:
            self.history.setdefault(str(channel_id), [])

    def guild_of(self, channel_id: str) -> str | None:
        return next((g for g, chans in self.guilds.items() if str(channel_id) in chans), None)

    def _guild_payload(self, guild_id: str) -> dict[str, Any]:
        channels = [{"id": c, "type": 0, "name": f"signals-{c[-4:]}", "position": i, "guild_id": guild_id,
                     "permission_overwrites": [], "nsfw": False, "parent_id": None}
                    for i, c in enumerate(self.guilds[guild_id])]
        return {"id": guild_id, "name": f"guild-{guild_id[-4:]}", "icon": None, "owner_id": "1", "unavailable": False,
                "roles": [{"id": guild_id, "name": "@everyone", "permissions": "0", "position": 0, "color": 0,
                           "hoist": False, "managed": False, "mentionable": False, "flags": 0}],
                "channels": channels, "threads": [], "members": [], "emojis": [], "stickers": [], "features": [],
                "member_count": 2, "large": False, "joined_at": _iso(datetime.now(timezone.utc)),
                "voice_states": [], "presences": [], "stage_instances": [], "guild_scheduled_events": []}

    def message_payload(self, channel_id: str, content: str, *, author_id: str, when: datetime | None = None,
                        message_id: str | None = None) -> dict[str, Any]:
        when = when or datetime.now(timezone.utc)
        data = {"id": message_id or self.snowflake(when), "channel_id": str(channel_id), "type": 0,
                "content": content, "author": user_payload(author_id), "timestamp": _iso(when),
                "edited_timestamp": None, "tts": False, "mention_everyone": False, "mentions": [],
                "mention_roles": [], "attachments": [], "embeds": [], "pinned": False, "flags": 0}
        guild_id = self.guild_of(channel_id)
        if guild_id:
            data["guild_id"] = guild_id
        return data

    # ------------------------------------------------------------ what a test does
    async def post(self, channel_id: str, content: str, *, author_id: str, when: datetime | None = None,
                   deliver: bool = True) -> dict[str, Any]:
        """A user posts: stored in history; pushed as MESSAGE_CREATE when ``deliver`` (the bot is up)."""
        data = self.message_payload(channel_id, content, author_id=author_id, when=when)
        self.history.setdefault(str(channel_id), []).append(data)
        if deliver:
            await self.dispatch("MESSAGE_CREATE", data)
        return data

    async def redeliver(self, data: dict[str, Any]) -> None:
        await self.dispatch("MESSAGE_CREATE", data)

    async def edit(self, data: dict[str, Any], content: str) -> dict[str, Any]:
        edited = dict(data, content=content, edited_timestamp=_iso(datetime.now(timezone.utc)))
        history = self.history[data["channel_id"]]
        history[:] = [edited if m["id"] == data["id"] else m for m in history]
        await self.dispatch("MESSAGE_UPDATE", edited)
        return edited

    async def delete(self, data: dict[str, Any]) -> None:
        history = self.history[data["channel_id"]]
        history[:] = [m for m in history if m["id"] != data["id"]]
        payload = {"id": data["id"], "channel_id": data["channel_id"]}
        if data.get("guild_id"):
            payload["guild_id"] = data["guild_id"]
        await self.dispatch("MESSAGE_DELETE", payload)

    async def slash(self, name: str, *, user_id: str, guild_id: str | None, channel_id: str,
                    options: list[dict[str, Any]] | None = None, autocomplete: bool = False) -> dict[str, Any]:
        """A member runs ``/name`` (or types in an option with ``autocomplete``): INTERACTION_CREATE.

        Returns the interaction payload (its ``id`` and ``token`` name the callback URL).
        """
        interaction_id = self.snowflake()
        data: dict[str, Any] = {
            "id": interaction_id, "application_id": APP_ID, "type": 4 if autocomplete else 2, "token": f"tok-{interaction_id}",
            "version": 1, "attachment_size_limit": 8388608, "locale": "en-US", "app_permissions": "0",
            "channel_id": channel_id, "channel": {"id": channel_id, "type": 0 if guild_id else 1},
            "data": {"id": self.snowflake(), "name": name, "type": 1, "options": options or []},
            "entitlements": [], "authorizing_integration_owners": {}, "context": 0 if guild_id else 1,
        }
        if guild_id:
            data["guild_id"] = guild_id
            data["data"]["guild_id"] = None
            data["member"] = {"user": user_payload(user_id), "roles": [], "joined_at": _iso(datetime.now(timezone.utc)),
                              "deaf": False, "mute": False, "flags": 0, "permissions": "2248473465835073"}
        else:
            data["user"] = user_payload(user_id)
        data["data"].pop("guild_id", None)
        await self.dispatch("INTERACTION_CREATE", data)
        return data

    async def drop_connection(self, code: int = 4000) -> None:
        """Close every gateway socket with a resumable code: the client reconnects and RESUMEs."""
        self._connected.clear()
        for ws in list(self._sockets):
            await ws.close(code=code)

    async def wait_connected(self, timeout: float = 10.0) -> None:
        await asyncio.wait_for(self._connected.wait(), timeout)

    async def wait_for_request(self, predicate, timeout: float = 10.0) -> Recorded:
        """The first recorded REST call matching ``predicate`` (already made, or the next one)."""
        for rec in self.requests:
            if predicate(rec):
                return rec
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._waiters.append((future, predicate))
        return await asyncio.wait_for(future, timeout)

    # ------------------------------------------------------------ gateway
    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        for ws in list(self._sockets):
            await self._send_dispatch(ws, event, data)

    async def _send_dispatch(self, ws: web.WebSocketResponse, event: str, data: dict[str, Any]) -> None:
        self._seq += 1
        with contextlib.suppress(ConnectionResetError):
            await ws.send_str(json.dumps({"op": 0, "t": event, "s": self._seq, "d": data}))

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str(json.dumps({"op": 10, "d": {"heartbeat_interval": 41250}}))
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                payload = json.loads(msg.data)
                op = payload.get("op")
                if op == 1:
                    await ws.send_str(json.dumps({"op": 11}))
                elif op == 2:
                    self.identifies += 1
                    await self._ready(ws)
                elif op == 6:
                    self.resumes += 1
                    self._sockets.append(ws)
                    await self._send_dispatch(ws, "RESUMED", {})
                    self._connected.set()
        finally:
            if ws in self._sockets:
                self._sockets.remove(ws)
        return ws

    async def _ready(self, ws: web.WebSocketResponse) -> None:
        ready = {"v": 10, "user": BOT_USER, "session_id": f"session-{self.identifies}",
                 "resume_gateway_url": str(self.gateway_url), "guilds": [{"id": g, "unavailable": True} for g in self.guilds],
                 "application": {"id": APP_ID, "flags": 0}, "private_channels": [], "relationships": []}
        await self._send_dispatch(ws, "READY", ready)
        for guild_id in self.guilds:
            await self._send_dispatch(ws, "GUILD_CREATE", self._guild_payload(guild_id))
        self._sockets.append(ws)
        self._connected.set()

    @property
    def gateway_url(self) -> yarl.URL:
        return yarl.URL(self.url.replace("http://", "ws://") + "/gw")

    # ------------------------------------------------------------ REST
    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._record])
        app.router.add_get("/gw", self._gateway)
        r = app.router
        base = "/api/v10"
        r.add_get(f"{base}/users/@me", self._me)
        r.add_get(f"{base}/oauth2/applications/@me", self._app_info)
        r.add_get(f"{base}/gateway/bot", self._gateway_bot)
        r.add_put(f"{base}/applications/{{app}}/commands", self._sync_commands)
        r.add_put(f"{base}/applications/{{app}}/guilds/{{guild}}/commands", self._sync_commands)
        r.add_get(f"{base}/channels/{{channel}}/messages", self._history)
        r.add_post(f"{base}/channels/{{channel}}/messages", self._send)
        r.add_post(f"{base}/users/@me/channels", self._open_dm)
        r.add_post(f"{base}/interactions/{{id}}/{{token}}/callback", self._callback)
        r.add_put(f"{base}/guilds/{{guild}}/members/{{user}}/roles/{{role}}", self._no_content)
        r.add_delete(f"{base}/guilds/{{guild}}/members/{{user}}/roles/{{role}}", self._no_content)
        r.add_post(f"{base}/webhooks/{{app}}/{{token}}", self._followup)
        return app

    @web.middleware
    async def _record(self, request: web.Request, handler):
        if request.path != "/gw":
            raw = await request.read()
            body = json.loads(raw) if raw else None
            rec = Recorded(request.method, request.path.removeprefix("/api/v10"), dict(request.query), body,
                           dict(request.headers))
            self.requests.append(rec)
            for future, predicate in list(self._waiters):
                if not future.done() and predicate(rec):
                    future.set_result(rec)
                    self._waiters.remove((future, predicate))
        return await handler(request)

    async def _me(self, _request: web.Request) -> web.Response:
        return json_reply(BOT_USER)

    async def _no_content(self, _request: web.Request) -> web.Response:
        return json_reply(None, 204)

    async def _followup(self, request: web.Request) -> web.Response:
        """An interaction follow-up (after a deferred answer): POST /webhooks/{app}/{token}."""
        body = await request.json()
        self.followups.append(dict(body, token=request.match_info["token"]))
        data = self.message_payload(self.snowflake(), body.get("content", ""), author_id=APP_ID)
        data.update(author=BOT_USER, flags=body.get("flags", 0), webhook_id=APP_ID)
        return json_reply(data)

    async def _app_info(self, _request: web.Request) -> web.Response:
        return json_reply({"id": APP_ID, "name": "trade-bot", "description": "", "icon": None, "bot_public": True,
                           "bot_require_code_grant": False, "owner": user_payload("1", "owner"), "verify_key": "00",
                           "flags": 0, "summary": "", "rpc_origins": [], "team": None})

    async def _gateway_bot(self, _request: web.Request) -> web.Response:
        return json_reply({"url": str(self.gateway_url), "shards": 1, "session_start_limit":
                           {"total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1}})

    async def _sync_commands(self, request: web.Request) -> web.Response:
        body = await request.json()
        return json_reply([dict(cmd, id=self.snowflake(), application_id=APP_ID, version="1",
                                default_member_permissions=None, dm_permission=True) for cmd in body])

    async def _history(self, request: web.Request) -> web.Response:
        channel = request.match_info["channel"]
        if channel in self.failing_history:
            return json_reply({"message": "Missing Access", "code": 50001}, 403)
        after = int(request.query.get("after", "0"))
        limit = int(request.query.get("limit", "50"))
        newer = sorted((m for m in self.history.get(channel, []) if int(m["id"]) > after), key=lambda m: int(m["id"]))
        return json_reply(list(reversed(newer[:limit])))  # Discord answers newest first

    async def _send(self, request: web.Request) -> web.Response:
        channel = request.match_info["channel"]
        if channel in self.failing_channels:
            return json_reply({"message": "Cannot send messages to this user", "code": 50007}, 403)
        body = await request.json()
        self.sent.setdefault(channel, []).append(body)
        data = self.message_payload(channel, body.get("content", ""), author_id=APP_ID)
        data["author"] = BOT_USER
        return json_reply(data)

    async def _open_dm(self, request: web.Request) -> web.Response:
        user_id = str((await request.json())["recipient_id"])
        channel_id = self.dm_channels.setdefault(user_id, self.snowflake())
        return json_reply({"id": channel_id, "type": 1, "last_message_id": None,
                           "recipients": [user_payload(user_id)]})

    async def _callback(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.callbacks.append(dict(body, interaction_id=request.match_info["id"], token=request.match_info["token"]))
        flags = (body.get("data") or {}).get("flags", 0)
        return json_reply({"interaction": {"id": request.match_info["id"], "type": 2,
                                           "response_message_ephemeral": bool(flags & 64)}})

    # ------------------------------------------------------------ lookups for assertions
    def dms_to(self, user_id: str) -> list[str]:
        channel = self.dm_channels.get(str(user_id))
        return [b.get("content", "") for b in self.sent.get(channel, [])] if channel else []

    def history_reads(self, channel_id: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == "GET" and r.path == f"/channels/{channel_id}/messages"]


@contextlib.contextmanager
def pointed_at(fake: FakeDiscord) -> Iterator[None]:
    """Point discord.py's REST base and gateway at the fake; restore them afterwards."""
    saved = discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    discord.http.Route.BASE = f"{fake.url}/api/v10"
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = fake.gateway_url
    try:
        yield
    finally:
        discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = saved


@contextlib.asynccontextmanager
async def running_fake(fake: FakeDiscord | None = None) -> AsyncIterator[FakeDiscord]:
    """Serve a fake Discord on 127.0.0.1 and point discord.py at it for the duration."""
    fake = fake or FakeDiscord()
    async with serve(fake.app()) as url:
        fake.url = url
        with pointed_at(fake):
            yield fake
