"""Positions: quantity, average price, unrealised P&L, stop and targets; close all or a percentage."""

from __future__ import annotations

import reflex as rx

from pages import routes
from pages.components import data_table, error_callout, section
from pages.template import template
from state.positions import PositionsState as S


def position_row(p: dict) -> rx.Component:
    return rx.table.row(
        rx.table.row_header_cell(p["symbol"]),
        rx.table.cell(p["account"]),
        rx.table.cell(p["side"]),
        rx.table.cell(p["quantity"]),
        rx.table.cell(p["avg_price"]),
        rx.table.cell(p["last_price"]),
        rx.table.cell(rx.text(p["unrealized"], color_scheme=p["unrealized_tone"])),
        rx.table.cell(p["stop_loss"]),
        rx.table.cell(p["targets"]),
        rx.table.cell(rx.hstack(
            rx.button("Close all", size="1", color_scheme="red", variant="soft", disabled=S.closing,
                      on_click=S.close_all(p["account_id"], p["symbol"]), id="close-all-" + p["symbol"]),
            rx.button("Close ", S.percent, "%", size="1", variant="soft", disabled=S.closing,
                      on_click=S.close_percent(p["account_id"], p["symbol"])),
            spacing="2")),
    )


@template(route=routes.TRADER_POSITIONS, title="Positions", on_load=S.load)
def positions_page() -> rx.Component:
    return rx.vstack(
        error_callout(S.error),
        rx.cond(S.message != "", rx.callout(S.message, icon="check", color_scheme="green", width="100%",
                                           id="positions-message")),
        section(
            "Open positions",
            data_table(["Symbol", "Account", "Side", "Quantity", "Avg price", "Last", "Unrealised P&L", "Stop",
                        "Targets", ""], S.positions, position_row, empty="No open positions.",
                       id="positions-list"),
            action=rx.hstack(rx.text("Partial close", size="2"),
                             rx.input(value=S.percent, on_change=S.set_percent, width="4rem", id="close-percent"),
                             rx.text("%", size="2"), align="center", spacing="2"),
        ),
        spacing="5",
        width="100%",
    )
