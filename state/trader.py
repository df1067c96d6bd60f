"""Trader overview: the signed-in follower's money at a glance.

``load`` (the page's ``on_load``) and ``refresh`` read one
``backend.services.dashboard.trader_overview`` and turn it into display
strings.  Only short lists reach the browser (the latest orders, open
positions, follows, at most 120 equity points and 14 daily P&L bars); the
full history lives on the Orders page, paginated.

Chart points are the one place money leaves as numbers rather than display
strings: the chart library plots numbers.  They are rounded to cents for
drawing only; the figures shown as text still come from ``format``.
"""

from __future__ import annotations

from datetime import timezone
from decimal import Decimal

import reflex as rx

from backend.db.session import session_scope
from backend.services import dashboard
from backend.services.equity_history import DayPnl, EquityPoint
from backend.services.provider_performance import Performance
from state import format as fmt
from state.auth import AuthState
from state.live import LiveUpdates
from state.shared_reads import shared

CENT = Decimal("0.01")


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
        "status": o.status, "status_text": fmt.status_text(o.status, o.held_by_engine), "leg": o.leg,
        "source": o.source_name or "Manual", "error": o.error_message or "",
    }


def recent_text(p: Performance) -> str:
    """The last 30 days of a provider in one line, e.g. ``+120.00 · 3 of 4 won · 6 signals``."""
    signals = f"{p.signals} signal{'' if p.signals == 1 else 's'}"
    if not p.round_trips:
        return f"No closed trade yet · {signals}"
    return f"{fmt.signed_money(p.total_pnl)} · {p.wins} of {p.round_trips} won · {signals}"


def follow_row(f: dashboard.FollowView) -> dict[str, str]:
    sizing = "Account default" if not f.sizing_mode else f"{fmt.humanize(f.sizing_mode)} {fmt.quantity(f.sizing_value)}"
    return {
        "id": str(f.id), "source_id": str(f.source_id), "source": f.source_name, "kind": fmt.source_kind(f.source_kind),
        "community": f.community_name, "provider": f.provider_name,
        "auto_trade": "On" if f.auto_trade else "Off", "sizing": sizing, "account": f.account_label or "Default",
        "recent": recent_text(f.recent), "recent_tone": fmt.tone(f.recent.total_pnl if f.recent.round_trips else None),
    }


def chart_number(value: Decimal) -> float:
    return float(value.quantize(CENT))


def equity_point(p: EquityPoint) -> dict[str, str | float]:
    return {"at": p.at.astimezone(timezone.utc).strftime("%b %d %H:%M"), "equity": chart_number(p.equity)}


def day_bar(d: DayPnl) -> dict[str, str | float]:
    return {"day": d.day.strftime("%b %d"), "realized": chart_number(d.realized),
            "unrealized": chart_number(d.unrealized)}


RISK_TEXT = {
    "ACTIVE": "New signals are traded within your risk limits.",
    "REDUCING": "Only orders that reduce a position are sent.",
    "HALTED": "No new orders are sent.",
}


class TraderOverviewState(LiveUpdates, AuthState):
    equity: str = fmt.DASH
    cash: str = fmt.DASH
    buying_power: str = fmt.DASH
    today_pnl: str = fmt.DASH
    today_tone: str = "gray"
    total_pnl: str = fmt.DASH
    total_tone: str = "gray"
    realized_pnl: str = fmt.DASH
    unrealized_pnl: str = fmt.DASH
    equity_points: list[dict[str, str | float]] = []
    pnl_days: list[dict[str, str | float]] = []
    accounts: list[dict[str, str]] = []
    positions: list[dict[str, str]] = []
    latest_orders: list[dict[str, str]] = []
    follows: list[dict[str, str]] = []
    trading_state: str = ""
    trading_state_reason: str = ""
    trading_state_text: str = ""
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
        if portfolio:  # read once for every client of this member in this worker (state.shared_reads)
            self._show(shared(("overview", user_id), lambda: dashboard.trader_overview(session, user_id), copy=False))
        elif orders:
            self.latest_orders = [order_row(o) for o in shared(
                ("latest orders", user_id), lambda: dashboard.order_views(session, user_id), copy=False)]

    def _show(self, overview: dashboard.TraderOverview) -> None:
        t = overview.totals
        self.equity, self.cash, self.buying_power = fmt.money(t.equity), fmt.money(t.cash), fmt.money(t.buying_power)
        self.today_pnl, self.today_tone = fmt.signed_money(t.today_pnl), fmt.tone(t.today_pnl)
        self.total_pnl, self.total_tone = fmt.signed_money(t.total_pnl), fmt.tone(t.total_pnl)
        self.realized_pnl, self.unrealized_pnl = fmt.signed_money(t.realized_pnl), fmt.signed_money(t.unrealized_pnl)
        self.equity_points = [equity_point(p) for p in overview.equity_curve]
        self.pnl_days = [day_bar(d) for d in overview.pnl_days]
        self.accounts = [account_row(a) for a in overview.accounts]
        self.positions = [position_row(p) for p in overview.positions]
        self.latest_orders = [order_row(o) for o in overview.latest_orders]
        self.follows = [follow_row(f) for f in overview.follows]
        # No risk profile saved yet: the money path trades with the defaults, so the state is ACTIVE.
        self.trading_state = overview.risk.trading_state if overview.risk else "ACTIVE"
        self.trading_state_reason = (overview.risk.reason or "") if overview.risk else ""
        self.trading_state_text = RISK_TEXT.get(self.trading_state, "")
        self.loaded = True
