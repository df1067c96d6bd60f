"""The scheduler's jobs, each a plain function of an engine.

Each job is isolated: an exception is logged and the job runs again at its
next tick; one failing job never stops the others.  Jobs import the parts
they drive lazily so the scheduler starts even while a part is optional.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from backend.reconcile.job import reconcile_job
from backend.workers.heartbeat import beat

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    name: str
    seconds: int
    run: Callable[[sa.Engine], object]
    setting: str | None = None  # a settings field that overrides ``seconds`` (an operator's choice)

    def interval(self, settings) -> int:
        return int(getattr(settings, self.setting)) if self.setting else self.seconds


def heartbeat_job(engine: sa.Engine) -> None:
    beat(engine, "scheduler", {"jobs": [j.name for j in JOBS]})


def discord_token_job(engine: sa.Engine) -> None:
    from backend.services.discord_tokens import refresh_job

    refresh_job(engine)


def risk_halts_job(engine: sa.Engine, *, now: datetime | None = None) -> int:
    """Lift daily-loss halts (and day-long close-only states) once a new trading day has begun, so
    followers see ACTIVE, and hear about it, without waiting for the next signal to lift it."""
    from backend.execution.trading_state import lift_expired

    return lift_expired(engine, now=now)


_LOOPS: dict[str, asyncio.AbstractEventLoop] = {}


def kept_loop(name: str) -> asyncio.AbstractEventLoop:
    """An event loop on a daemon thread of its own, kept between a job's runs.

    What a frequent job builds on it (ccxt adapters: their HTTP sessions and
    loaded markets) lives on, instead of being rebuilt, markets and all, every
    few seconds, which would spend the exchange's request weight for nothing.
    """
    loop = _LOOPS.get(name)
    if loop is None or loop.is_closed():
        loop = asyncio.new_event_loop()
        threading.Thread(target=loop.run_forever, name=f"job-{name}", daemon=True).start()
        _LOOPS[name] = loop
    return loop


def held_targets_job(engine: sa.Engine):
    """Send the take-profits the engine holds (spot exchanges: the venue-held stop locks the coins) once the
    market reaches them; its adapters live on the job's own loop between runs (``held_targets``)."""
    from backend.execution.held_targets import run_held_targets

    return asyncio.run_coroutine_threadsafe(run_held_targets(engine), kept_loop("held_targets")).result()


def paper_walk_job(engine: sa.Engine) -> None:
    from backend.brokers.paper_walk import walk_paper_quotes

    walk_paper_quotes(engine)


JOBS: list[Job] = [
    Job("heartbeat", 15, heartbeat_job),
    Job("reconcile", 300, reconcile_job),
    Job("discord_tokens", 3600, discord_token_job),
    Job("risk_halts", 60, risk_halts_job),
    Job("paper_walk", 5, paper_walk_job),
    Job("held_targets", 5, held_targets_job, setting="held_targets_poll_seconds"),
]


def run_safely(job: Job, engine: sa.Engine) -> None:
    try:
        job.run(engine)
    except Exception:  # isolation: log and keep the scheduler alive
        log.exception("scheduled job %s failed", job.name)
