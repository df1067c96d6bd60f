"""The execution worker: a durable queue consumer over the database.

    python -m backend.execution.worker            # loop: recover + poll every --interval seconds
    python -m backend.execution.worker --once     # one recovery pass, then exit (crash tests, cron)

On start (and on every tick) it runs ``runner.recover``: signals still
``received`` are fanned out, ``new`` orders sent, pending cancels confirmed
and working orders re-read from their venues; then open positions are
marked at their venues' last prices (unrealised P&L), and a change of a broker
session's state (IBKR's gateway dropped or logged out, then back) is written to
its account (``services.broker_status.SessionWatch``).  Any number of workers may
run: signal rows are locked during a fan-out, decisions and client order ids
are unique, and the venues are idempotent, so two workers never double an
order.  Each tick writes a ``worker_heartbeats`` row for the health page.

``DATABASE_URL`` selects the database, as everywhere; see ``crash_hook``
for the test-only ``DTE_CRASH_AFTER`` variable.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket

import sqlalchemy as sa

from backend.db.session import get_engine
from backend.execution.adapters import Adapters
from backend.execution.runner import Report, recover
from backend.execution.tracking import refresh_marks

log = logging.getLogger("backend.execution.worker")
NAME = "execution"


def heartbeat(engine: sa.Engine, report: Report) -> None:
    from backend.workers.heartbeat import beat

    beat(engine, NAME, {"host": socket.gethostname(), "pid": os.getpid(), "signals": report.signals,
                        "submitted": report.submitted, "retries_pending": len(report.retries_pending)})


async def run(engine: sa.Engine, *, once: bool = False, interval: float = 1.0) -> Report:
    from backend.services.broker_status import SessionWatch

    adapters = Adapters(engine)
    sessions = SessionWatch(engine)  # a dropped or logged-out gateway session reaches the account row and a DM
    try:
        while True:
            report = await recover(engine, adapters, inline_retries=once)
            try:
                sessions.check(adapters)
            except sa.exc.SQLAlchemyError as exc:  # the next tick sees the state again
                log.warning("recording broker session states failed: %s", exc)
            try:
                await refresh_marks(engine, adapters)
            except sa.exc.SQLAlchemyError as exc:  # marks are cosmetic; the next tick retries
                log.warning("refreshing position marks failed: %s", exc)
            try:
                heartbeat(engine, report)
            except sa.exc.SQLAlchemyError as exc:  # the heartbeat is informative only
                log.warning("heartbeat failed: %s", exc)
            if once:
                return report
            await asyncio.sleep(interval)
    finally:
        await adapters.aclose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--once", action="store_true", help="one recovery pass, then exit")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between passes")
    args = parser.parse_args(argv)
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"))
    report = asyncio.run(run(get_engine(), once=args.once, interval=args.interval))
    if args.once:
        print(f"signals={report.signals} submitted={report.submitted} rounds={report.rounds} "
              f"retries_pending={len(report.retries_pending)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
