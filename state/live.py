"""Live updates: a background task per open page that reloads it when the bus says something changed.

The bus (``backend.events``) only says "look again"; the database stays the
truth, so every push re-reads the page's data instead of patching it with
the event's payload (clients showing the same page of the same member share
one such read per web worker: ``state.shared_reads``), and a page that
missed events (dropped connection) is resynchronised by its ``on_load``
reload, which Reflex runs again when the websocket reconnects.

The task subscribes after the page's ``on_load`` read, so its first push is
a catch-up read at once: whatever committed in between (and so reached no
subscription) is shown without waiting for the next event.

Order events (``order.updated``) refresh at once.  Portfolio events
(positions, accounts, risk state, notifications, risk decisions) refresh at
most once per second per client: a burst of fills becomes one reload.  A
decision is not an order event: an approved one is followed by its order's
own event, and reloading the order list for it too would only delay the
fill's reload behind a useless one.  ``bus.resync`` (the bus lost events)
reloads everything.

One task per client: each ``start_live`` claims the client (``_live_owner``)
and an older task for the same client ends at its next wake-up when it sees
it lost the claim.  The newest start wins because after a reconnect (maybe
to another web worker, with the Redis state manager) the old task may still
be alive but can no longer reach the client.  A task also stops when the
client's websocket is gone or the client moved to another page, and each
push re-checks the session cookie (a revoked session gets no more pushes).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
import uuid

from typing import ClassVar

import reflex as rx
from sqlmodel import Session

from backend.db.session import session_scope
from backend.events import RESYNC_TYPE, get_bus, user_topic
from backend.services import auth as auth_service
from state.shared_reads import fresh_after

ORDER_EVENTS = frozenset({"order.updated"})
PORTFOLIO_INTERVAL = 1.0     # seconds between two portfolio refreshes of one client
CHECK_INTERVAL = 5.0         # how often an idle task checks that its client is still there
RETRY_AFTER = 1.0            # a push that failed (database or state lock trouble) is retried this much later
log = logging.getLogger(__name__)


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
    """Mix into a page state that defines ``_live_refresh(session, user_id, orders, portfolio)``.

    ``live_portfolio = False`` for a page that shows no portfolio figures: it
    then never reloads for portfolio events (and never takes its state lock for them).
    """

    live_portfolio: ClassVar[bool] = True
    _live_owner: str = ""

    def _live_refresh(self, session: Session, user_id: int, orders: bool, portfolio: bool) -> None:
        raise NotImplementedError

    def _live_apply(self, user_id: int, orders: bool, portfolio: bool, check_session: bool = True) -> bool:
        """Reload inside ``async with self``; False when the session behind the cookie is gone.

        ``check_session``: the cookie is checked again (``user_for_token``, two primary-key
        reads); the loop asks for it at most every ``CHECK_INTERVAL`` seconds, so a revoked
        session stops getting pushes within that time while a burst of fills costs only the
        page's own queries.  Not ``_signed_in_user``: that also re-reads the navigation's
        display data, which does not change because an order filled.
        """
        with session_scope() as session:
            if check_session:
                user = auth_service.user_for_token(session, self.session_token)
                if user is None or user.id != user_id:
                    return False
            if orders or portfolio:
                self._live_refresh(session, user_id, orders, portfolio)
        return True

    @rx.event(background=True)
    async def start_live(self):
        me = uuid.uuid4().hex
        async with self:
            with session_scope() as session:
                user = self._signed_in_user(session)
                user_id = user.id if user else None
            if user_id is None:
                return
            self._live_owner = me  # an older task for this client ends when it sees this
            token = self.router.session.client_token
            page = self.router.url.path
        await self._live_loop(user_id, token, page, me)

    async def _push(self, page: str, me: str, user_id: int, orders: bool, portfolio: bool, check: bool,
                    since: float) -> bool:
        """One reload under the state lock; False when this task must end.

        The database work runs in a worker thread while the lock is held: the
        state object is this context's alone until the block exits, and the
        event loop stays free for the worker's other clients (run inline, 40
        clients' reloads in a row blocked the loop long enough for Redis state
        locks to expire).  ``since``: when every event this push answers had
        arrived; a read of the same data that started later is as good as its
        own, so the clients of one member showing the same page share one
        (``shared_reads``).
        """
        async with self:
            if self._live_owner != me or self.router.url.path != page:
                return False
            mark = fresh_after.set(since)  # the reload may share a read that started after this (shared_reads)
            try:
                return await asyncio.to_thread(self._live_apply, user_id, orders, portfolio, check)
            finally:
                fresh_after.reset(mark)

    async def _live_loop(self, user_id: int, token: str, page: str, me: str) -> None:
        last_portfolio, checked = 0.0, time.monotonic()  # start_live has just checked the session
        wants_portfolio = self.live_portfolio
        try:
            async with get_bus().subscribe(user_topic(user_id)) as queue:
                # A change committed between the page's load and this subscription reached no queue:
                # the first push, at once, reads the page again (catch-up); later ones follow events.
                orders_due, portfolio_due, catch_up = True, wants_portfolio, True
                while True:
                    wait = CHECK_INTERVAL
                    if catch_up:
                        wait, catch_up = 0.0, False
                    elif orders_due:
                        wait = RETRY_AFTER
                    elif portfolio_due:
                        wait = max(0.0, last_portfolio + PORTFOLIO_INTERVAL - time.monotonic())
                    try:
                        first = await asyncio.wait_for(queue.get(), timeout=wait)
                        batch = [first, *drain(queue)]
                    except TimeoutError:
                        batch = []
                    woke = time.monotonic()  # after every event this push answers arrived: its freshness point
                    if not client_connected(token):
                        return
                    orders, portfolio = classify(batch)
                    orders_due = orders_due or orders
                    portfolio_due = portfolio_due or (portfolio and wants_portfolio)
                    now = time.monotonic()
                    refresh_portfolio = portfolio_due and now - last_portfolio >= PORTFOLIO_INTERVAL
                    if batch and not (orders_due or refresh_portfolio):
                        continue  # nothing this page shows changed: no lock, no query
                    check = now - checked >= CHECK_INTERVAL
                    try:
                        if not await self._push(page, me, user_id, orders_due, refresh_portfolio, check, woke):
                            return
                    except Exception:  # noqa: BLE001 - one failed push must not end the page's updates
                        log.warning("live update for %s on %s failed; retrying", token, page, exc_info=True)
                        if refresh_portfolio:
                            last_portfolio = now  # retried a throttle interval later, not in a tight loop
                        continue
                    orders_due = False
                    if check:
                        checked = now
                    if refresh_portfolio:
                        last_portfolio, portfolio_due = now, False
        finally:
            async with self:
                if self._live_owner == me:
                    self._live_owner = ""
