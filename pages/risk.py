"""Risk settings: sizing and every limit the money path checks, with a message under each bad field."""

from __future__ import annotations

import reflex as rx

from pages import routes
from pages.components import error_callout, section, status_badge
from pages.template import template
from backend.services.risk_settings import SIZING_MODES
from state.risk import RiskState as S


def field(name: str, label: str, hint: str = "", placeholder: str = "", width: str = "100%") -> rx.Component:
    bad = S.field_errors.contains(name)
    return rx.vstack(
        rx.text(label, size="2", weight="medium"),
        rx.input(value=S.form[name], on_change=lambda v: S.set_field(name, v), placeholder=placeholder,
                 id=f"risk-{name}", width=width, color_scheme=rx.cond(bad, "red", "gray"),
                 aria_invalid=rx.cond(bad, "true", "false")),
        rx.cond(bad, rx.text(S.field_errors[name], size="1", color_scheme="red", id=f"risk-{name}-error"),
                rx.text(hint, size="1", color_scheme="gray") if hint else rx.fragment()),
        spacing="1", width="100%",
    )


def switch(name: str, label: str) -> rx.Component:
    return rx.hstack(rx.switch(checked=S.switches[name], on_change=lambda v: S.set_switch(name, v),
                               id=f"risk-{name}"), rx.text(label, size="2"), align="center", spacing="2")


def sizing() -> rx.Component:
    bad = S.field_errors.contains("sizing_mode")
    return section("Sizing", rx.grid(
        rx.vstack(
            rx.text("Sizing mode", size="2", weight="medium"),
            rx.select.root(rx.select.trigger(id="risk-sizing_mode", width="100%"),
                           rx.select.content(*[rx.select.item(t, value=v) for v, t in SIZING_MODES.items()]),
                           value=S.form["sizing_mode"], on_change=lambda v: S.set_field("sizing_mode", v)),
            rx.cond(bad, rx.text(S.field_errors["sizing_mode"], size="1", color_scheme="red")),
            spacing="1", width="100%"),
        field("sizing_value", "Size", "Units, dollars or percent, depending on the mode."),
        switch("use_signal_quantity", "Use the quantity the signal states, when it gives one"),
        columns="3", spacing="4", width="100%", align="start"))


@template(route=routes.TRADER_RISK, title="Risk settings", on_load=S.load)
def risk_page() -> rx.Component:
    return rx.vstack(
        rx.hstack(rx.text("Trading state", size="2"), status_badge(S.trading_state),
                  rx.text(S.state_reason, size="2", color_scheme="gray"), align="center", spacing="2"),
        error_callout(S.error),
        rx.cond(S.saved != "", rx.callout(S.saved, icon="check", color_scheme="green", width="100%", id="risk-saved")),
        sizing(),
        section("Limits", rx.grid(
            field("max_position_notional", "Max position value ($)", "Empty: no limit."),
            field("max_open_positions", "Max open positions", "Empty: no limit."),
            field("max_leverage", "Max leverage", "Empty: no limit."),
            field("daily_loss_limit", "Daily loss limit ($)", "Trading halts for the day beyond this loss."),
            field("max_signals_per_minute", "Max signals per minute", "Empty: no limit."),
            switch("flatten_on_daily_loss", "Close everything when the daily loss limit is hit"),
            columns="3", spacing="4", width="100%", align="start")),
        section("Symbols", rx.grid(
            field("allowed_symbols", "Only trade these", "Comma separated; empty: any symbol.", "AAPL, MSFT"),
            field("denied_symbols", "Never trade these", "Comma separated.", "GME"),
            columns="2", spacing="4", width="100%", align="start")),
        section("Market hours", rx.grid(
            switch("enforce_market_hours", "Only open positions during market hours"),
            field("market_open", "Opens", "", "09:30"),
            field("market_close", "Closes", "", "16:00"),
            field("market_tz", "Time zone", "", "America/New_York"),
            columns="4", spacing="4", width="100%", align="start")),
        rx.button("Save settings", on_click=S.save, id="risk-save", size="3"),
        spacing="5", width="100%",
    )
