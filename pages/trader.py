"""Trader area, first page: money, charts, positions, latest orders and follows at a glance."""

from __future__ import annotations

import reflex as rx

from pages import routes
from pages.components import data_table, empty_state, figure, section, status_badge
from pages.template import template
from state.trader import TraderOverviewState as S

THOUSANDS = "(value) => Number(value).toLocaleString('en-US')"  # axis ticks: 102,500 (display only)


def account_card(a: dict) -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.hstack(
                rx.text(a["label"], weight="bold"),
                rx.badge(a["broker"], variant="outline"),
                rx.cond(a["mode"] != "",
                        rx.badge(a["mode"], color_scheme=rx.cond(a["mode"] == "Live", "red", "gray"), variant="soft")),
                rx.spacer(),
                status_badge(a["status"], a["status_text"]),
                width="100%",
                align="center",
            ),
            rx.cond(a["status_message"] != "", rx.text(a["status_message"], size="1", color_scheme="red")),
            rx.data_list.root(
                rx.data_list.item(rx.data_list.label("Cash"), rx.data_list.value(a["cash"])),
                rx.data_list.item(rx.data_list.label("Equity"), rx.data_list.value(a["equity"])),
                rx.data_list.item(rx.data_list.label("Buying power"), rx.data_list.value(a["buying_power"])),
                size="2",
            ),
            spacing="2",
        ),
        width="100%",
    )


def position_row(p: dict) -> rx.Component:
    return rx.table.row(
        rx.table.row_header_cell(p["symbol"]),
        rx.table.cell(p["side"]),
        rx.table.cell(p["quantity"]),
        rx.table.cell(p["avg_price"]),
        rx.table.cell(p["last_price"]),
        rx.table.cell(p["market_value"]),
        rx.table.cell(rx.text(p["unrealized"], color_scheme=p["unrealized_tone"])),
        rx.table.cell(p["account"]),
    )


def order_row(o: dict) -> rx.Component:
    return rx.table.row(
        rx.table.cell(o["created_at"]),
        rx.table.row_header_cell(o["symbol"]),
        rx.table.cell(o["side"]),
        rx.table.cell(o["quantity"]),
        rx.table.cell(o["filled"]),
        rx.table.cell(o["avg_fill_price"]),
        rx.table.cell(status_badge(o["status"], o["status_text"])),
        rx.table.cell(o["source"]),
    )


def follow_row(f: dict) -> rx.Component:
    return rx.table.row(
        rx.table.row_header_cell(f["source"]),
        rx.table.cell(f["provider"]),
        rx.table.cell(f["community"]),
        rx.table.cell(rx.text(f["recent"], size="2", color_scheme=f["recent_tone"])),
        rx.table.cell(rx.badge(f["auto_trade"], color_scheme=rx.cond(f["auto_trade"] == "On", "green", "gray"))),
        rx.table.cell(f["sizing"]),
    )


def risk_banner() -> rx.Component:
    """Always there: a calm line while ACTIVE, amber or red with the reason otherwise."""
    calm = S.trading_state == "ACTIVE"
    return rx.callout(
        rx.text("Trading is ", rx.text.strong(S.trading_state, id="risk-state"), ". ",
                rx.cond(S.trading_state_reason != "", S.trading_state_reason + " ", ""), S.trading_state_text),
        icon=rx.cond(calm, "shield-check", "shield-alert"),
        color_scheme=rx.cond(calm, "gray", rx.cond(S.trading_state == "HALTED", "red", "amber")),
        variant=rx.cond(calm, "surface", "soft"), size="1", width="100%", id="risk-banner",
    )


def equity_chart() -> rx.Component:
    return rx.cond(
        S.equity_points.length() > 1,
        rx.recharts.line_chart(
            rx.recharts.cartesian_grid(stroke_dasharray="3 3", vertical=False),
            rx.recharts.line(data_key="equity", name="Equity", type_="monotone", dot=False, stroke=rx.color("accent", 9),
                             stroke_width=2, is_animation_active=False),
            rx.recharts.x_axis(data_key="at", min_tick_gap=40, font_size=11),
            rx.recharts.y_axis(domain=["auto", "auto"], width=80, font_size=11, tick_formatter=THOUSANDS),
            rx.recharts.graphing_tooltip(),
            data=S.equity_points, height=240, width="100%",
        ),
        empty_state("The equity curve starts with the first snapshot the scheduler takes of your accounts "
                    "(every 5 minutes while they are connected)."),
    )


def pnl_chart() -> rx.Component:
    return rx.cond(
        S.pnl_days.length() > 0,
        rx.recharts.bar_chart(
            rx.recharts.cartesian_grid(stroke_dasharray="3 3", vertical=False),
            rx.recharts.bar(data_key="realized", name="Realised", stack_id="pnl", fill=rx.color("accent", 9),
                            is_animation_active=False),
            rx.recharts.bar(data_key="unrealized", name="Unrealised (open now)", stack_id="pnl",
                            fill=rx.color("amber", 8), is_animation_active=False),
            rx.recharts.reference_line(y=0, stroke=rx.color("gray", 8)),
            rx.recharts.x_axis(data_key="day", min_tick_gap=20, font_size=11),
            rx.recharts.y_axis(width=80, font_size=11, tick_formatter=THOUSANDS),
            rx.recharts.graphing_tooltip(),
            rx.recharts.legend(),
            data=S.pnl_days, height=240, width="100%",
        ),
        empty_state("No P&L yet."),
    )


@template(route=routes.TRADER, title="Overview", on_load=S.load)
def trader_overview() -> rx.Component:
    return rx.vstack(
        risk_banner(),
        rx.grid(
            figure("Equity", S.equity, id="total-equity"),
            figure("Cash", S.cash, id="total-cash"),
            figure("Buying power", S.buying_power),
            figure("Today's P&L", S.today_pnl, tone=S.today_tone),
            figure("Total P&L", S.total_pnl, tone=S.total_tone, id="total-pnl",
                   hint="Realised " + S.realized_pnl + " · unrealised " + S.unrealized_pnl),
            columns=rx.breakpoints(initial="2", md="3", lg="5"),
            spacing="3",
            width="100%",
        ),
        rx.grid(
            section("Equity, last 30 days", rx.card(equity_chart(), width="100%", id="equity-chart")),
            section("P&L by day (UTC)", rx.card(pnl_chart(), width="100%", id="pnl-chart")),
            columns=rx.breakpoints(initial="1", lg="2"),
            spacing="4",
            width="100%",
        ),
        section(
            "Accounts",
            rx.cond(
                S.accounts.length() > 0,
                rx.grid(rx.foreach(S.accounts, account_card), columns=rx.breakpoints(initial="1", md="2"),
                        spacing="3", width="100%"),
                empty_state("No broker account yet. Connect one to start following signals."),
            ),
        ),
        section(
            "Open positions",
            data_table(["Symbol", "Side", "Quantity", "Avg price", "Last", "Value", "Unrealised P&L", "Account"],
                       S.positions, position_row, empty="No open positions.", id="positions-table"),
        ),
        section(
            "Latest orders",
            data_table(["Time", "Symbol", "Side", "Qty", "Filled", "Avg fill", "Status", "Source"],
                       S.latest_orders, order_row, empty="No orders yet.", id="orders-table"),
        ),
        section(
            "Following",
            data_table(["Source", "Provider", "Community", "Last 30 days", "Auto-trade", "Sizing"], S.follows, follow_row,
                       empty="You do not follow any signal provider yet.", id="follows-table"),
        ),
        spacing="6",
        width="100%",
    )
