"""Notifications: the member's inbox, paged on the server, live while the page is open.

Everything the money path tells a member (fills, rejections with their
reason, signals not taken, stale signals, broker disconnects, a risk halt or
close-only mode) lands here as well as in a Discord DM.
A bus push about a new notification reloads the page (throttled with the
portfolio refreshes, see state/live.py).  The DM switch is the same
preference the bot's ``/dms`` command changes.

The Discord card is where a member gets the one-time code for the bot's
``/link`` (``members.create_link_code``): the code is shown once, with its
expiry, and is kept only in this page's state (a new one replaces it).
"""

from __future__ import annotations

import reflex as rx

from backend.db.session import session_scope
from backend.errors import TradeExecutorError
from backend.execution.trading_state import ACTIVE, HALTED, REDUCING
from backend.execution.trading_state import KINDS as RISK_KINDS
from backend.reconcile.report import (MISSED_FILL, ORDER_MISSING, ORDER_STATUS, POSITION_ADJUSTED, POSITION_CLOSED,
                                      UNKNOWN_POSITION)
from backend.services import members
from backend.services import notifications as inbox_service
from backend.services.broker_status import BROKER_DISCONNECTED, BROKER_RECONNECTED
from state import format as fmt
from state.auth import AuthState
from state.live import LiveUpdates

# Every kind the product writes, with the badge a member sees: red = something failed or stopped,
# amber = worth a look (not taken, close-only, repaired), green = done.  The kind names come from the
# modules that write them, so a renamed kind fails the tests here rather than turning a card grey.
KIND_STYLE: dict[str, tuple[str, str]] = {
    "order.filled": ("green", "Filled"),
    "order.partially_filled": ("amber", "Partly filled"),
    "order.submitted": ("blue", "Sent"),
    "order.cancelled": ("gray", "Cancelled"),
    "order.expired": ("gray", "Expired"),
    "order.rejected": ("red", "Rejected"),
    "order.failed": ("red", "Failed"),
    "order.replace_failed": ("red", "Change failed"),
    "order.expired_unsent": ("amber", "Not sent in time"),
    "signal.denied": ("amber", "Not taken"),
    "signal.stale": ("amber", "Too late to trade"),
    "signal.edited": ("amber", "Signal edited"),
    f"reconcile.{ORDER_MISSING}": ("amber", "Order gone at the broker"),
    f"reconcile.{MISSED_FILL}": ("amber", "Fill caught up"),
    f"reconcile.{ORDER_STATUS}": ("amber", "Order status caught up"),
    f"reconcile.{POSITION_CLOSED}": ("amber", "Position closed at the broker"),
    f"reconcile.{POSITION_ADJUSTED}": ("amber", "Position size corrected"),
    f"reconcile.{UNKNOWN_POSITION}": ("amber", "Position not opened here"),
    BROKER_DISCONNECTED: ("red", "Broker disconnected"),
    BROKER_RECONNECTED: ("green", "Broker reconnected"),
    RISK_KINDS[HALTED]: ("red", "Trading halted"),
    RISK_KINDS[REDUCING]: ("amber", "Close-only"),
    RISK_KINDS[ACTIVE]: ("green", "Trading resumed"),
}
# A kind not in the table yet still gets a sensible colour from its words.
RED_WORDS = ("rejected", "failed", "halted", "error", "disconnected")
AMBER_WORDS = ("stale", "partial", "reducing", "edited", "replace", "denied")
# "off" (DMs turned off or no Discord link) says nothing worth showing on each card.
DM_TEXT = {"sent": "sent as a Discord DM", "pending": "Discord DM on its way", "failed": "Discord DM failed"}


def kind_tone(kind: str) -> str:
    if kind in KIND_STYLE:
        return KIND_STYLE[kind][0]
    if any(w in kind for w in RED_WORDS):
        return "red"
    if any(w in kind for w in AMBER_WORDS):
        return "amber"
    if "filled" in kind:
        return "green"
    return "gray"


def kind_label(kind: str) -> str:
    """The badge text: a trader's words for the kind (``signal.denied`` -> ``Not taken``)."""
    if kind in KIND_STYLE:
        return KIND_STYLE[kind][1]
    return fmt.humanize(kind.split(".", 1)[-1] if "." in kind else kind)


def notification_row(n: inbox_service.NotificationView) -> dict[str, str]:
    return {
        "id": str(n.id), "kind": n.kind, "kind_text": kind_label(n.kind), "tone": kind_tone(n.kind),
        "title": n.title, "body": n.body, "when": fmt.when(n.created_at), "read": "yes" if n.read else "",
        "dm": DM_TEXT.get(n.dm_status or "", ""),
    }


class NotificationsState(LiveUpdates, AuthState):
    items: list[dict[str, str]] = []
    unread: int = 0
    total: int = 0
    page: int = 0
    has_more: bool = False
    unread_only: bool = False
    dm_enabled: bool = True
    discord_linked: bool = False
    link_code: str = ""
    link_expires: str = ""
    error: str = ""

    def _reload(self, page: int):
        with session_scope() as session:
            user = self._signed_in_user(session)
            if user is None:
                self.items = []
                return self._to_login()
            self._fill(session, user.id, page)
        return None

    def _fill(self, session, user_id: int, page: int) -> None:
        box = inbox_service.inbox(session, user_id, unread_only=self.unread_only, page=page)
        pref = inbox_service.dm_preference(session, user_id)
        self.items = [notification_row(n) for n in box.items]
        self.unread, self.total, self.page, self.has_more = box.unread, box.total, page, box.has_more
        self.dm_enabled, self.discord_linked = pref.enabled, pref.discord_linked
        if self.discord_linked:
            self.link_code = self.link_expires = ""  # used: /link went through

    def _live_refresh(self, session, user_id: int, orders: bool, portfolio: bool) -> None:
        if portfolio or orders:
            self._fill(session, user_id, self.page)

    @rx.event
    def load(self):
        self.error = ""
        return self._reload(0)

    @rx.event
    def next_page(self):
        return self._reload(self.page + 1)

    @rx.event
    def previous_page(self):
        return self._reload(max(self.page - 1, 0))

    @rx.event
    def set_unread_only(self, value: bool):
        self.unread_only = bool(value)
        return self._reload(0)

    @rx.event
    def mark_read(self, notification_id: str):
        return self._change(lambda s, uid: inbox_service.mark_read(s, uid, int(notification_id)))

    @rx.event
    def mark_all_read(self):
        return self._change(lambda s, uid: inbox_service.mark_all_read(s, uid))

    @rx.event
    def set_dm_enabled(self, value: bool):
        return self._change(lambda s, uid: members.set_dm_enabled(s, uid, bool(value)))

    @rx.event
    def get_link_code(self):
        """A fresh one-time code for ``/link`` (the previous unused one stops working)."""
        self.error = ""
        with session_scope() as session:
            user = self._signed_in_user(session)
            if user is None:
                return self._to_login()
            try:
                code = members.create_link_code(session, user.id)
            except TradeExecutorError as exc:
                self.error = exc.message
                return None
        self.link_code = code.code
        self.link_expires = fmt.when(code.expires_at)
        return None

    def _change(self, action):
        """Run a write for the signed-in user, then show the page again."""
        with session_scope() as session:
            user = self._signed_in_user(session)
            if user is None:
                return self._to_login()
            try:
                action(session, user.id)
            except (TradeExecutorError, ValueError) as exc:
                self.error = getattr(exc, "message", "That notification does not exist.")
                return None
        self.error = ""
        return self._reload(self.page)
