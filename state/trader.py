"""Trader overview: the signed-in follower's money at a glance.

``load`` (the page's ``on_load``) and ``refresh`` read one
``backend.services.dashboard.trader_overview`` and turn it into display
strings.  Only short lists reach the browser (the latest orders, open
positions, follows); the full history lives on the Orders page, paginated.
"""

from __future__ import annotations

import reflex as rx

from backend.db.session import session_scope
from backend.services import dashboard
from state import format as fmt
from state.auth import AuthState
from state.live import LiveUpdates


def account_row(a: dashboard.AccountView) -> dict[str, str]:
    return {
        "id": str(a.id), "label": a.label, "broker": fmt.broker(a.broker),
        # A paper account is paper by nature; for a real broker say which environment.
        "mode": "" if a.broker == "paper" else ("Live" if a.live else "Sandbox"), "status": a.status, "status_text": fmt.humanize(a.status),
        "status_message": a.status_message or "", "cash": fmt.money(a.cash), "equity": fmt.money(a.equity),
        "buying_power": fmt.money(a.buying_power), "as_of": fmt.when(a.figures_as_of),
    }


def position_row(p: dashboard.PositionView) -> dict[str, str]:
    return {
        "id": str(p.id), "account_id": str(p.account_id), "account": p.account_label, "symbol": p.symbol,
        "quantity": fmt.quantity(p.quantity), "side": "Long" if p.quantity > 0 else "Short",
        "avg_price": fmt.price(p.avg_price), "last_price": fmt.price(p.last_price),
        "market_value": fmt.money(p.market_value), "unrealized": fmt.signed_money(p.unrealized_pnl),
        "unrealized_tone": fmt.tone(p.unrealized_pnl), "stop_loss": fmt.price(p.stop_loss),
    }


def order_row(o: dashboard.OrderView) -> dict[str, str]:
    return {
        "id": str(o.id), "created_at": fmt.when(o.created_at), "account": o.account_label, "symbol": o.symbol,
        "side": o.side.upper(), "type": fmt.humanize(o.order_type), "quantity": fmt.quantity(o.quantity),
        "filled": fmt.quantity(o.filled_quantity), "avg_fill_price": fmt.price(o.avg_fill_price),
        "status": o.status, "status_text": fmt.humanize(o.status), "leg": o.leg,
        "source": o.source_name or "Manual", "error": o.error_message or "",
    }


def follow_row(f: dashboard.FollowView) -> dict[str, str]:
    sizing = "Account default" if not f.sizing_mode else f"{fmt.humanize(f.sizing_mode)} {fmt.quantity(f.sizing_value)}"
    return {
        "id": str(f.id), "source_id": str(f.source_id), "source": f.source_name, "kind": fmt.source_kind(f.source_kind),
        "community": f.community_name, "provider": f.provider_name,
        "auto_trade": "On" if f.auto_trade else "Off", "sizing": sizing, "account": f.account_label or "Default",
    }


class TraderOverviewState(LiveUpdates, AuthState):
    equity: str = fmt.DASH
    cash: str = fmt.DASH
    buying_power: str = fmt.DASH
    today_pnl: str = fmt.DASH
    today_tone: str = "gray"
    total_pnl: str = fmt.DASH
    total_tone: str = "gray"
    accounts: list[dict[str, str]] = []
    positions: list[dict[str, str]] = []
    latest_orders: list[dict[str, str]] = []
    follows: list[dict[str, str]] = []
    trading_state: str = ""
    trading_state_reason: str = ""
    loaded: bool = False

    @rx.event
    def load(self):
        with session_scope() as session:
            user = self._signed_in_user(session)
            if user is None:
                return self._to_login()
            overview = dashboard.trader_overview(session, user.id)
        self._show(overview)

    def _live_refresh(self, session, user_id: int, orders: bool, portfolio: bool) -> None:
        """Bus push (state/live.py): order events redraw the order list, portfolio events everything."""
        if portfolio:
            self._show(dashboard.trader_overview(session, user_id))
        elif orders:
            self.latest_orders = [order_row(o) for o in dashboard.order_views(session, user_id)]

    def _show(self, overview: dashboard.TraderOverview) -> None:
        t = overview.totals
        self.equity, self.cash, self.buying_power = fmt.money(t.equity), fmt.money(t.cash), fmt.money(t.buying_power)
        self.today_pnl, self.today_tone = fmt.signed_money(t.today_pnl), fmt.tone(t.today_pnl)
        self.total_pnl, self.total_tone = fmt.signed_money(t.total_pnl), fmt.tone(t.total_pnl)
        self.accounts = [account_row(a) for a in overview.accounts]
        self.positions = [position_row(p) for p in overview.positions]
        self.latest_orders = [order_row(o) for o in overview.latest_orders]
        self.follows = [follow_row(f) for f in overview.follows]
        self.trading_state = overview.risk.trading_state if overview.risk else ""
        self.trading_state_reason = (overview.risk.reason or "") if overview.risk else ""
        self.loaded = True
