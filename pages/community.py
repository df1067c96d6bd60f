"""Community area, first page: members with roles, signal sources and provider stats."""

from __future__ import annotations

import reflex as rx

from pages import routes
from pages.components import data_table, error_callout, figure, pager, section, status_badge
from pages.template import template
from state.community import CommunityState as S


def member_row(m: dict) -> rx.Component:
    return rx.table.row(
        rx.table.row_header_cell(m["name"]),
        rx.table.cell(status_badge(m["role"], m["role_text"])),
        rx.table.cell(m["joined"]),
    )


def source_row(s: dict) -> rx.Component:
    return rx.table.row(
        rx.table.row_header_cell(s["name"]),
        rx.table.cell(s["kind"]),
        rx.table.cell(s["provider"]),
        rx.table.cell(rx.badge(s["active"], color_scheme=rx.cond(s["active"] == "Active", "green", "gray"))),
        rx.table.cell(s["followers"], " (", s["auto"], " auto)"),
        rx.table.cell(s["signals"]),
        rx.table.cell(s["dispatched"]),
        rx.table.cell(s["rejected"]),
        rx.table.cell(s["orders"]),
        rx.table.cell(s["last_signal"]),
    )


def community_picker() -> rx.Component:
    return rx.cond(
        S.communities.length() > 1,
        rx.hstack(
            rx.foreach(
                S.communities,
                lambda c: rx.button(
                    c["name"], size="1",
                    variant=rx.cond(c["id"] == S.community_id.to_string(), "solid", "soft"),
                    on_click=S.select_community(c["id"].to(int)),
                ),
            ),
            spacing="2",
            wrap="wrap",
        ),
    )


@template(route=routes.COMMUNITY, title="Community", on_load=S.load)
def community_overview() -> rx.Component:
    return rx.vstack(
        error_callout(S.error),
        community_picker(),
        rx.cond(
            S.community_id != 0,
            rx.vstack(
                rx.hstack(
                    rx.heading(S.community_name, size="5", id="community-name"),
                    status_badge(S.my_role, "You: " + S.my_role),
                    align="center",
                    spacing="3",
                ),
                rx.grid(
                    figure("Members", S.member_count, hint=S.role_summary),
                    figure("Signal sources", S.sources.length()),
                    figure("Signals received", S.signals_total),
                    figure("Follower orders", S.orders_total),
                    columns=rx.breakpoints(initial="2", md="4"),
                    spacing="3",
                    width="100%",
                ),
                section(
                    "Signal sources",
                    data_table(["Source", "Kind", "Provider", "State", "Followers", "Signals", "Traded",
                                "Rejected", "Orders", "Last signal"],
                               S.sources, source_row, empty="No signal source yet.", id="sources-table"),
                ),
                section(
                    "Members",
                    data_table(["Name", "Role", "Joined"], S.members, member_row, empty="No members yet.",
                               id="members-table"),
                    action=pager(S.member_page, S.has_more_members, S.previous_members, S.next_members),
                ),
                spacing="6",
                width="100%",
            ),
        ),
        spacing="5",
        width="100%",
    )
