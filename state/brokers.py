"""Brokers: list the signed-in user's accounts, connect one (checked at the venue first), disconnect.

Credentials typed in the form live in backend-only vars (leading underscore),
are handed to ``backend.services.accounts.connect_account`` and cleared right
after, success or not: they never round-trip to the browser.

A refusal names its field (``TradeExecutorError.field``): when that field is
on the form (the name, the starting cash, the exchange, the live switch, one
credential, or ``credentials`` for keys the venue refused as a whole) the
page shows the message under it (``error_field``); anything else (an
unreachable gateway, a disconnect refused) is shown above the button.
"""

from __future__ import annotations

import reflex as rx

from backend.brokers.credentials import SPECS
from backend.db.session import session_scope
from backend.errors import TradeExecutorError
from backend.services import accounts as account_service
from state import format as fmt
from state.auth import AuthState

BROKER_CHOICES = [(kind, spec.title) for kind, spec in SPECS.items()]
FORM_FIELDS = frozenset({"broker", "label", "starting_cash", "exchange_id", "live", "credentials"})


def broker_fields(kind: str) -> list[dict[str, str]]:
    spec = SPECS.get(kind)
    return [] if spec is None else [
        {"name": f.name, "label": f.label + ("" if f.required else " (optional)"),
         "type": "password" if f.secret else "text"} for f in spec.fields]


def account_row(a: dict) -> dict[str, str]:
    return {"id": str(a["id"]), "label": a["label"], "broker": fmt.broker(a["broker"]),
            "exchange": a["exchange_id"] or "", "mode": "" if a["broker"] == "paper" else ("Live" if a["live"] else "Sandbox"),
            "permissions": fmt.humanize(a["permissions"]), "status": a["status"], "status_text": fmt.humanize(a["status"]),
            "status_message": a["status_message"] or "", "connected": str(a["status"] != "disconnected")}


class BrokersState(AuthState):
    accounts: list[dict[str, str]] = []
    broker: str = "paper"
    label: str = ""
    exchange_id: str = ""
    live: bool = False
    starting_cash: str = "100000"
    fields: list[dict[str, str]] = []
    field_error: str = ""
    error_field: str = ""
    message: str = ""
    connecting: bool = False
    _secrets: dict[str, str] = {}

    def _list(self, user_id: int) -> None:
        self.accounts = [account_row(a) for a in account_service.list_accounts(None, user_id)]

    @rx.event
    def load(self):
        with session_scope() as session:
            user = self._signed_in_user(session)
            if user is None:
                self.accounts = []
                return self._to_login()
            user_id = user.id
        self._list(user_id)
        self.fields = broker_fields(self.broker)
        return None

    @rx.event
    def set_broker(self, kind: str):
        self.broker, self.fields, self._secrets = kind, broker_fields(kind), {}
        self.field_error = self.error_field = ""

    @rx.event
    def set_label(self, value: str):
        self.label = value

    @rx.event
    def set_exchange_id(self, value: str):
        self.exchange_id = value

    @rx.event
    def set_live(self, value: bool):
        self.live = bool(value)

    @rx.event
    def set_starting_cash(self, value: str):
        self.starting_cash = value

    @rx.event
    def set_secret(self, name: str, value: str):
        self._secrets[name] = value

    @rx.event
    async def connect(self):
        self.field_error = self.error_field = self.message = ""
        with session_scope() as session:
            user = self._signed_in_user(session)
            if user is None:
                return self._to_login()
            user_id = user.id
        creds = {k: v.strip() for k, v in self._secrets.items() if v and v.strip()}
        self._secrets = {}
        self.connecting = True
        try:
            result = await account_service.connect_account(
                None, user_id, self.broker, self.label, creds or None, live=self.live,
                exchange_id=self.exchange_id or None,
                starting_cash=self.starting_cash if self.broker == "paper" else None)
        except TradeExecutorError as exc:
            self.field_error, self.error_field = exc.message, self._on_form(exc.field)
            return None
        finally:
            self.connecting = False
        self.message = f"Connected {result['label']}."
        self.label = ""
        self._list(user_id)
        return None

    def _on_form(self, field: str | None) -> str:
        """``field`` if the form shows it (the message goes under it), else "" (shown above the button)."""
        shown = FORM_FIELDS | {f["name"] for f in broker_fields(self.broker)}
        return field if field in shown else ""

    @rx.event
    def disconnect(self, account_id: str):
        self.field_error = self.error_field = self.message = ""
        with session_scope() as session:
            user = self._signed_in_user(session)
            if user is None:
                return self._to_login()
            user_id = user.id
        try:
            result = account_service.disconnect_account(None, user_id, int(account_id))
        except TradeExecutorError as exc:
            self.field_error = exc.message
            return None
        self.message = f"Disconnected {result['label']}."
        self._list(user_id)
        return None
