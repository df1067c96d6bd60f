"""Orders & trades: the signed-in user's full order history, filtered and paged on the server.

Only one page (50 rows) lives in the browser's state; the filters are sent
to ``backend.services.orders`` on each change, which scopes every query by
the signed-in user's id.  Pages are keyset pages (newest, newer, older,
oldest: why, in the service's docstring); the cursors to reach the pages
around this one are backend-only vars, so the browser never sends a cursor.
The count above the table is capped at 10,000, the CSV export's cap, which
is built server-side from the same filter and handed over with ``rx.download``.
"""

from __future__ import annotations

from typing import ClassVar

import reflex as rx

from backend.db.session import session_scope
from backend.errors import TradeExecutorError
from backend.services import orders as order_service
from state import format as fmt
from state.auth import AuthState
from state.live import LiveUpdates
from state.shared_reads import shared

STATUSES = ["new", "submitted", "partially_filled", "filled", "cancelled", "rejected", "expired", "failed"]
ALL = "all"


def order_row(r: dict) -> dict[str, str]:
    return {"id": str(r["id"]), "created_at": fmt.when(r["created_at"]), "account": r["account"],
            "source": r["source"] or "Manual", "symbol": r["symbol"], "side": r["side"].upper(),
            "type": fmt.humanize(r["type"]), "quantity": fmt.quantity(r["quantity"]),
            "filled": fmt.quantity(r["filled_quantity"]), "avg_fill_price": fmt.price(r["avg_fill_price"]),
            "fees": fmt.money(r["fees"]), "status": r["status"], "status_text": fmt.status_text(r["status"], r["held_by_engine"]),
            "leg": fmt.humanize(r["leg"]), "error": r["error"] or ""}


def count_text(n: int, more: bool) -> str:
    if more:
        return f"{n:,}+ orders (the CSV export holds the newest {n:,})"
    return f"{n:,} order{'' if n == 1 else 's'}"


def read_view(session, user_id: int, f: order_service.OrderFilter, request: str, count: bool) -> dict:
    """What the page shows for ``request`` under ``f``, as plain data (shared by live pushes: ``shared_reads``)."""
    page = order_service.list_orders(session, user_id, f, order_service.PageRequest.decode(request))
    counted = order_service.count_orders(session, user_id, f) if count else None
    return {"has_newer": page.has_newer, "has_older": page.has_older, "rows": [order_row(r) for r in page.rows],
            "same": page.request_same().encode(), "newer": page.request_newer().encode(),
            "older": page.request_older().encode(), "count": count_text(*counted) if counted is not None else None}


