"""The bot's door to the money path (``backend.services.trading``), on its own event loop.

The money path's coroutines do blocking database work between their awaits
(a fan-out to many followers is one big transaction).  Running them on the
gateway's loop would stall heartbeats, slash-command answers and DMs while
they work, so the bot gives them a loop of their own in one thread
(``MoneyLoop``): the gateway loop only awaits the result.  One long-lived
loop, not a loop per call, because broker adapters (and their HTTP
sessions) are created once and stay bound to the loop that made them.  The
execution worker's loop (``backend.execution.worker.run``) runs on the same
money loop when the bot runs, so both share those adapters.

``DatabaseMoneyPath`` is what ``MessageRouter`` calls: ingest (store once,
trade if fresh), edit, delete, and the catch-up cursor.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from backend.bot.commands import REFUSED, fmt_money, fmt_qty, parse_percent, replying_async
from backend.bot.ingest import IncomingMessage
from backend.bot.sources import SourceInfo, advance_cursor
from backend.db.models import BrokerAccount, Position
from backend.errors import ValidationError
from backend.services import members, trading


class MoneyLoop:
    """A thread running one asyncio loop for the money path; ``run`` awaits a coroutine on it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="money-path", daemon=True)
        self._thread.start()

    async def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    def stop(self, timeout: float = 5.0) -> None:
        """Cancel what still runs on the loop (letting it clean up), then stop the thread."""
        if self.loop.is_closed():
            return
        if self.loop.is_running():
            async def shutdown() -> None:
                tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

            try:
                asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(timeout)
            except Exception:  # noqa: BLE001 - stopping must finish
                pass
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout)
        if not self.loop.is_running():
            self.loop.close()


class DatabaseMoneyPath:
    def __init__(self, engine: sa.Engine, loop: MoneyLoop | None = None) -> None:
        self.engine = engine
        self.loop = loop or MoneyLoop()

    async def ingest(self, source: SourceInfo, message: IncomingMessage, *, advance: bool = False) -> dict[str, Any]:
        return await self.loop.run(trading.ingest_discord_message(
            channel_id=str(source.channel_id), message_id=str(message.message_id), content=message.content,
            sent_at=message.sent_at, author_id=str(message.author_id), now=message.received_at, engine=self.engine,
            advance_cursor=advance))

    async def advance(self, source: SourceInfo, cursor: int) -> None:
        await asyncio.to_thread(advance_cursor, self.engine, source.source_id, cursor)

    async def edit(self, source: SourceInfo, message_id: int, content: str, edited_at) -> Any:
        return await self.loop.run(trading.ingest_discord_edit(
            channel_id=str(source.channel_id), message_id=str(message_id), content=content, edited_at=edited_at,
            engine=self.engine))

    async def delete(self, source: SourceInfo, message_id: int) -> Any:
        return await self.loop.run(trading.ingest_discord_delete(
            channel_id=str(source.channel_id), message_id=str(message_id), engine=self.engine))

    def close(self) -> None:
        self.loop.stop()


# ------------------------------------------------------------------ /close
def _positions_to_close(engine: sa.Engine, discord_user_id: str, symbol: str) -> tuple[int, list[tuple[int, str, str]]]:
    """(user id, [(account id, account label, symbol)]) of the member's open positions in ``symbol``."""
    from backend.signals.symbols import normalize_ticker

    raw = (symbol or "").strip().lstrip("$").upper()
    normal = normalize_ticker(raw)
    wanted = {raw} | ({normal[0]} if normal else set())
    with Session(engine) as session:
        user = members.user_for_discord(session, discord_user_id)
        rows = session.exec(select(Position.broker_account_id, BrokerAccount.label, Position.symbol)
                            .join(BrokerAccount, BrokerAccount.id == Position.broker_account_id)
                            .where(Position.user_id == user.id, Position.symbol.in_(wanted), Position.quantity != 0)
                            .order_by(Position.broker_account_id)).all()
    if not rows:
        raise ValidationError(f"You have no open {normal[0] if normal else raw} position. /positions lists them.",
                              field="symbol")
    return user.id, [tuple(r) for r in rows]


def _describe(order: dict[str, Any], label: str) -> str:
    qty = f"{order['side']} {fmt_qty(order['quantity'])} {order['symbol']}"
    if order["status"] == "filled":
        return f"✅ {label}: {qty} filled @ {fmt_money(order['avg_fill_price'])}"
    if order["status"] == "partially_filled":
        return f"◐ {label}: {qty} partly filled ({fmt_qty(order['filled_quantity'])} so far)"
    if order["status"] in ("rejected", "failed", "cancelled", "expired"):
        return f"{REFUSED}{label}: {qty} {order['status']}: {order['error_message'] or 'no reason given'}"
    return f"⏳ {label}: {qty} sent ({order['status']}); you will get a DM when it fills"


@replying_async
async def close(engine: sa.Engine, discord_user_id: str, guild_id: str | None, symbol: str,
                percent: int | str | None = None, *, request_id: str, loop: MoneyLoop | None = None) -> str:
    """``/close SYMBOL [percent]`` in every account that holds the position; the reply says what happened."""
    pct = parse_percent(percent)
    user_id, targets = await asyncio.to_thread(_positions_to_close, engine, discord_user_id, symbol)
    lines = []
    for account_id, label, sym in targets:
        coro = trading.close_position(user_id, account_id, sym, pct, request_id=f"discord:{request_id}",
                                      engine=engine)
        result = await (loop.run(coro) if loop else coro)
        lines += [_describe(o, label) for o in result["orders"]] or [f"{label}: nothing to close."]
    head = f"Closing {'all' if pct == Decimal(100) else f'{fmt_qty(pct)}%'} of {targets[0][2]}:"
    return "\n".join([head, *lines])


close_command = close
