"""Signal providers: each source of the trader's communities with its real track record, and follow controls."""

from __future__ import annotations

import reflex as rx

from backend.services.risk_settings import SIZING_MODES
from pages import routes
from pages.components import data_table, error_callout, section
from pages.template import template
from state.providers import DEFAULT_MODE
from state.providers import ProvidersState as S

HEADERS = ["Source", "Provider", "Community", "Signals", "Round trips", "Win rate", "Avg return", "Total P&L",
           "Max drawdown", "Auto-trade", "Sizing", ""]


def follow_controls(p: dict) -> rx.Component:
    following = p["following"] != ""
    return rx.cond(
        following,
        rx.hstack(
            rx.button("Sizing", size="1", variant="soft", on_click=S.open_sizing(p), id=f"sizing-{p['source_id']}"),
            rx.button("Unfollow", size="1", variant="soft", color_scheme="red", on_click=S.unfollow(p["follow_id"]),
                      id=f"unfollow-{p['source_id']}"),
            spacing="2",
        ),
        rx.cond(p["can_follow"] != "",
                rx.button("Follow", size="1", on_click=S.follow(p["source_id"]), id=f"follow-{p['source_id']}"),
                rx.text("Viewer role: cannot follow", size="1", color_scheme="gray")),
    )


def provider_row(p: dict) -> rx.Component:
    return rx.table.row(
        rx.table.row_header_cell(rx.vstack(rx.text(p["name"], weight="medium"),
                                           rx.text(p["kind"], size="1", color_scheme="gray"), spacing="0")),
        rx.table.cell(p["provider"]),
        rx.table.cell(p["community"]),
        rx.table.cell(p["signals"]),
        rx.table.cell(p["round_trips"]),
        rx.table.cell(p["win_rate"]),
        rx.table.cell(rx.text(p["avg_return"], color_scheme=p["avg_tone"])),
        rx.table.cell(rx.text(p["total_pnl"], color_scheme=p["total_tone"])),
        rx.table.cell(p["max_drawdown"]),
        rx.table.cell(rx.cond(p["following"] != "",
                              rx.switch(checked=p["auto_trade"] != "",
                                        on_change=lambda on: S.set_auto_trade(p["follow_id"], on),
                                        id=f"auto-trade-{p['source_id']}"),
                              rx.text("—", color_scheme="gray"))),
        rx.table.cell(p["sizing"]),
        rx.table.cell(follow_controls(p)),
    )


def field_error(name: str) -> rx.Component:
    return rx.cond(S.field_errors.contains(name),
                   rx.text(S.field_errors[name], size="1", color_scheme="red", id=f"follow-{name}-error"))


def sizing_dialog() -> rx.Component:
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title("Sizing for ", S.sizing_name),
            rx.dialog.description("Overrides your account's sizing for this provider only.", size="2"),
            rx.vstack(
                rx.text("Sizing mode", size="2", weight="medium"),
                rx.select.root(
                    rx.select.trigger(id="follow-sizing_mode", width="100%"),
                    rx.select.content(rx.select.item("Account default", value=DEFAULT_MODE),
                                      *[rx.select.item(t, value=v) for v, t in SIZING_MODES.items()]),
                    value=S.sizing_mode, on_change=S.set_sizing_mode),
                field_error("sizing_mode"),
                rx.text("Size", size="2", weight="medium"),
                rx.input(value=S.sizing_value, on_change=S.set_sizing_value, id="follow-sizing_value",
                         disabled=S.sizing_mode == DEFAULT_MODE, width="100%"),
                field_error("sizing_value"),
                rx.hstack(
                    rx.button("Cancel", variant="soft", color_scheme="gray", on_click=S.close_sizing),
                    rx.button("Save", on_click=S.save_sizing, id="follow-sizing-save"),
                    justify="end", width="100%", spacing="2",
                ),
                spacing="2", width="100%", padding_top="1rem",
            ),
        ),
        open=S.sizing_open,
        on_open_change=lambda _open: S.close_sizing(),
    )


@template(route=routes.TRADER_PROVIDERS, title="Signal providers", on_load=S.load)
def providers_page() -> rx.Component:
    return rx.vstack(
        error_callout(S.error),
        rx.cond(S.message != "", rx.callout(S.message, icon="check", color_scheme="green", width="100%")),
        section(
            "Providers in your communities",
            rx.text("Figures come from what followers' accounts actually filled: a round trip is one realised "
                    "close of an order placed for the provider's signal.", size="2", color_scheme="gray"),
            data_table(HEADERS, S.providers, provider_row, empty="Your communities have no signal provider yet.",
                       id="providers-table"),
        ),
        sizing_dialog(),
        spacing="5",
        width="100%",
    )
