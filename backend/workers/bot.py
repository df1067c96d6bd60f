"""``python -m backend.workers.bot``: the worker process.

It always runs the execution worker (``backend.execution.worker``: the
durable queue that fans out signals, sends orders and follows them until
they end).  With ``DISCORD_BOT_TOKEN`` set it also runs the Discord bot
(``backend.bot.client.TradeBot``), and the execution worker then runs on the
bot's money loop so both share one set of broker adapters.  Without a token
the process says so in its log and keeps trading for TradingView alerts and
dashboard commands: the embedded default needs no Discord application.

A Discord failure that reconnecting cannot cure (a wrong token, the message
content intent not enabled) is logged with what to do, and the execution
worker keeps running: orders already on their way must still be followed.
SIGINT/SIGTERM stop both cleanly.
"""

from __future__ import annotations

import asyncio
import logging
import signal

import discord
import sqlalchemy as sa

from backend.config import get_settings
from backend.db.session import get_engine
from backend.brokers.credentials import install_credentials_provider
from backend.logsetup import configure_logging
from backend.execution import worker as execution_worker

log = logging.getLogger("backend.workers.bot")

FATAL_HINTS = {
    discord.LoginFailure: "DISCORD_BOT_TOKEN was refused by Discord: copy the token again from the Developer "
                          "Portal (Bot > Reset Token).",
    discord.PrivilegedIntentsRequired: "Enable the Message Content intent for the bot in the Developer Portal "
                                       "(Bot > Privileged Gateway Intents); without it no signal can be read.",
}


async def run(engine: sa.Engine, *, token: str | None, stop: asyncio.Event, interval: float = 1.0,
              bot_options: dict | None = None) -> None:
    """Run until ``stop`` is set: the execution worker, plus the bot when ``token`` is given."""
    if not token:
        log.info("worker started: execution worker on; Discord bot off (DISCORD_BOT_TOKEN is not set)")
        work = asyncio.create_task(execution_worker.run(engine, interval=interval), name="execution-worker")
        await _until(stop, work)
        return

    from backend.bot.client import TradeBot

    bot = TradeBot(engine, **(bot_options or {}))
    work = asyncio.wrap_future(asyncio.run_coroutine_threadsafe(
        execution_worker.run(engine, interval=interval), bot.money_loop.loop))
    log.info("worker started: execution worker on; Discord bot on")
    discord_task = asyncio.create_task(bot.start(token), name="discord-bot")
    discord_task.add_done_callback(_report_bot_end)
    try:
        await _until(stop, work)
    finally:
        if not bot.is_closed():
            await bot.close()
        else:
            bot.money_loop.stop()
        await asyncio.gather(discord_task, return_exceptions=True)


def _report_bot_end(task: asyncio.Task) -> None:
    if task.cancelled() or task.exception() is None:
        return
    exc = task.exception()
    hint = next((h for kind, h in FATAL_HINTS.items() if isinstance(exc, kind)), None)
    log.error("Discord bot stopped: %s. %s The execution worker keeps running.", exc,
              hint or "Restart the worker once Discord is reachable.")


async def _until(stop: asyncio.Event, work: asyncio.Future) -> None:
    """Wait for ``stop``; if the execution worker dies first, surface its error."""
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({stopper, work}, return_when=asyncio.FIRST_COMPLETED)
    if work in done:
        stopper.cancel()
        work.result()  # raises what killed it; a clean return is impossible for the endless loop
        return
    work.cancel()
    await asyncio.gather(work, return_exceptions=True)


async def main() -> None:
    settings = get_settings()
    configure_logging(settings)
    install_credentials_provider()  # real-broker followers need their decrypted credentials
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await run(get_engine(), token=settings.discord_bot_token, stop=stop)
    log.info("worker stopped")


if __name__ == "__main__":
    asyncio.run(main())
