"""Signal console: a provider types a message as it would appear in Discord and publishes it.

The preview calls the same parser the intake uses (``backend.signals.parse_signal``),
so what the page shows is exactly how the bot would read the message.  Publishing
goes through ``backend.services.trading.ingest_discord_message`` for one of the
signed-in user's own Discord sources (a generated ``console-<uuid>`` message id),
so followers get the same fan-out, risk checks and orders as a real Discord post.
Only the provider of a source may publish to it: the check runs on every click.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

import reflex as rx
import sqlalchemy as sa
from sqlmodel import Session, select

from backend.db.models import Order, RiskDecisionRecord, SignalSource, SourceKind
from backend.db.session import get_engine, session_scope
from backend.db.types import utcnow
from backend.errors import TradeExecutorError
from backend.signals import parse_signal
from backend.services import trading
from state import format as fmt
from state.auth import AuthState

NOT_A_SIGNAL = "Not read as a trade signal (chatter, question, hedge, or ambiguous)."


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return fmt.quantity(value)
    if isinstance(value, list):
        return ", ".join(_text(v) for v in value)
    return str(value)


def preview_fields(text: str) -> tuple[list[dict[str, str]], str]:
    """(field rows, explanation) for a message: every non-empty field of the parsed signal."""
    if not text.strip():
        return [], ""
    try:
        parsed = parse_signal(text, now=utcnow())
    except Exception as exc:  # noqa: BLE001 - the parser promises not to raise; the page must not die if it does
        return [], f"The message could not be read ({type(exc).__name__})."
    if parsed is None:
        return [], NOT_A_SIGNAL
    rows = []
    for name in ("action", "side", "symbol", "asset_class", "order_type", "entry_prices", "stop_loss",
                 "take_profits", "quantity", "quantity_unit", "leverage", "option_right", "strike", "expiry",
                 "partial_close", "breakeven"):
        value = getattr(parsed, name, None)
        if value in (None, [], False):
            continue
        rows.append({"field": fmt.humanize(name), "value": _text(value)})
    return rows, ""


def provided_sources(session: Session, user_id: int) -> list[SignalSource]:
    """The Discord sources this user is the provider of (the console publishes only to those)."""
    return list(session.exec(select(SignalSource).where(
        SignalSource.provider_id == user_id, SignalSource.kind == SourceKind.DISCORD.value,
        SignalSource.discord_channel_id.is_not(None)).order_by(SignalSource.id)).all())


class ConsoleState(AuthState):
    message: str = ""
    fields: list[dict[str, str]] = []
    explanation: str = ""
    sources: list[dict[str, str]] = []
    source_id: str = ""
    result: dict[str, str] = {}
    result_orders: list[dict[str, str]] = []
    error: str = ""
    publishing: bool = False

    @rx.event
    def load(self):
        with session_scope() as session:
            user = self._signed_in_user(session)
            if user is None:
                return self._to_login()
            mine = provided_sources(session, user.id)
        self.sources = [{"id": str(s.id), "name": s.name} for s in mine]
        if self.sources and self.source_id not in {s["id"] for s in self.sources}:
            self.source_id = self.sources[0]["id"]
        self.error = "" if mine else "You are not the provider of any Discord signal source, so there is nowhere to publish."

    @rx.event
    def set_message(self, text: str):
        self.message = text
        self.fields, self.explanation = preview_fields(text)

    @rx.event
    def set_source(self, source_id: str):
        self.source_id = str(source_id)

    @rx.event
    async def publish(self):
        self.error, self.result, self.result_orders = "", {}, []
        with session_scope() as session:
            user = self._signed_in_user(session)
            if user is None:
                return self._to_login()
            source = next((s for s in provided_sources(session, user.id) if str(s.id) == self.source_id), None)
            if source is None:
                self.error = "Choose one of your own signal sources to publish to."
                return
            channel, user_id = source.discord_channel_id, user.id
        if not self.message.strip():
            self.error = "Type a message first."
            return
        try:
            result = await trading.ingest_discord_message(
                channel_id=channel, message_id=f"console-{uuid.uuid4()}", content=self.message,
                sent_at=utcnow(), author_id=f"user:{user_id}")
        except TradeExecutorError as exc:
            self.error = exc.message
            return
        self._show(result)

    def _show(self, result: dict) -> None:
        signal_id = result.get("signal_id")
        with Session(get_engine()) as session:
            decisions = session.exec(select(RiskDecisionRecord.approved).where(
                RiskDecisionRecord.signal_id == signal_id)).all()
            # Followers' orders, counted by status: the provider sees the outcome, not anyone's size.
            counts = session.execute(select(Order.status, sa.func.count()).where(Order.signal_id == signal_id)
                                     .group_by(Order.status).order_by(Order.status)).all()
            self.result_orders = [{"status": st, "status_text": fmt.humanize(st), "count": str(n)} for st, n in counts]
        approved = sum(1 for a in decisions if a)
        self.result = {
            "signal_id": str(signal_id), "status": fmt.humanize(result.get("status")),
            "reason": result.get("reason") or "", "approved": str(approved),
            "denied": str(len(decisions) - approved), "orders": str(sum(int(r["count"]) for r in self.result_orders)),
        }
