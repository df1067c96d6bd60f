"""Notifications: fills, rejections, stale signals and risk halts, newest first; DM preference."""

from __future__ import annotations

import reflex as rx

from pages import routes
from pages.components import empty_state, error_callout, pager, section
from pages.template import template
from state.notifications import NotificationsState as S


def notification_card(n: dict) -> rx.Component:
    unread = n["read"] == ""
    return rx.card(
        rx.hstack(
            rx.box(width="0.5rem", height="0.5rem", border_radius="50%", margin_top="0.45rem",
                   background=rx.cond(unread, rx.color("accent", 9), "transparent")),
            rx.vstack(
                rx.hstack(
                    rx.text(n["title"], weight=rx.cond(unread, "bold", "regular")),
                    rx.badge(n["kind_text"], color_scheme=n["tone"], variant="soft"),
                    align="center", spacing="2", wrap="wrap",
                ),
                rx.cond(n["body"] != "", rx.text(n["body"], size="2", color_scheme="gray")),
                rx.text(n["when"], rx.cond(n["dm"] != "", " · " + n["dm"].to(str), ""),
                        size="1", color_scheme="gray"),
                spacing="1", width="100%",
            ),
            rx.cond(unread, rx.button("Mark read", size="1", variant="ghost", on_click=S.mark_read(n["id"]))),
            align="start", spacing="3", width="100%",
        ),
        width="100%",
    )


def dm_switch() -> rx.Component:
    return rx.hstack(
        rx.switch(checked=S.dm_enabled, on_change=S.set_dm_enabled, id="dm-enabled"),
        rx.text("Also send them to me as Discord DMs", size="2"),
        rx.cond(~S.discord_linked,
                rx.text("(no Discord account linked yet: type /link in Discord)", size="1", color_scheme="gray")),
        align="center", spacing="2",
    )


@template(route=routes.TRADER_NOTIFICATIONS, title="Notifications", on_load=S.load)
def notifications_page() -> rx.Component:
    return rx.vstack(
        dm_switch(),
        error_callout(S.error),
        section(
            "Inbox",
            rx.cond(
                S.items.length() > 0,
                rx.vstack(rx.foreach(S.items, notification_card), spacing="2", width="100%", id="notifications-list"),
                empty_state(rx.cond(S.unread_only, "Nothing unread.", "No notifications yet.")),
            ),
            pager(S.page, S.has_more, S.previous_page, S.next_page),
            action=rx.hstack(
                rx.text(S.unread, " unread of ", S.total, size="2", color_scheme="gray", id="notifications-unread"),
                rx.hstack(rx.switch(checked=S.unread_only, on_change=S.set_unread_only, size="1"),
                          rx.text("Unread only", size="2"), align="center", spacing="1"),
                rx.button("Mark all read", size="1", variant="soft", on_click=S.mark_all_read,
                          disabled=S.unread == 0, id="mark-all-read"),
                align="center", spacing="3",
            ),
        ),
        spacing="5",
        width="100%",
    )