class OrdersState(LiveUpdates, AuthState):
    live_portfolio: ClassVar[bool] = False  # no portfolio figures here: position pushes are ignored
    rows: list[dict[str, str]] = []
    has_newer: bool = False
    has_older: bool = False
    count: str = ""
    symbol: str = ""
    status: str = ALL
    source_id: str = ALL
    date_from: str = ""
    date_to: str = ""
    sources: list[dict[str, str]] = []
    error: str = ""
    # The opened order's story.
    story_open: bool = False
    story_order: dict[str, str] = {}
    story_signal: dict[str, str] = {}
    story_decision: dict[str, str] = {}
    story_reasons: list[str] = []
    story_events: list[dict[str, str]] = []
    story_fills: list[dict[str, str]] = []
    # Encoded ``PageRequest``s: this page (to re-read it) and its neighbours.
    _same: str = "newest"
    _newer: str = "newest"
    _older: str = "newest"

    def _filter(self) -> order_service.OrderFilter:
        return order_service.OrderFilter(
            symbol=self.symbol, status="" if self.status == ALL else self.status,
            source_id=int(self.source_id) if self.source_id.isdigit() else None,
            date_from=order_service.parse_day(self.date_from, "date_from"),
            date_to=order_service.parse_day(self.date_to, "date_to"))

    def _reload(self, request: str = "newest", *, choices: bool = False):
        """Show the page ``request`` names (an encoded ``PageRequest``); on a new filter, the count too."""
        with session_scope() as session:
            user = self._signed_in_user(session)
            if user is None:
                self.rows, self.has_newer, self.has_older = [], False, False
                return self._to_login()
            self._fill(session, user.id, request, choices=choices)
        return None

    def _fill(self, session, user_id: int, request: str, *, choices: bool = False, count: bool = True) -> None:
        if choices:
            self.sources = [{"id": str(i), "name": n} for i, n in order_service.provider_choices(session, user_id)]
        try:
            f = self._filter()
            view = shared(("orders", user_id, f, request, count), lambda: read_view(session, user_id, f, request, count))
        except TradeExecutorError as exc:
            self.error = exc.message
            return
        self.error, self.has_newer, self.has_older = "", view["has_newer"], view["has_older"]
        self.rows = view["rows"]
        self._same, self._newer, self._older = view["same"], view["newer"], view["older"]
        if view["count"] is not None:
            self.count = view["count"]

    @rx.event
    def load(self):
        return self._reload(choices=True)

    def _live_refresh(self, session, user_id: int, orders: bool, portfolio: bool) -> None:
        """Bus push (state/live.py): an order changed; re-read the page on screen (new orders at the top
        do not shift it) and the count."""
        if orders:
            self._fill(session, user_id, self._same)

    @rx.event
    def apply_filters(self):
        return self._reload()

    @rx.event
    def clear_filters(self):
        self.symbol, self.status, self.source_id, self.date_from, self.date_to = "", ALL, ALL, "", ""
        return self._reload()

    def _turn(self, request: str, allowed: bool):
        """Move to a neighbouring page: the filter is unchanged, so the count is too."""
        if not allowed:
            return None
        with session_scope() as session:
            user = self._signed_in_user(session)
            if user is None:
                return self._to_login()
            self._fill(session, user.id, request, count=False)
        return None

    @rx.event
    def next_page(self):
        """Older orders."""
        return self._turn(self._older, self.has_older)

    @rx.event
    def previous_page(self):
        """Newer orders."""
        return self._turn(self._newer, self.has_newer)

    @rx.event
    def newest_page(self):
        return self._turn("newest", self.has_newer)

    @rx.event
    def oldest_page(self):
        return self._turn("oldest", self.has_older)

    @rx.event
    def set_symbol(self, value: str):
        self.symbol = value

    @rx.event
    def set_status(self, value: str):
        self.status = value
        return self._reload()

    @rx.event
    def set_source(self, value: str):
        self.source_id = value
        return self._reload()

    @rx.event
    def set_date_from(self, value: str):
        self.date_from = value

    @rx.event
    def set_date_to(self, value: str):
        self.date_to = value

    @rx.event
    def export_csv(self):
        with session_scope() as session:
            user = self._signed_in_user(session)
            if user is None:
                return self._to_login()
            try:
                text = order_service.export_csv(session, user.id, self._filter())
            except TradeExecutorError as exc:
                self.error = exc.message
                return None
        return rx.download(data=text, filename="orders.csv", mime_type="text/csv")

    @rx.event
    def open_order(self, order_id: str):
        with session_scope() as session:
            user = self._signed_in_user(session)
            if user is None:
                return self._to_login()
            try:
                story = order_service.order_story(session, user.id, int(order_id))
            except (TradeExecutorError, ValueError) as exc:
                self.error = getattr(exc, "message", "That order does not exist.")
                self.story_open = False
                return None
        self._show_story(story)
        return None

    @rx.event
    def close_story(self):
        self.story_open = False

    def _show_story(self, story: dict) -> None:
        self.story_order = order_row(story["order"])
        self.story_order["total_fees"] = fmt.money(story["total_fees"])
        sig = story["signal"]
        self.story_signal = {} if sig is None else {
            "raw_text": sig["raw_text"], "status": fmt.humanize(sig["status"]), "reason": sig["reason"] or "",
            "source": sig["source"] or "", "provider": sig["provider"] or "", "received_at": fmt.when(sig["received_at"])}
        dec = story["decision"]
        self.story_decision = {} if dec is None else {
            "verdict": "Approved" if dec["approved"] else "Denied", "quantity": fmt.quantity(dec["quantity"])}
        self.story_reasons = [] if dec is None else list(dec["reasons"])
        self.story_events = [{"at": fmt.when(e["at"]), "from": fmt.humanize(e["from"]), "to": fmt.humanize(e["to"]),
                              "message": e["message"] or ""} for e in story["events"]]
        self.story_fills = [{"at": fmt.when(f["at"]), "quantity": fmt.quantity(f["quantity"]),
                             "price": fmt.price(f["price"]), "fee": fmt.money(f["fee"])} for f in story["fills"]]
        self.story_open = True
