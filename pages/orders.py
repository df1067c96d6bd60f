"""Orders & trades: the full history with filters, server-side pages, each order's story, CSV export."""

from __future__ import annotations

import reflex as rx

from pages import routes
from pages.components import data_table, error_callout, section, status_badge
from pages.template import template
from state.orders import ALL, STATUSES, OrdersState as S


def order_row(o: dict) -> rx.Component:
    return rx.table.row(
        rx.table.cell(o["created_at"]),
        rx.table.row_header_cell(rx.link(o["symbol"], on_click=S.open_order(o["id"]), cursor="pointer")),
        rx.table.cell(o["side"]),
        rx.table.cell(o["type"]),
        rx.table.cell(o["quantity"]),
        rx.table.cell(o["filled"]),
        rx.table.cell(o["avg_fill_price"]),
        rx.table.cell(status_badge(o["status"], o["status_text"])),
        rx.table.cell(o["source"]),
        rx.table.cell(rx.button("Story", size="1", variant="soft", on_click=S.open_order(o["id"]))),
        cursor="pointer",
        # For the browser tests and the live-update benchmark: which order, in which state.
        custom_attrs={"data-order-id": o["id"], "data-status": o["status"]},
    )


def filters() -> rx.Component:
    return rx.hstack(
        rx.input(placeholder="Symbol", value=S.symbol, on_change=S.set_symbol, on_blur=S.apply_filters,
                 width="8rem", id="filter-symbol"),
        rx.select.root(
            rx.select.trigger(placeholder="Status"),
            rx.select.content(rx.select.item("All statuses", value=ALL),
                              *[rx.select.item(s.replace("_", " ").capitalize(), value=s) for s in STATUSES]),
            value=S.status, on_change=S.set_status,
        ),
        rx.select.root(
            rx.select.trigger(placeholder="Provider"),
            rx.select.content(rx.select.item("All providers", value=ALL),
                              rx.foreach(S.sources, lambda s: rx.select.item(s["name"], value=s["id"]))),
            value=S.source_id, on_change=S.set_source,
        ),
        rx.text("From", size="2"),
        rx.input(type="date", value=S.date_from, on_change=S.set_date_from, width="10rem"),
        rx.text("to", size="2"),
        rx.input(type="date", value=S.date_to, on_change=S.set_date_to, width="10rem"),
        rx.button("Apply", on_click=S.apply_filters, size="2", id="filter-apply"),
        rx.button("Clear", on_click=S.clear_filters, size="2", variant="soft"),
        rx.spacer(),
        rx.button(rx.icon("download", size=16), "CSV", on_click=S.export_csv, variant="outline", id="export-csv"),
        wrap="wrap", align="center", spacing="2", width="100%",
    )


def pager() -> rx.Component:
    """Keyset pages: newest / newer / older / oldest (no page numbers: see services/orders.py)."""
    return rx.hstack(
        rx.button("Newest", on_click=S.newest_page, disabled=~S.has_newer, variant="soft", size="1",
                  id="orders-newest"),
        rx.button("Newer", on_click=S.previous_page, disabled=~S.has_newer, variant="soft", size="1",
                  id="orders-newer"),
        rx.button("Older", on_click=S.next_page, disabled=~S.has_older, variant="soft", size="1", id="orders-older"),
        rx.button("Oldest", on_click=S.oldest_page, disabled=~S.has_older, variant="soft", size="1",
                  id="orders-oldest"),
        align="center",
        spacing="2",
    )


def kv(label: str, value) -> rx.Component:
    return rx.data_list.item(rx.data_list.label(label), rx.data_list.value(value))


def story_dialog() -> rx.Component:
    o = S.story_order
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title(o["side"], " ", o["quantity"], " ", o["symbol"], " · order #", o["id"]),
            rx.vstack(
                rx.data_list.root(kv("Status", status_badge(o["status"], o["status_text"])),
                                  kv("Account", o["account"]), kv("Type", o["type"]), kv("Leg", o["leg"]),
                                  kv("Filled", o["filled"]), kv("Avg fill", o["avg_fill_price"]),
                                  kv("Fees", o["total_fees"]), size="2"),
                rx.cond(o["error"] != "", rx.callout(o["error"], color_scheme="red", icon="triangle-alert")),
                rx.heading("Signal", size="3"),
                rx.cond(S.story_signal.contains("raw_text"),
                        rx.vstack(rx.code_block(S.story_signal["raw_text"], width="100%"),
                                  rx.text(S.story_signal["provider"], " · ", S.story_signal["source"], " · ",
                                          S.story_signal["received_at"], " · ", S.story_signal["status"],
                                          size="1", color_scheme="gray"), width="100%"),
                        rx.text("Placed by hand (no signal).", size="2", color_scheme="gray")),
                rx.heading("Risk decision", size="3"),
                rx.cond(S.story_decision.contains("verdict"),
                        rx.vstack(rx.text(S.story_decision["verdict"], " · quantity ", S.story_decision["quantity"],
                                          weight="medium", id="story-verdict"),
                                  rx.foreach(S.story_reasons, lambda r: rx.text("• ", r, size="2")), spacing="1"),
                        rx.text("No risk decision recorded.", size="2", color_scheme="gray")),
                rx.heading("State changes", size="3"),
                data_table(["Time", "From", "To", "Message"], S.story_events,
                           lambda e: rx.table.row(rx.table.cell(e["at"]), rx.table.cell(e["from"]),
                                                  rx.table.cell(e["to"]), rx.table.cell(e["message"])),
                           empty="No state changes yet.", id="story-events"),
                rx.heading("Fills", size="3"),
                data_table(["Time", "Quantity", "Price", "Fee"], S.story_fills,
                           lambda f: rx.table.row(rx.table.cell(f["at"]), rx.table.cell(f["quantity"]),
                                                  rx.table.cell(f["price"]), rx.table.cell(f["fee"])),
                           empty="No fills.", id="story-fills"),
                rx.hstack(rx.spacer(), rx.button("Close", on_click=S.close_story, variant="soft"), width="100%"),
                spacing="3", width="100%",
            ),
            max_width="48rem",
        ),
        open=S.story_open,
        on_open_change=lambda _open: S.close_story(),
    )


@template(route=routes.TRADER_ORDERS, title="Orders & trades", on_load=S.load)
def orders_page() -> rx.Component:
    return rx.vstack(
        filters(),
        error_callout(S.error),
        section(
            "Orders",
            data_table(["Time", "Symbol", "Side", "Type", "Qty", "Filled", "Avg fill", "Status", "Source", ""],
                       S.rows, order_row, empty="No orders match these filters.", id="orders-history"),
            rx.cond(S.has_newer | S.has_older, pager()),
            action=rx.text(S.count, size="2", color_scheme="gray", id="orders-count"),
        ),
        story_dialog(),
        spacing="5",
        width="100%",
    )
