"""Run an aiohttp application on 127.0.0.1 on a free port, inside the test's event loop.

The SDKs under test (alpaca-py in a worker thread, ccxt's aiohttp session)
reach it over real TCP, so request building, auth headers and response
parsing all run for real.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web


@asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[str]:
    """Yield the base URL (``http://127.0.0.1:<port>``) while the app is served."""
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # aiohttp exposes no public accessor for port 0
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


FIXTURES = __import__("pathlib").Path(__file__).resolve().parent.parent / "fixtures"


def load_fixture(venue: str, name: str):
    """A recorded payload from ``tests/fixtures/<venue>/<name>`` (parsed JSON), a fresh copy each call."""
    import json

    return json.loads((FIXTURES / venue / name).read_text())


def fmt(value) -> str | None:
    """Decimals as venues print them: plain notation, no exponent, no trailing zeros."""
    if value is None:
        return None
    text = format(value.normalize(), "f") if hasattr(value, "normalize") else str(value)
    return text
