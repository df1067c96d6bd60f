"""Signal providers: the sources of the trader's communities, their track record, and the trader's follows.

Every handler resolves the signed-in user again and passes *that* id to
``backend.services.follows``, which refuses a follow id that is not the
user's and a source outside the user's communities; ids coming from the
browser are never trusted.  The sizing override is edited in one dialog;
a refused value is shown under its field (``field_errors``).
"""

from __future__ import annotations

import reflex as rx

from backend.db.session import session_scope
from backend.errors import TradeExecutorError
from backend.services import follows as follow_service
from backend.services.risk_settings import SIZING_MODES
from state import format as fmt
from state.auth import AuthState

DEFAULT_MODE = "default"  # the select's value for "no override" (a select item cannot be "")


def percent(value) -> str:
    return fmt.DASH if value is None else f"{value:.0f}%"


def provider_row(v: follow_service.ProviderView) -> dict[str, str]:
    p = v.performance
    following = v.follow_id is not None
    sizing = ("Account default" if not v.sizing_mode
              else f"{SIZING_MODES.get(v.sizing_mode, fmt.humanize(v.sizing_mode))}: {fmt.quantity(v.sizing_value)}")
    return {
        "source_id": str(v.source_id), "name": v.name, "kind": fmt.source_kind(v.kind),
        "community": v.community_name, "provider": v.provider_name,
        "signals": str(p.signals), "round_trips": str(p.round_trips), "win_rate": percent(p.win_rate),
        "avg_return": fmt.signed_money(p.avg_return), "avg_tone": fmt.tone(p.avg_return),
        "total_pnl": fmt.signed_money(p.total_pnl if p.round_trips else None), "total_tone": fmt.tone(p.total_pnl),
        "max_drawdown": fmt.money(p.max_drawdown) if p.round_trips else fmt.DASH,
        "following": "yes" if following else "", "follow_id": str(v.follow_id or ""),
        "auto_trade": "yes" if v.auto_trade else "", "sizing": sizing if following else fmt.DASH,
        "sizing_mode": v.sizing_mode or DEFAULT_MODE,
        "sizing_value": "" if v.sizing_value is None else format(v.sizing_value.normalize(), "f"),
        "can_follow": "yes" if v.can_follow else "",
    }


class ProvidersState(AuthState):
    providers: list[dict[str, str]] = []
    error: str = ""
    message: str = ""
    # The sizing dialog.
    sizing_open: bool = False
    sizing_follow_id: str = ""
    sizing_name: str = ""
    sizing_mode: str = DEFAULT_MODE
    sizing_value: str = ""
    field_errors: dict[str, str] = {}

    @rx.event
    def load(self):
        with session_scope() as session:
            user = self._signed_in_user(session)
            if user is None:
                self.providers = []
                return self._to_login()
            views = follow_service.provider_views(session, user.id)
        self.providers = [provider_row(v) for v in views]
        return None

    def _change(self, action, done: str):
        """Run ``action(session, user_id)`` for the signed-in user; show its refusal or ``done``."""
        self.error = self.message = ""
        with session_scope() as session:
            user = self._signed_in_user(session)
            if user is None:
                return self._to_login()
            try:
                action(session, user.id)
            except TradeExecutorError as exc:
                session.rollback()
                self.error = exc.message
                return None
            except ValueError:
                self.error = "That provider or follow does not exist."
                return None
        self.message = done
        return self.load()

    @rx.event
    def follow(self, source_id: str):
        return self._change(lambda s, uid: follow_service.follow(s, uid, int(source_id)), "Following.")

    @rx.event
    def unfollow(self, follow_id: str):
        return self._change(lambda s, uid: follow_service.unfollow(s, uid, int(follow_id)), "Unfollowed.")

    @rx.event
    def set_auto_trade(self, follow_id: str, on: bool):
        return self._change(lambda s, uid: follow_service.set_auto_trade(s, uid, int(follow_id), bool(on)),
                            "Auto-trade on." if on else "Auto-trade off: signals are recorded, not traded.")

    @rx.event
    def open_sizing(self, row: dict):
        self.sizing_follow_id = row.get("follow_id", "")
        self.sizing_name = row.get("name", "")
        self.sizing_mode = row.get("sizing_mode") or DEFAULT_MODE
        self.sizing_value = row.get("sizing_value", "")
        self.field_errors = {}
        self.sizing_open = bool(self.sizing_follow_id)

    @rx.event
    def close_sizing(self):
        self.sizing_open = False
        self.field_errors = {}

    @rx.event
    def set_sizing_mode(self, value: str):
        self.sizing_mode = value
        if value == DEFAULT_MODE:
            self.sizing_value = ""

    @rx.event
    def set_sizing_value(self, value: str):
        self.sizing_value = value

    @rx.event
    def save_sizing(self):
        mode = "" if self.sizing_mode == DEFAULT_MODE else self.sizing_mode
        self.field_errors = {}
        try:
            follow_service.clean_sizing(mode, self.sizing_value)
        except TradeExecutorError as exc:
            self.field_errors = {exc.field or "sizing_value": exc.message}
            return None
        result = self._change(lambda s, uid: follow_service.set_sizing(s, uid, int(self.sizing_follow_id or 0),
                                                                       mode, self.sizing_value),
                              f"Sizing for {self.sizing_name} saved.")
        if not self.error:
            self.sizing_open = False
        return result
