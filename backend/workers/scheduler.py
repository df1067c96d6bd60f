"""``python -m backend.workers.scheduler``: APScheduler jobs in their own process.

Runs exactly once per deployment (never inside the web process, which may
have many workers): heartbeats, reconciliation with brokers (which also
records equity snapshots), Discord token refresh, lifting daily-loss halts,
sending the take-profits the engine holds at spot exchanges once their price
is reached (every ``HELD_TARGETS_POLL_SECONDS``), and, when ``PAPER_RANDOM_WALK_BPS`` is set (the run command sets it for the
demo), a random walk of the paper venue's quotes so the demo moves.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from backend.config import get_settings
from backend.db.session import get_engine
from backend.logsetup import configure_logging
from backend.workers.jobs import JOBS, run_safely

log = logging.getLogger("backend.scheduler")


def build_scheduler(engine) -> AsyncIOScheduler:
    """Every job on its interval; each first runs when the process starts (see ``main``)."""
    scheduler = AsyncIOScheduler(timezone="UTC")
    settings = get_settings()
    for job in JOBS:
        scheduler.add_job(run_safely, IntervalTrigger(seconds=job.interval(settings)), args=[job, engine], id=job.name,
                          max_instances=1, coalesce=True)
    return scheduler


async def main() -> None:
    settings = get_settings()
    configure_logging(settings)
    engine = get_engine()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    scheduler = build_scheduler(engine)
    scheduler.start()
    log.info("scheduler started with jobs: %s", ", ".join(j.name for j in JOBS))
    for job in JOBS:  # at once, not one interval after start: a fresh deployment shows its heartbeat now
        await loop.run_in_executor(None, run_safely, job, engine)
        if stop.is_set():
            break
    await stop.wait()
    scheduler.shutdown(wait=False)
    log.info("scheduler stopped")


if __name__ == "__main__":
    asyncio.run(main())
