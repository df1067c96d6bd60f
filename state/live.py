"""Live updates: a background task per open page that reloads it when the bus says something changed.

The bus (``backend.events``) only says "look again"; the database stays the
truth, so every push re-reads the page's data instead of patching it with
the event's payload, and a page that missed events (dropped connection) is
resynchronised by its ``on_load`` reload.

Order events (``order.updated``, ``decision.created``) refresh at once.
Portfolio events (positions, accounts, risk state, notifications) refresh
at most once per second per client: a burst of fills becomes one reload.

The task is guarded against starting twice for the same client: a backend
var records that it runs, with a heartbeat so that a task lost with its
worker (Redis state manager) does not block a new one forever.  It stops
when the client's websocket is gone or the client moved to another page.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import reflex as rx
from sqlmodel import Session

from backend.db.session import session_scope
from backend.events import RESYNC_TYPE, get_bus, user_topic

ORDER_EVENTS = frozenset({"order.updated", "decision.created"})
PORTFOLIO_INTERVAL = 1.0     # seconds between two portfolio refreshes of one client
CHECK_INTERVAL = 5.0         # how often an idle task checks that its client is still there
STALE_AFTER = 3 * CHECK_INTERVAL


def classify(messages: list[str]) -> tuple[bool, bool]:
    """(orders changed, portfolio changed) for a batch of bus messages."""
    orders = portfolio = False
    for raw in messages:
        try:
            kind = json.loads(raw).get("type", "")
        except (ValueError, AttributeError):
            continue
        if kind == RESYNC_TYPE:  # the bus may have lost events: reload everything
            orders = portfolio = True
        elif kind in ORDER_EVENTS:
            orders = True
        else:
            portfolio = True
    return orders, portfolio


def client_connected(token: str) -> bool:
    """Whether this worker still holds a websocket for ``token`` (True outside a running server)."""
    module = sys.modules.get(rx.config.get_config().module)
    app = getattr(module, "app", None) if module else None
    namespace = getattr(app, "event_namespace", None)
    if namespace is None:
        return True
    return token in namespace.token_to_sid


def drain(queue: asyncio.Queue) -> list[str]:
    items = []
    while not queue.empty():
        items.append(queue.get_nowait())
    return items


class LiveUpdates(rx.State, mixin=True):
    """Mix into a page state that defines ``_live_refresh(session, user_id, orders, portfolio)``."""

    _live_seen: float = 0.0

    def _live_refresh(self, session: Session, user_id: int, orders: bool, portfolio: bool) -> None:
        raise NotImplementedError

    def _live_apply(self, orders: bool, portfolio: bool) -> bool:
        """Reload inside ``async with self``; False when the user is no longer signed in."""
        self._live_seen = time.monotonic()
        with session_scope() as session:
            user = self._signed_in_user(session)
            if user is None:
                return False
            if orders or portfolio:
                self._live_refresh(session, user.id, orders, portfolio)
        return True

    @rx.event(background=True)
    async def start_live(self):
        async with self:
            if time.monotonic() - self._live_seen < STALE_AFTER:
                return  # already running for this client
            with session_scope() as session:
                user = self._signed_in_user(session)
                user_id = user.id if user else None
            if user_id is None:
                return
            self._live_seen = time.monotonic()
            token = self.router.session.client_token
            page = self.router.url.path
        await self._live_loop(user_id, token, page)

    async def _live_loop(self, user_id: int, token: str, page: str) -> None:
        last_portfolio = 0.0
        portfolio_due = False
        try:
            async with get_bus().subscribe(user_topic(user_id)) as queue:
                while True:
                    wait = CHECK_INTERVAL
                    if portfolio_due:
                        wait = max(0.0, last_portfolio + PORTFOLIO_INTERVAL - time.monotonic())
                    try:
                        first = await asyncio.wait_for(queue.get(), timeout=wait)
                        batch = [first, *drain(queue)]
                    except TimeoutError:
                        batch = []
                    if not client_connected(token):
                        return
                    orders, portfolio = classify(batch)
                    portfolio_due = portfolio_due or portfolio
                    now = time.monotonic()
                    refresh_portfolio = portfolio_due and now - last_portfolio >= PORTFOLIO_INTERVAL
                    async with self:
                        if self.router.url.path != page:
                            return
                        if not self._live_apply(orders, refresh_portfolio):
                            return
                    if refresh_portfolio:
                        last_portfolio, portfolio_due = now, False
        finally:
            async with self:
                self._live_seen = 0.0
