"""Brokers: each account with its status, a connect form checked at the venue, disconnect."""

from __future__ import annotations

import reflex as rx

from pages import routes
from pages.components import data_table, error_callout, section, status_badge
from pages.template import template
from state.brokers import BROKER_CHOICES, BrokersState as S


def account_row(a: dict) -> rx.Component:
    return rx.table.row(
        rx.table.row_header_cell(a["label"]),
        rx.table.cell(a["broker"], rx.cond(a["exchange"] != "", " · " + a["exchange"], "")),
        rx.table.cell(a["mode"]),
        rx.table.cell(a["permissions"]),
        rx.table.cell(status_badge(a["status"], a["status_text"]),
                      rx.cond(a["status_message"] != "", rx.text(a["status_message"], size="1", color_scheme="gray"))),
        rx.table.cell(rx.cond(a["connected"] == "True",
                              rx.button("Disconnect", size="1", variant="soft", color_scheme="red",
                                        on_click=S.disconnect(a["id"])))),
    )


def error_under(name) -> rx.Component:
    """The refusal's message under the field it names (``name`` is a string or a Var)."""
    return rx.cond(S.error_field == name,
                   rx.text(S.field_error, size="1", color_scheme="red", role="alert", id=f"broker-{name}-error"
                           if isinstance(name, str) else None))


def labelled(label: str, name: str, control: rx.Component) -> rx.Component:
    return rx.vstack(rx.text(label, size="2", weight="medium"), control, error_under(name), spacing="1", width="100%")


def bad(name):
    return {"color_scheme": rx.cond(S.error_field == name, "red", "gray"),
            "aria_invalid": rx.cond(S.error_field == name, "true", "false")}


def secret_input(f: dict) -> rx.Component:
    return rx.vstack(rx.text(f["label"], size="2", weight="medium"),
                     rx.input(type=f["type"], on_change=lambda v: S.set_secret(f["name"], v), width="100%",
                              auto_complete="off", **bad(f["name"])),
                     error_under(f["name"]),
                     spacing="1", width="100%")


def connect_form() -> rx.Component:
    return rx.card(rx.vstack(
        rx.grid(
            labelled("Broker", "broker",
                     rx.select.root(rx.select.trigger(width="100%", id="broker-kind"),
                                    rx.select.content(*[rx.select.item(t, value=k) for k, t in BROKER_CHOICES]),
                                    value=S.broker, on_change=S.set_broker)),
            labelled("Name", "label",
                     rx.input(value=S.label, on_change=S.set_label, placeholder="e.g. Alpaca paper", width="100%",
                              id="broker-label", **bad("label"))),
            rx.cond(S.broker == "ccxt",
                    labelled("Exchange id", "exchange_id",
                             rx.input(value=S.exchange_id, on_change=S.set_exchange_id, placeholder="binance, kraken…",
                                      width="100%", id="broker-exchange_id", **bad("exchange_id")))),
            rx.cond(S.broker == "paper",
                    labelled("Starting cash", "starting_cash",
                             rx.input(value=S.starting_cash, on_change=S.set_starting_cash, width="100%",
                                      id="broker-starting_cash", **bad("starting_cash")))),
            rx.foreach(S.fields, secret_input),
            columns="3", spacing="4", width="100%", align="start",
        ),
        error_under("credentials"),
        rx.cond(S.broker != "paper",
                rx.vstack(rx.hstack(rx.switch(checked=S.live, on_change=S.set_live),
                                    rx.text("Live money (off: the venue's sandbox / paper environment)", size="2"),
                                    align="center", spacing="2"),
                          error_under("live"), spacing="1")),
        rx.cond(S.error_field == "", error_callout(S.field_error)),
        rx.button("Check and connect", on_click=S.connect, loading=S.connecting, id="broker-connect"),
        rx.text("The keys are checked with one harmless read at the venue before anything is saved; "
                "they are stored encrypted and never shown again.", size="1", color_scheme="gray"),
        spacing="3", width="100%",
    ), width="100%")


@template(route=routes.TRADER_BROKERS, title="Brokers", on_load=S.load)
def brokers_page() -> rx.Component:
    return rx.vstack(
        rx.cond(S.message != "", rx.callout(S.message, icon="check", color_scheme="green", width="100%")),
        section("Accounts", data_table(["Name", "Broker", "Mode", "Permissions", "Status", ""], S.accounts,
                                       account_row, empty="No broker account yet.", id="broker-accounts")),
        section("Connect an account", connect_form()),
        spacing="5", width="100%",
    )
