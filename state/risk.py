"""Risk settings: the signed-in follower's one ``risk_profiles`` row as a form.

``backend.services.risk_settings`` validates every field; its ``errors`` map
is kept in ``field_errors`` so the page shows each message under its input.
The form only ever loads and saves the signed-in user's own row: the user id
comes from the session, never from the form, and ``set_field`` accepts only
the fields the service put in the form.

The close-only switch acts at once (``set_close_only``) rather than waiting
for *Save*: a trader reaching for it wants new entries stopped now, and
unsaved edits elsewhere on the form stay as they are.

The page is live (``state.live``): when the engine halts the account or
makes it close-only, the state at the top changes while the page is open;
only the state and the switch are re-read, never the form being edited.
"""

from __future__ import annotations

import reflex as rx

from backend.db.session import session_scope
from backend.db.models.trading import PROVIDER_DEFAULT_SIZING
from backend.services import risk_settings as svc
from state.auth import AuthState
from state.live import LiveUpdates

# What each trading state means for the trader's next signal (the reason says why it is in that state).
STATE_MEANING = {
    "ACTIVE": "Trading: new signals are taken within the limits below.",
    "REDUCING": "Close-only: exits, stop moves and cancels are sent; new entries are refused.",
    "HALTED": "Halted for the day: no new positions; exits, stop moves and cancels still go through.",
}


class RiskState(LiveUpdates, AuthState):
    form: dict[str, str] = {}
    switches: dict[str, bool] = {}
    field_errors: dict[str, str] = {}
    trading_state: str = ""
    state_reason: str = ""
    saved: str = ""
    error: str = ""

    @rx.var
    def state_meaning(self) -> str:
        return STATE_MEANING.get(self.trading_state, "")

    @rx.var
    def provider_sizing(self) -> bool:
        return self.form.get("sizing_mode") == PROVIDER_DEFAULT_SIZING

    def _show_state(self, values: dict) -> None:
        self.switches["close_only"] = bool(values["close_only"])
        self.trading_state, self.state_reason = values["trading_state"], values["state_reason"]

    def _live_refresh(self, session, user_id: int, orders: bool, portfolio: bool) -> None:
        if portfolio and self.switches:
            self._show_state(svc.as_form(svc.load(session, user_id)))

    def _fill(self, values: dict) -> None:
        self.switches = {k: bool(values[k]) for k in svc.BOOL_FIELDS}
        self.form = {k: str(v) for k, v in values.items()
                     if k not in svc.BOOL_FIELDS and k not in ("trading_state", "state_reason")}
        self.trading_state, self.state_reason = values["trading_state"], values["state_reason"]

    @rx.event
    def load(self):
        with session_scope() as session:
            user = self._signed_in_user(session)
            if user is None:
                self.form, self.switches = {}, {}
                return self._to_login()
            self._fill(svc.as_form(svc.load(session, user.id)))
        self.field_errors, self.saved, self.error = {}, "", ""
        return None

    @rx.event
    def set_field(self, name: str, value: str):
        if name not in self.form:  # only the service's own fields; nothing else reaches the save
            return
        self.form[name] = value
        self.saved = ""

    @rx.event
    def set_switch(self, name: str, value: bool):
        if name not in self.switches:
            return
        self.switches[name] = bool(value)
        self.saved = ""

    @rx.event
    def set_close_only(self, value: bool):
        """Turn close-only mode on or off now, for the signed-in user only."""
        self.saved = self.error = ""
        with session_scope() as session:
            user = self._signed_in_user(session)
            if user is None:
                return self._to_login()
            profile = svc.set_close_only(session, user.id, bool(value))
            self._show_state(svc.as_form(profile))
        self.saved = ("Close-only mode is on: only exits, stop moves and cancels are sent." if value else
                      "Close-only mode is off.")
        if not value and self.trading_state != "ACTIVE":
            self.saved += " The engine's own limit still applies until the next trading day (see above)."
        return None

    @rx.event
    def save(self):
        self.saved = self.error = ""
        with session_scope() as session:
            user = self._signed_in_user(session)
            if user is None:
                return self._to_login()
            try:
                profile = svc.save(session, user.id, {**self.form, **self.switches})
            except svc.RiskSettingsInvalid as exc:
                self.field_errors = dict(exc.errors)
                self.error = "Some settings need a fix: see the messages under the fields."
                return None
            self._fill(svc.as_form(profile))
        self.field_errors = {}
        self.saved = "Saved. New signals are sized and checked with these settings."
        return None
