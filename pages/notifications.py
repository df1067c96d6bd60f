"""Notifications, newest first (fills, rejections, signals not taken, broker disconnects, risk states); Discord."""

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
                rx.text("(once your Discord account is linked)", size="1", color_scheme="gray")),
        align="center", spacing="2",
    )


def link_steps() -> rx.Component:
    """Not linked yet: the button, then the code and what to do with it."""
    return rx.vstack(
        rx.text("Link your Discord account to use the bot's commands (/status, /positions, /pnl, /close, "
                "/follow ...) and to get these notifications as direct messages.", size="2"),
        rx.cond(
            S.link_code != "",
            rx.vstack(
                rx.hstack(rx.text("In your community's Discord server, type", size="2"),
                          rx.code("/link " + S.link_code, size="4", id="link-code"), align="center",
                          spacing="2", wrap="wrap"),
                rx.text("The code works once, until ", S.link_expires, " (15 minutes). A new code replaces it.",
                        size="1", color_scheme="gray", id="link-expires"),
                spacing="1",
            ),
        ),
        rx.button(rx.cond(S.link_code != "", "Get a new code", "Get a link code"), on_click=S.get_link_code,
                  size="2", variant=rx.cond(S.link_code != "", "soft", "solid"), id="get-link-code"),
        spacing="2", align="start",
    )


def discord_card() -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.hstack(
                rx.icon("message-circle", size=18),
                rx.text("Discord", weight="bold"),
                rx.badge(rx.cond(S.discord_linked, "Linked", "Not linked"),
                         color_scheme=rx.cond(S.discord_linked, "green", "gray"), variant="soft", id="discord-status"),
                align="center", spacing="2",
            ),
            rx.cond(S.discord_linked,
                    rx.text("The bot knows you: its commands and DMs act on this account.", size="2",
                            color_scheme="gray"),
                    link_steps()),
            dm_switch(),
            spacing="3", width="100%",
        ),
        width="100%", id="discord-card",
    )


@template(route=routes.TRADER_NOTIFICATIONS, title="Notifications", on_load=S.load)
def notifications_page() -> rx.Component:
    return rx.vstack(
        discord_card(),
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
