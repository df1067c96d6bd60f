"""Slash-command bodies: plain arguments in, the reply text out.

Each function takes the engine, the caller's Discord user id, the guild id
(None in a DM) and the command's options, calls ``backend.services`` (the
same functions the dashboard calls: ``follows`` for following and pausing,
exactly as the Providers page) in one transaction, and returns what the
member should read.  They know nothing of discord.py, so they are tested
without Discord; ``backend.bot.slash`` wires them to the CommandTree and
answers ephemerally.

Refusals are answers, not crashes: an unlinked member, a missing role, an
unknown provider or symbol each get a sentence saying what to do
(``TradeExecutorError.message``).  An unexpected error is logged with its
traceback and the member gets a short apology, never a stack trace.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from decimal import Decimal

import sqlalchemy as sa

from backend.db.session import session_scope
from backend.errors import NotFound, TradeExecutorError, ValidationError
from backend.services import follows, members

log = logging.getLogger(__name__)

REFUSED = "⚠️ "
OOPS = "Something went wrong on our side; nothing was changed. Please try again in a minute."


def fmt_money(value: Decimal | None) -> str:
    if value is None:
        return "n/a"
    sign = "-" if value < 0 else ""
    return f"{sign}${abs(value).quantize(Decimal('0.01')):,}"


def fmt_signed(value: Decimal) -> str:
    return ("+" if value > 0 else "") + fmt_money(value)


def fmt_qty(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text if "." not in text else text.rstrip("0").rstrip(".")


def fit(text: str, limit: int = 2000) -> str:
    """Discord refuses messages over 2,000 characters: cut at a line and say so."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 40].rsplit("\n", 1)[0]
    return cut + "\n... (more on the dashboard)"


def replying(body: Callable[..., str]) -> Callable[..., str]:
    """Turn product errors into a refusal sentence and anything else into an apology."""

    @functools.wraps(body)
    def wrapper(*args, **kwargs) -> str:
        try:
            return body(*args, **kwargs)
        except TradeExecutorError as exc:
            return REFUSED + exc.message
        except Exception:  # noqa: BLE001 - a command never crashes the bot
            log.exception("slash command %s failed", body.__name__)
            return OOPS

    return wrapper


def replying_async(body):
    """``replying`` for a coroutine body (``/close`` awaits the broker)."""

    @functools.wraps(body)
    async def wrapper(*args, **kwargs) -> str:
        try:
            return await body(*args, **kwargs)
        except TradeExecutorError as exc:
            return REFUSED + exc.message
        except Exception:  # noqa: BLE001
            log.exception("slash command %s failed", body.__name__)
            return OOPS

    return wrapper


@replying
def link(engine: sa.Engine, discord_user_id: str, guild_id: str | None, code: str) -> str:
    with session_scope(engine) as session:
        user = members.redeem_link_code(session, discord_user_id, code)
        name = user.display_name or user.username
    return (f"✅ Linked: this Discord account now trades as **{name}**. Try /status, and /follow a provider "
            "of this server.")


@replying
def status(engine: sa.Engine, discord_user_id: str, guild_id: str | None) -> str:
    with session_scope(engine) as session:
        user = members.user_for_discord(session, discord_user_id)
        st = members.member_status(session, user.id)
    lines = [f"**{st.name}**"]
    if st.accounts:
        lines.append("Brokers: " + "; ".join(
            f"{a.label} ({a.broker}{', live' if a.live else ''}) {a.status}" for a in st.accounts))
    else:
        lines.append("Brokers: none connected yet (connect one on the dashboard).")
    following = [f"{f.source_name} ({'on' if f.auto_trade else 'paused'})" for f in st.follows]
    lines.append(f"Auto-trade: {'ON' if st.auto_trading else 'OFF'}"
                 + (f" - following {', '.join(following)}" if following else " - not following anyone"))
    if st.risk is not None:
        risk = f"Risk state: {st.risk.trading_state}"
        lines.append(risk + (f" ({st.risk.reason})" if st.risk.reason else ""))
    lines.append(f"Direct messages: {'on' if st.dm_enabled else 'off'}")
    return "\n".join(lines)


@replying
def positions(engine: sa.Engine, discord_user_id: str, guild_id: str | None) -> str:
    with session_scope(engine) as session:
        user = members.user_for_discord(session, discord_user_id)
        views = members.open_positions(session, user.id)
    if not views:
        return "No open positions."
    lines = ["**Open positions**"]
    for p in views[:20]:
        side = "long" if p.quantity > 0 else "short"
        last = f", last {fmt_money(p.last_price)}" if p.last_price is not None else ""
        lines.append(f"{p.symbol}: {side} {fmt_qty(abs(p.quantity))} @ {fmt_money(p.avg_price)}{last}, "
                     f"P&L {fmt_signed(p.unrealized_pnl)} ({p.account_label})")
    if len(views) > 20:
        lines.append(f"... and {len(views) - 20} more on the dashboard.")
    return "\n".join(lines)


