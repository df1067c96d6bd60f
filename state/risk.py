"""Risk settings: the signed-in follower's one ``risk_profiles`` row as a form.

``backend.services.risk_settings`` validates every field; its ``errors`` map
is kept in ``field_errors`` so the page shows each message under its input.
The form only ever loads and saves the signed-in user's own row.
"""

from __future__ import annotations

import reflex as rx

from backend.db.session import session_scope
from backend.services import risk_settings as svc
from state.auth import AuthState


class RiskState(AuthState):
    form: dict[str, str] = {}
    switches: dict[str, bool] = {}
    field_errors: dict[str, str] = {}
    trading_state: str = ""
    state_reason: str = ""
    saved: str = ""
    error: str = ""

    def _fill(self, values: dict) -> None:
        self.switches = {k: bool(values[k]) for k in svc.BOOL_FIELDS}
        self.form = {k: str(v) for k, v in values.items() if k not in svc.BOOL_FIELDS}
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
        self.form[name] = value
        self.saved = ""

    @rx.event
    def set_switch(self, name: str, value: bool):
        self.switches[name] = bool(value)
        self.saved = ""

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
