"""What the three crypto fakes share: the book, one-shot faults, error bodies from fixtures.

``fail_next(kind, path=None)`` queues a one-shot fault for the next request
(to ``path`` only, when given):
"rate_limited" (HTTP 429 in the venue's format), "server_error",
"timeout" (sleep ``delay_seconds`` then answer normally, like a venue that
accepted the request but answered too late).
"""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

from fakes.loopback import load_fixture
from fakes.venue_book import VenueBook

PARAMS = web.RequestKey("params", dict)  # the decoded query/form parameters of a request


class CcxtVenueFake:
    venue = "base"

    def __init__(self, book: VenueBook, api_key: str, secret: str) -> None:
        self.book = book
        self.api_key = api_key
        self.secret = secret
        self.errors = load_fixture(self.venue, "errors.json")
        self.faults: list[tuple[str, str | None]] = []
        self.delay_seconds = 3.0
        self.requests: list[tuple[str, str, dict]] = []

    def error(self, kind: str) -> web.Response:
        spec = self.errors[kind]
        return web.Response(text=json.dumps(spec["body"]), status=spec["status"], content_type="application/json")

    def fail_next(self, kind: str, path: str | None = None) -> None:
        self.faults.append((kind, path))

    async def apply_fault(self, request: web.Request) -> web.Response | None:
        """``path`` may be "/api/v3/order" or, to pick one method, "POST /api/v3/order"."""
        keys = (None, request.path, f"{request.method} {request.path}")
        index = next((i for i, (_, p) in enumerate(self.faults) if p in keys), None)
        if index is None:
            return None
        fault, _ = self.faults.pop(index)
        if fault == "timeout":
            await asyncio.sleep(self.delay_seconds)
            return None
        return self.error(fault)

    def app(self) -> web.Application:
        raise NotImplementedError