@replying
def pnl(engine: sa.Engine, discord_user_id: str, guild_id: str | None) -> str:
    with session_scope(engine) as session:
        user = members.user_for_discord(session, discord_user_id)
        totals = members.pnl_summary(session, user.id)
    return (f"**P&L** today {fmt_signed(totals.today_pnl)} · total {fmt_signed(totals.total_pnl)} "
            f"(realised {fmt_signed(totals.realized_pnl)}, open {fmt_signed(totals.unrealized_pnl)})\n"
            f"Equity {fmt_money(totals.equity)}")


def _source(session, guild_id: str | None, provider: str | None):
    if not provider:
        return None
    community = members.community_for_guild(session, guild_id)
    return members.find_source(session, community.id, provider)


def _set_auto_trade(engine: sa.Engine, discord_user_id: str, guild_id: str | None, provider: str | None,
                    enabled: bool) -> str:
    with session_scope(engine) as session:
        user = members.user_for_discord(session, discord_user_id)
        source = _source(session, guild_id, provider)
        changed = follows.set_auto_trade_all(session, user.id, enabled, source_id=source.id if source else None)
        scope = source.name if source else "every provider you follow"
    if not changed:
        return f"Auto-trading was already {'on' if enabled else 'paused'} for {scope}."
    if enabled:
        return f"▶️ Auto-trading resumed for {scope}: new signals will be traded again."
    return f"⏸️ Auto-trading paused for {scope}: new signals will not be traded. Open positions stay open."


@replying
def pause(engine: sa.Engine, discord_user_id: str, guild_id: str | None, provider: str | None = None) -> str:
    return _set_auto_trade(engine, discord_user_id, guild_id, provider, False)


@replying
def resume(engine: sa.Engine, discord_user_id: str, guild_id: str | None, provider: str | None = None) -> str:
    return _set_auto_trade(engine, discord_user_id, guild_id, provider, True)


@replying
def follow(engine: sa.Engine, discord_user_id: str, guild_id: str | None, provider: str) -> str:
    with session_scope(engine) as session:
        user = members.user_for_discord(session, discord_user_id)
        community = members.community_for_guild(session, guild_id)
        source = members.find_source(session, community.id, provider)
        followed = follows.follow(session, user.id, source.id)
        created = followed.created
    if not created:
        return f"You already follow {source.name}. Use /resume {source.name} if it is paused."
    return (f"✅ You now follow **{source.name}** with auto-trade on. Its next signals will be traded under your "
            "risk limits (set them on the dashboard).")


@replying
def unfollow(engine: sa.Engine, discord_user_id: str, guild_id: str | None, provider: str) -> str:
    with session_scope(engine) as session:
        user = members.user_for_discord(session, discord_user_id)
        community = members.community_for_guild(session, guild_id)
        source = members.find_source(session, community.id, provider)
        row = follows.follow_of(session, user.id, source.id)
        if row is None:
            raise NotFound(f"You do not follow {source.name}.", field="provider")
        follows.unfollow(session, user.id, row.id)
    return f"You no longer follow {source.name}. Open positions from its signals stay open (/close to exit)."


@replying
def dms(engine: sa.Engine, discord_user_id: str, guild_id: str | None, enabled: bool) -> str:
    with session_scope(engine) as session:
        user = members.user_for_discord(session, discord_user_id)
        members.set_dm_enabled(session, user.id, enabled)
    return "🔔 Direct messages on." if enabled else "🔕 Direct messages off: check the dashboard for fills and alerts."


def provider_names(engine: sa.Engine, guild_id: str | None, typed: str) -> list[str]:
    """Autocomplete for the provider option: this server's providers matching what was typed."""
    try:
        with session_scope(engine) as session:
            community = members.community_for_guild(session, guild_id)
            names = [s.name for s in members.providers(session, community.id)]
    except TradeExecutorError:
        return []
    typed = (typed or "").lower()
    return [n for n in names if typed in n.lower()][:25]


def parse_percent(percent: str | float | int | None) -> Decimal:
    """``/close`` percent: 1-100, default 100; refused with a sentence otherwise."""
    if percent is None or percent == "":
        return Decimal(100)
    try:
        value = Decimal(str(percent).strip().rstrip("%"))
    except ArithmeticError:
        raise ValidationError("Percent must be a number from 1 to 100, for example 50.", field="percent") from None
    if not (Decimal(0) < value <= Decimal(100)):
        raise ValidationError("Percent must be a number from 1 to 100, for example 50.", field="percent")
    return value
