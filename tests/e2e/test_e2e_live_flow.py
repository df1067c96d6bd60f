"""The central live flow in the browser, as a trader lives it.

Sam (a demo trader) connects a new paper account on the Brokers page,
retires the old one, follows Pat's signals again on the Providers page with
auto-trade on, and keeps the Overview and the Orders list open.  Pat
publishes a signal from the console in another browser context.  Without
any reload, Sam's open pages show the order, its fill, the new position and
the changed P&L.  A reload keeps Sam signed in; the position is closed from
the Positions page.  A second test drops the network of an open page while
a fill happens and checks that the page catches up once it is back.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, Page, expect

from browser_steps import new_page, publish_signal, shot, sign_in

pytestmark = pytest.mark.e2e
PUSH_TIMEOUT = 15_000  # a push (portfolio figures are throttled to one a second) well within this
NEW_ACCOUNT = "Sam e2e paper"


def connect_paper_account_and_retire_the_old_one(page: Page) -> None:
    page.goto("/trader/brokers")
    accounts = page.locator("#broker-accounts")
    expect(accounts).to_contain_text("Paper account")
    page.locator("#broker-label").fill(NEW_ACCOUNT)
    page.locator("#broker-starting_cash").fill("50000")
    page.locator("#broker-starting_cash").press("Tab")
    page.wait_for_timeout(500)  # the inputs' debounced on_change reach the server before the click (a flake otherwise)
    page.locator("#broker-connect").click()
    expect(page.get_by_text(f"Connected {NEW_ACCOUNT}.")).to_be_visible()
    expect(accounts).to_contain_text(NEW_ACCOUNT)
    accounts.get_by_role("row").filter(has_text="Paper account").get_by_role("button", name="Disconnect").click()
    expect(page.get_by_text("Disconnected Paper account.")).to_be_visible()
    shot(page, "e2e-page-brokers")


def follow_pat_again_with_auto_trade(page: Page) -> None:
    page.goto("/trader/providers")
    row = page.locator("#providers-table").get_by_role("row").filter(has_text="Pat Provider").filter(
        has_text="Discord")
    expect(row).to_have_count(1)
    row.get_by_role("button", name="Unfollow").click()  # the old follow traded through the retired account
    row.get_by_role("button", name="Follow").click()
    switch = row.get_by_role("switch")
    expect(switch).to_have_attribute("aria-checked", "true")  # following turns auto-trade on
    switch.click()
    expect(switch).to_have_attribute("aria-checked", "false")
    switch.click()
    expect(switch).to_have_attribute("aria-checked", "true")
    expect(page.get_by_text("Auto-trade on.")).to_be_visible()
    shot(page, "e2e-page-providers")


def test_a_published_signal_fills_on_the_open_pages_without_reload(browser: Browser, live_app: str):
    page = new_page(browser, live_app)
    sign_in(page, "sam", "/trader")
    expect(page.locator("#signed-in-user")).to_have_text("Sam Swing")
    connect_paper_account_and_retire_the_old_one(page)
    follow_pat_again_with_auto_trade(page)

    page.goto("/trader")
    expect(page.locator("#positions-table")).to_have_count(0)  # no position yet: the empty line instead
    cash_before = page.locator("#total-cash").inner_text()
    orders_tab = page.context.new_page()  # the Orders list, open beside the Overview
    orders_tab.goto("/trader/orders")
    expect(orders_tab.get_by_role("heading", name="Orders & trades")).to_be_visible()
    aapl_before = orders_tab.locator("tr[data-order-id]").filter(has_text="AAPL").count()
    for tab in (page, orders_tab):
        tab.evaluate("window.__notReloaded = true")

    publish_signal(browser, live_app, "BUY AAPL", screenshot="e2e-page-console")

    filled = orders_tab.locator('tr[data-status="filled"]').filter(has_text="AAPL")
    expect(filled).to_have_count(aapl_before + 1, timeout=PUSH_TIMEOUT)
    expect(filled.first).to_contain_text("BUY")
    latest = page.locator("#orders-table").get_by_role("row").filter(has_text="AAPL")
    expect(latest.first).to_contain_text("Filled", timeout=PUSH_TIMEOUT)
    position = page.locator("#positions-table").get_by_role("row").filter(has_text="AAPL")
    expect(position).to_have_count(1, timeout=PUSH_TIMEOUT)
    expect(position).to_contain_text(NEW_ACCOUNT)  # traded through the account connected above
    expect(page.locator("#total-cash")).not_to_have_text(cash_before, timeout=PUSH_TIMEOUT)  # paid for it
    pnl_open = page.locator("#total-pnl").inner_text()
    shot(page, "e2e-page-overview")
    shot(orders_tab, "e2e-page-orders")

    # Close it from the Positions page in the other tab; the open Overview follows by itself.
    orders_tab.goto("/trader/positions")
    expect(orders_tab.locator("#positions-list")).to_contain_text("AAPL")
    orders_tab.locator("#close-all-AAPL").click()
    expect(orders_tab.locator("#positions-message")).to_contain_text("Close order for AAPL sent")
    expect(orders_tab.locator("#positions-list")).to_have_count(0, timeout=PUSH_TIMEOUT)
    expect(orders_tab.get_by_text("No open positions.")).to_be_visible()
    shot(orders_tab, "e2e-page-positions")
    expect(position).to_have_count(0, timeout=PUSH_TIMEOUT)
    # Bought and sold at the paper venue's spread: a small realised loss, now in the total P&L.
    expect(page.locator("#total-pnl")).not_to_have_text(pnl_open, timeout=PUSH_TIMEOUT)
    expect(page.locator("#total-pnl")).to_have_text(re.compile(r"^-\d"))
    assert page.evaluate("window.__notReloaded === true"), "the Overview was reloaded"
    shot(page, "e2e-page-overview-after-close")

    page.reload()  # the session is a cookie the server checks: it survives a reload
    expect(page.locator("#signed-in-user")).to_have_text("Sam Swing")
    expect(page.locator("#orders-table")).to_contain_text("AAPL")
    assert not page.evaluate("window.__notReloaded === true")  # it really was a reload

    page.goto("/trader/risk")
    page.locator("#risk-sizing_value").fill("0")
    page.locator("#risk-save").click()
    expect(page.locator("#risk-sizing_value-error")).to_contain_text("more than 0")
    shot(page, "e2e-page-risk")

    page.goto("/trader/notifications")
    expect(page.locator("#notifications-list")).to_contain_text("AAPL")
    shot(page, "e2e-page-notifications")
    page.context.close()


def test_a_page_that_was_offline_catches_up_when_it_reconnects(browser: Browser, live_app: str):
    """The websocket really drops (Chromium's offline emulation alone only pauses it): every
    connection goes through a Playwright route, which is cut while the network is down and
    refuses reconnects until it is back.  A fill happens meanwhile; the push for it is lost."""
    page = new_page(browser, live_app)
    connections: list = []
    down = [False]

    def websocket(ws) -> None:
        if down[0]:
            ws.close()  # the server cannot be reached: the client keeps retrying
            return
        connections.append((ws, ws.connect_to_server()))

    page.route_web_socket(re.compile(r".*/_event/.*"), websocket)
    sign_in(page, "alex", "/trader/orders")
    rows = page.locator("tr[data-order-id]")
    expect(rows.first).to_be_visible()
    newest_before = rows.first.get_attribute("data-order-id")
    assert len(connections) == 1
    page.evaluate("window.__notReloaded = true")

    down[0] = True
    page.context.set_offline(True)
    for client_side, server_side in connections:
        client_side.close()
        server_side.close()
    publish_signal(browser, live_app, "BUY AAPL")  # fills for Alex while the page is cut off
    page.wait_for_timeout(3000)  # a push would have arrived by now, had the page been connected
    assert rows.first.get_attribute("data-order-id") == newest_before, "the offline page was updated"

    down[0] = False
    page.context.set_offline(False)
    expect(rows.first).not_to_have_attribute("data-order-id", newest_before, timeout=PUSH_TIMEOUT * 2)
    expect(rows.first).to_contain_text("AAPL")
    expect(rows.first).to_have_attribute("data-status", "filled")
    assert len(connections) >= 2, "caught up over a new websocket connection"
    assert page.evaluate("window.__notReloaded === true"), "caught up by itself, not by a page reload"
    shot(page, "e2e-page-orders-after-reconnect")

    # And the live task came back with the connection: the next fill arrives by push again.
    newest = rows.first.get_attribute("data-order-id")
    publish_signal(browser, live_app, "BUY AAPL")  # buys only: later tests close Alex's seeded position
    expect(rows.first).not_to_have_attribute("data-order-id", newest, timeout=PUSH_TIMEOUT)
    assert page.evaluate("window.__notReloaded === true")
    page.context.close()
