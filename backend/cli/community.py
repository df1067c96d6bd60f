"""``python -m backend community ...``: connect a Discord server and register signal sources.

Commands act as a named community admin (``--as`` a username), through the
same service functions and role checks as the dashboard.
"""

from __future__ import annotations

import argparse


def register(groups: argparse._SubParsersAction) -> None:
    parser = groups.add_parser("community", help="connect a Discord server, register signal sources")
    commands = parser.add_subparsers(dest="command", metavar="<command>", required=True)

    guild = commands.add_parser("connect-guild", help="link a community to its Discord server")
    guild.add_argument("--guild-id", required=True)
    guild.add_argument("--paid-role-id", default=None)
    guild.set_defaults(handler=_connect_guild)

    discord = commands.add_parser("add-discord-source", help="register a provider's channel")
    discord.add_argument("--channel-id", required=True)
    discord.add_argument("--name", required=True)
    discord.add_argument("--provider", required=True, help="the provider's username")
    discord.set_defaults(handler=_add_discord)

    tv = commands.add_parser("add-tradingview-source", help="create a TradingView webhook (prints URL and secret once)")
    tv.add_argument("--name", required=True)
    tv.add_argument("--provider", required=True, help="the provider's username")
    tv.set_defaults(handler=_add_tradingview)

    for sub in (guild, discord, tv):
        sub.add_argument("--community", required=True, help="the community's slug")
        sub.add_argument("--as", dest="acting", required=True, help="username of a community admin")


def _run(args: argparse.Namespace, action) -> int:
    from sqlmodel import select

    from backend.db.models import Community, User
    from backend.db.session import session_scope
    from backend.errors import TradeExecutorError

    try:
        with session_scope() as session:
            community = session.exec(select(Community).where(Community.slug == args.community)).first()
            acting = session.exec(select(User).where(User.username == args.acting)).first()
            if community is None or acting is None:
                print(f"Unknown community {args.community!r} or user {args.acting!r}.")
                return 2
            provider = None
            if getattr(args, "provider", None):
                provider = session.exec(select(User).where(User.username == args.provider)).first()
                if provider is None:
                    print(f"Unknown provider {args.provider!r}.")
                    return 2
            print(action(session, acting.id, community.id, provider.id if provider else None))
    except TradeExecutorError as exc:
        print(f"Refused: {exc.message}")
        return 1
    return 0


def _connect_guild(args):
    from backend.services import sources

    return _run(args, lambda s, me, cid, _p: sources.connect_guild(s, me, cid, args.guild_id, args.paid_role_id)
                or f"Community {args.community} is connected to Discord server {args.guild_id}.")


def _add_discord(args):
    from backend.services import sources

    return _run(args, lambda s, me, cid, pid: "Registered: %s (source %d); the bot picks it up within 15 s." % (
        (created := sources.register_discord_source(s, me, cid, provider_id=pid, channel_id=args.channel_id,
                                                    name=args.name)).name, created.source_id))


def _add_tradingview(args):
    from backend.config import get_settings
    from backend.services import sources

    def action(s, me, cid, pid):
        created = sources.register_tradingview_source(s, me, cid, provider_id=pid, name=args.name)
        return (f"Webhook URL: {get_settings().public_url}{created.webhook_path}\n"
                f"Secret (shown once; put it in the alert's JSON as \"secret\"): {created.webhook_secret}")

    return _run(args, action)
