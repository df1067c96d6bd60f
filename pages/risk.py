"""Risk settings: trading state and close-only at the top, then sizing and every limit the money path checks,
with the service's message under each bad field."""

from __future__ import annotations

import reflex as rx

from backend.db.models.trading import PROVIDER_DEFAULT_SIZING
from backend.services.risk_settings import SIZING_MODES
from pages import routes
from pages.components import error_callout, section, status_badge
from pages.template import template
from state.risk import RiskState as S

# The profile's modes, worded as a choice the trader makes (the service's keys, in its order).
SIZING_CHOICES = {PROVIDER_DEFAULT_SIZING: "Use the provider's sizing", **SIZING_MODES}


def field(name: str, label: str, hint="", placeholder: str = "", width: str = "100%",
          disabled=False) -> rx.Component:
    bad = S.field_errors.contains(name)
    return rx.vstack(
        rx.text(label, size="2", weight="medium"),
        rx.input(value=S.form[name], on_change=lambda v: S.set_field(name, v), placeholder=placeholder,
                 id=f"risk-{name}", width=width, color_scheme=rx.cond(bad, "red", "gray"),
                 aria_invalid=rx.cond(bad, "true", "false"), disabled=disabled),
        rx.cond(bad, rx.text(S.field_errors[name], size="1", color_scheme="red", id=f"risk-{name}-error"),
                rx.fragment() if isinstance(hint, str) and not hint else rx.text(hint, size="1", color_scheme="gray")),
        spacing="1", width="100%",
    )


def switch(name: str, label: str) -> rx.Component:
    return rx.hstack(rx.switch(checked=S.switches[name], on_change=lambda v: S.set_switch(name, v),
                               id=f"risk-{name}"), rx.text(label, size="2"), align="center", spacing="2")


def trading_state() -> rx.Component:
    """Where the account stands now, why, and the one switch the trader controls."""
    return rx.card(
        rx.vstack(
            rx.hstack(rx.text("Trading state", size="2", weight="medium"), status_badge(S.trading_state),
                      rx.text(S.state_meaning, size="2", id="risk-state-meaning"), align="center", spacing="2",
                      wrap="wrap"),
            rx.cond(S.state_reason != "", rx.text(S.state_reason, size="2", color_scheme="gray",
                                                  id="risk-state-reason")),
            rx.hstack(
                rx.switch(checked=S.switches["close_only"], on_change=S.set_close_only, id="risk-close_only",
                          color_scheme="amber"),
                rx.vstack(rx.text("Close-only mode: only exits and stop moves are sent", size="2",
                                  weight="medium"),
                          rx.text("Takes effect at once. New entries are refused until you switch it off; "
                                  "switching it off never lifts a halt for the day.", size="1", color_scheme="gray"),
                          spacing="0"),
                align="center", spacing="3"),
            spacing="3", width="100%"),
        width="100%", id="risk-state",
    )


def sizing() -> rx.Component:
    bad = S.field_errors.contains("sizing_mode")
    return section("Sizing", rx.grid(
        rx.vstack(
            rx.text("Sizing mode", size="2", weight="medium"),
            rx.select.root(rx.select.trigger(id="risk-sizing_mode", width="100%"),
                           rx.select.content(*[rx.select.item(t, value=v) for v, t in SIZING_CHOICES.items()]),
                           value=S.form["sizing_mode"], on_change=lambda v: S.set_field("sizing_mode", v)),
            rx.cond(bad, rx.text(S.field_errors["sizing_mode"], size="1", color_scheme="red"),
                    rx.cond(S.provider_sizing,
                            rx.text("Each signal source's default size applies; a follow's own size still wins.",
                                    size="1", color_scheme="gray"))),
            spacing="1", width="100%"),
        field("sizing_value", "Size",
              rx.cond(S.provider_sizing, "Not used while the provider's sizing applies.",
                      "Units, dollars or percent, depending on the mode."), disabled=S.provider_sizing),
        switch("use_signal_quantity", "Use the quantity the signal states, when it gives one"),
        columns="3", spacing="4", width="100%", align="start"))


def daily_loss() -> rx.Component:
    return section("Daily loss", rx.grid(
        field("daily_loss_limit", "Daily loss limit ($)",
              "Today's realised + open loss. Beyond it, trading halts until the next trading day."),
        field("reduce_at_loss_percent", "Turn close-only at this % of the daily loss limit",
              "E.g. 75: past 75 % of the limit, new entries stop for the rest of the day; positions and stops "
              "stay. Empty: off.", "75"),
        switch("flatten_on_daily_loss", "Close everything when the daily loss limit is hit"),
        columns="3", spacing="4", width="100%", align="start"))


def price_sanity() -> rx.Component:
    return section("Price check", rx.grid(
        field("max_price_deviation_percent", "Refuse limit entries more than this % away from the last price",
              "Catches a misread price (a $1.00 limit on a $250 stock). Empty: no check.", "10"),
        field("max_option_price_deviation_percent", "For options, refuse them more than this % away",
              "Option prices move faster, so this is usually wider. Empty: no check.", "50"),
        columns="2", spacing="4", width="100%", align="start"))


@template(route=routes.TRADER_RISK, title="Risk settings", on_load=S.load)
def risk_page() -> rx.Component:
    return rx.vstack(
        trading_state(),
        error_callout(S.error),
        rx.cond(S.saved != "", rx.callout(S.saved, icon="check", color_scheme="green", width="100%", id="risk-saved")),
        sizing(),
        section("Limits", rx.grid(
            field("max_position_notional", "Max position value ($)", "Empty: no limit."),
            field("max_open_positions", "Max open positions", "Empty: no limit."),
            field("max_leverage", "Max leverage", "Empty: no limit."),
            field("max_signals_per_minute", "Max signals per minute", "Empty: no limit."),
            columns="3", spacing="4", width="100%", align="start")),
        daily_loss(),
        price_sanity(),
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
