"""Small building blocks the pages share: figure cards, tables, badges, messages."""

from __future__ import annotations

from collections.abc import Callable

import reflex as rx

STATUS_COLORS = {
    "filled": "green", "partially_filled": "amber", "submitted": "blue", "new": "gray",
    "cancelled": "gray", "rejected": "red", "expired": "gray", "failed": "red",
    "connected": "green", "disconnected": "amber", "error": "red",
    "active": "green", "trialing": "blue", "past_due": "amber", "canceled": "gray",
    "owner": "purple", "admin": "blue", "trader": "green", "viewer": "gray",
    "ACTIVE": "green", "REDUCING": "amber", "HALTED": "red",
}


def status_badge(code, text=None) -> rx.Component:
    """A coloured badge for a status code held in a Var (colour looked up client-side)."""
    color = rx.Var.create(STATUS_COLORS).to(dict)[code].to(str)
    return rx.badge(text if text is not None else code, color_scheme=rx.cond(color, color, "gray"), variant="soft")


def figure(label: str, value, *, tone=None, hint=None, id: str | None = None) -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.text(label, size="2", color_scheme="gray"),
            rx.heading(value, size="6", color_scheme=tone if tone is not None else None, id=id),
            rx.cond(hint, rx.text(hint, size="1", color_scheme="gray")) if hint is not None else rx.fragment(),
            spacing="1",
        ),
        width="100%",
    )


def section(title: str, *children, action: rx.Component | None = None) -> rx.Component:
    return rx.vstack(
        rx.hstack(rx.heading(title, size="4"), rx.spacer(), action or rx.fragment(), width="100%", align="center"),
        *children,
        spacing="3",
        width="100%",
    )


def data_table(headers: list[str], rows, render_row: Callable, *, empty: str, id: str | None = None) -> rx.Component:
    """A table over a list Var, with a friendly line when the list is empty."""
    return rx.cond(
        rows.length() > 0,
        rx.table.root(
            rx.table.header(rx.table.row(*[rx.table.column_header_cell(h) for h in headers])),
            rx.table.body(rx.foreach(rows, render_row)),
            variant="surface",
            size="2",
            width="100%",
            id=id,
        ),
        empty_state(empty),
    )


def empty_state(message: str) -> rx.Component:
    return rx.box(
        rx.text(message, size="2", color_scheme="gray"),
        padding="1rem",
        border=f"1px dashed {rx.color('gray', 6)}",
        border_radius="var(--radius-3)",
        width="100%",
    )


def error_callout(message) -> rx.Component:
    return rx.cond(
        message != "",
        rx.callout(message, icon="triangle-alert", color_scheme="red", role="alert", width="100%"),
    )


def pager(page, has_more, on_previous, on_next) -> rx.Component:
    return rx.hstack(
        rx.button("Previous", on_click=on_previous, disabled=page == 0, variant="soft", size="1"),
        rx.text("Page ", page + 1, size="2", color_scheme="gray"),
        rx.button("Next", on_click=on_next, disabled=~has_more, variant="soft", size="1"),
        align="center",
        spacing="3",
    )
