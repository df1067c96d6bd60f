"""Signal console: type a message, see how the bot reads it, publish it to your followers."""

from __future__ import annotations

import reflex as rx

from pages import routes
from pages.components import data_table, error_callout, section, status_badge
from pages.template import template
from state.console import ConsoleState as S


def field_row(f: dict) -> rx.Component:
    return rx.table.row(rx.table.row_header_cell(f["field"]), rx.table.cell(f["value"]))


def outcome_row(o: dict) -> rx.Component:
    return rx.table.row(rx.table.cell(status_badge(o["status"], o["status_text"])), rx.table.cell(o["count"]))


def preview() -> rx.Component:
    return section(
        "How the bot reads it",
        rx.cond(
            S.explanation != "",
            rx.callout(S.explanation, icon="info", color_scheme="amber", width="100%", id="console-not-signal"),
            data_table(["Field", "Value"], S.fields, field_row,
                       empty="Type a message above to see how it is read.", id="console-preview"),
        ),
    )


def outcome() -> rx.Component:
    return rx.cond(
        S.result.contains("signal_id"),
        section(
            "Published",
            rx.card(
                rx.data_list.root(
                    rx.data_list.item(rx.data_list.label("Signal"), rx.data_list.value("#", S.result["signal_id"])),
                    rx.data_list.item(rx.data_list.label("Status"),
                                      rx.data_list.value(S.result["status"], id="console-status")),
                    rx.data_list.item(rx.data_list.label("Reason"), rx.data_list.value(S.result["reason"])),
                    rx.data_list.item(rx.data_list.label("Followers approved"),
                                      rx.data_list.value(S.result["approved"], id="console-approved")),
                    rx.data_list.item(rx.data_list.label("Followers denied"), rx.data_list.value(S.result["denied"])),
                    rx.data_list.item(rx.data_list.label("Orders"),
                                      rx.data_list.value(S.result["orders"], id="console-orders")),
                ),
                width="100%",
            ),
            data_table(["Order status", "Orders"], S.result_orders, outcome_row, empty="No orders were placed."),
        ),
    )


@template(route=routes.COMMUNITY_CONSOLE, title="Signal console", on_load=S.load)
def console_page() -> rx.Component:
    return rx.vstack(
        rx.text("Type a message exactly as you would post it in Discord. Publishing sends it through the same "
                "intake as the bot: every follower's risk limits apply.", size="2", color_scheme="gray"),
        error_callout(S.error),
        rx.hstack(
            rx.text("Publish to", size="2"),
            rx.select.root(
                rx.select.trigger(placeholder="Choose a source", id="console-source"),
                rx.select.content(rx.foreach(S.sources, lambda s: rx.select.item(s["name"], value=s["id"]))),
                value=S.source_id, on_change=S.set_source,
            ),
            align="center", spacing="3",
        ),
        rx.text_area(value=S.message, on_change=S.set_message, placeholder="BUY AAPL @ 190 SL 180 TP 200",
                     rows="4", width="100%", id="console-message"),
        rx.button("Publish", rx.icon("send", size=16), on_click=S.publish, id="console-publish",
                  disabled=(S.sources.length() == 0) | (S.fields.length() == 0)),
        preview(),
        outcome(),
        spacing="4",
        width="100%",
    )
