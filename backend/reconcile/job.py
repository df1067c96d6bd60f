"""The scheduler's reconciliation job and the synchronous entry point the CLI shares.

Kept import-light: the scheduler imports this module at start, and the
reconciliation machinery (adapters, vendor SDKs) is loaded on the first run.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any

import sqlalchemy as sa

INTERVAL_SECONDS = 300


def run_blocking(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine to completion from synchronous code, even inside a running event loop.

    The scheduler calls its jobs once from inside its own loop at start
    (where ``asyncio.run`` is refused) and later from worker threads; a
    loop of our own on a helper thread covers both.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = asyncio.run(coro)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="reconcile", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box.get("result")


def reconcile_job(engine: sa.Engine):
    """Every ``INTERVAL_SECONDS``: reconcile all connected accounts with credentials from the vault.

    The scheduler's adapters are its own, next to the execution worker's: a
    gateway session (IBKR) gets a client id of its own (``RECONCILE_OPTIONS``).
    """
    import logging

    from backend.brokers.credentials import RECONCILE_OPTIONS, build_provider
    from backend.reconcile.run import reconcile_all

    report = run_blocking(reconcile_all(engine, provider=build_provider(options=RECONCILE_OPTIONS)))
    logging.getLogger(__name__).info("%s", report.lines()[0])
    return report
