"""Admin area, first page: users, communities, subscriptions with MRR, recent audit events."""

from __future__ import annotations

import reflex as rx

from pages import routes
from pages.components import data_table, error_callout, figure, pager, section, status_badge
from pages.template import template
from state.admin import AdminState as S


def mrr_figure(m: dict) -> rx.Component:
    return figure("MRR (" + m["currency"].to(str) + ")", m["amount"], id="mrr-" + m["currency"].to(str))


def community_row(c: dict) -> rx.Component:
    return rx.table.row(
        rx.table.row_header_cell(c["name"]),
        rx.table.cell(c["owner"]),
        rx.table.cell(c["members"]),
        rx.table.cell(c["sources"]),
        rx.table.cell(c["created"]),
    )


def subscription_row(s: dict) -> rx.Component:
    return rx.table.row(
        rx.table.row_header_cell(s["customer"]),
        rx.table.cell(s["community"]),
        rx.table.cell(s["plan"]),
        rx.table.cell(s["provider"]),
        rx.table.cell(status_badge(s["status"], s["status_text"])),
        rx.table.cell(s["price"]),
        rx.table.cell(s["monthly"]),
        rx.table.cell(s["started"]),
    )


def audit_row(e: dict) -> rx.Component:
    return rx.table.row(
        rx.table.cell(e["seq"]),
        rx.table.cell(e["when"]),
        rx.table.row_header_cell(rx.code(e["action"])),
        rx.table.cell(e["actor"]),
        rx.table.cell(e["subject"]),
    )


def worker_row(w: dict) -> rx.Component:
    return rx.table.row(
        rx.table.row_header_cell(w["name"]),
        rx.table.cell(rx.badge(w["alive"], color_scheme=w["tone"])),
        rx.table.cell(w["last_seen"]),
        rx.table.cell(w["details"]),
    )


@template(route=routes.ADMIN, title="Platform", on_load=S.load)
def admin_overview() -> rx.Component:
    return rx.vstack(
        error_callout(S.error),
        rx.cond(
            S.error == "",
            rx.vstack(
                rx.grid(
                    figure("Users", S.users_count, id="users-count"),
                    figure("Communities", S.communities_count),
                    figure("Paying subscriptions", S.active_subscriptions),
                    rx.foreach(S.mrr, mrr_figure),
                    columns=rx.breakpoints(initial="2", md="4"),
                    spacing="3",
                    width="100%",
                ),
                section("Background workers",
                        data_table(["Worker", "State", "Last heartbeat", "Details"], S.workers, worker_row,
                                   empty="No worker has reported yet: start the worker and the scheduler.",
                                   id="workers-table")),
                section("Communities",
                        data_table(["Name", "Owner", "Members", "Sources", "Created"], S.communities, community_row,
                                   empty="No community yet.")),
                section(
                    "Subscriptions",
                    data_table(["Customer", "Community", "Plan", "Billing", "Status", "Price", "Per month",
                                "Started"], S.subscriptions, subscription_row, empty="No subscription yet.",
                               id="subscriptions-table"),
                    action=pager(S.subscription_page, S.has_more_subscriptions, S.previous_subscriptions,
                                 S.next_subscriptions),
                ),
                section("Recent audit events",
                        data_table(["#", "Time", "Action", "Actor", "Subject"], S.audit_events, audit_row,
                                   empty="No audit event yet.")),
                spacing="6",
                width="100%",
            ),
        ),
        spacing="5",
        width="100%",
    )
