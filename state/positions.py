"""Positions: every open position per account and symbol, with close-all / close-% buttons.

Closing calls ``backend.services.trading.close_position``, the same service
the bot's ``/close`` uses; it checks again that the account is the caller's.
Each click carries a fresh request id, so a double click on the same button
while the first is in flight is ignored (``closing``), not sent twice.
"""

from __future__ import annotations

import uuid
from decimal import Decimal, InvalidOperation

import reflex as rx
from sqlmodel import select

from backend.db.models import Position
from backend.db.session import session_scope
from backend.errors import TradeExecutorError
from backend.services import dashboard, trading
from state import format as fmt
from state.auth import AuthState
from state.live import LiveUpdates
from state.shared_reads import shared


def position_row(p: dashboard.PositionView, targets: list[str]) -> dict[str, str]:
    return {
        "key": f"{p.account_id}:{p.symbol}", "account_id": str(p.account_id), "account": p.account_label,
        "symbol": p.symbol, "side": "Long" if p.quantity > 0 else "Short", "quantity": fmt.quantity(abs(p.quantity)),
        "avg_price": fmt.price(p.avg_price), "last_price": fmt.price(p.last_price),
        "market_value": fmt.money(p.market_value), "unrealized": fmt.signed_money(p.unrealized_pnl),
        "unrealized_tone": fmt.tone(p.unrealized_pnl), "stop_loss": fmt.price(p.stop_loss),
        "targets": ", ".join(fmt.price(Decimal(t)) for t in targets) if targets else fmt.DASH,
    }


def position_rows(session, user_id: int) -> list[dict[str, str]]:
    """The page's rows: each open position with its stop and targets."""
    views = dashboard.position_views(session, user_id)
    targets = dict(session.exec(select(Position.id, Position.take_profits)
                                .where(Position.user_id == user_id)).all())
    return [position_row(p, targets.get(p.id) or []) for p in views]


class PositionsState(LiveUpdates, AuthState):
    positions: list[dict[str, str]] = []
    percent: str = "50"
    message: str = ""
    error: str = ""
    closing: bool = False

    @rx.event
    def load(self):
        with session_scope() as session:
            user = self._signed_in_user(session)
            if user is None:
                self.positions = []
                return self._to_login()
            self._live_refresh(session, user.id, False, True)
        return None

    def _live_refresh(self, session, user_id: int, orders: bool, portfolio: bool) -> None:
        """Reload the positions (on load, and on a bus push about the portfolio, see state/live.py)."""
        if not portfolio:
            return
        self.positions = shared(("positions", user_id), lambda: position_rows(session, user_id))

    @rx.event
    def set_percent(self, value: str):
        self.percent = value

    @rx.event
    async def close_all(self, account_id: str, symbol: str):
        return await self._close(account_id, symbol, Decimal(100))

    @rx.event
    async def close_percent(self, account_id: str, symbol: str):
        try:
            pct = Decimal(self.percent.strip().rstrip("%"))
        except InvalidOperation:
            self.error = "Type a percentage between 0 and 100."
            return None
        return await self._close(account_id, symbol, pct)

    async def _close(self, account_id: str, symbol: str, percent: Decimal):
        if self.closing:
            return None
        self.error = self.message = ""
        with session_scope() as session:
            user = self._signed_in_user(session)
            if user is None:
                return self._to_login()
            user_id = user.id
        self.closing = True
        try:
            result = await trading.close_position(user_id, int(account_id), symbol, percent,
                                                  request_id=uuid.uuid4().hex)
        except TradeExecutorError as exc:
            self.error = exc.message
            return None
        except ValueError:
            self.error = "That position does not exist."
            return None
        finally:
            self.closing = False
        orders = result.get("orders", [])
        status = ", ".join(f"{fmt.quantity(o['quantity'])} {fmt.humanize(o['status']).lower()}" for o in orders)
        self.message = f"Close order for {symbol} sent: {status or 'nothing to do'}."
        return self.load()
