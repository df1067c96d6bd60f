"""The money path in the browser: a provider publishes from the console, a follower sees the
order, closes a position, and meets a field error in the risk settings."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
SIGNAL = "BUY AAPL @ 190 SL 180 TP 200"

pytestmark = pytest.mark.e2e


def sign_in(page: Page, username: str, start: str) -> None:
    page.goto(start)
    page.wait_for_url(re.compile(r".*/login/?\?next="))
    page.locator(f"#login-as-{username}").click()
    page.wait_for_url(re.compile(".*" + re.escape(start) + "/?$"))


def shot(page: Page, name: str) -> None:
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_console_signal_reaches_a_follower_who_closes_and_edits_risk(page: Page):
    sign_in(page, "pat", "/community/console")
    message = page.locator("#console-message")
    message.fill("anyone think AAPL goes up?")
    expect(page.locator("#console-not-signal")).to_contain_text("Not read as a trade signal")
    message.fill(SIGNAL)
    expect(page.locator("#console-preview")).to_contain_text("AAPL")
    expect(page.locator("#console-preview")).to_contain_text("180")
    page.locator("#console-publish").click()
    expect(page.locator("#console-status")).to_have_text("Dispatched", timeout=30_000)
    assert int(page.locator("#console-approved").inner_text()) >= 1
    shot(page, "e2e-console")
    page.locator("#sign-out").click()
    page.wait_for_url(re.compile(r".*/login/?(\?.*)?$"))

    sign_in(page, "alex", "/trader/orders")
    history = page.locator("#orders-history")
    expect(history).to_contain_text("AAPL")
    assert history.get_by_role("row").filter(has_text="AAPL").count() >= 2  # the seeded order and the new one(s)
    history.get_by_role("button", name="Story").first.click()  # newest first: the console's signal
    expect(page.get_by_role("dialog")).to_contain_text(SIGNAL)
    expect(page.locator("#story-verdict")).to_contain_text("Approved")
    shot(page, "e2e-order-story")
    page.keyboard.press("Escape")

    page.goto("/trader/positions")
    expect(page.locator("#positions-list")).to_contain_text("AAPL")
    page.locator("#close-all-AAPL").click()
    expect(page.locator("#positions-message")).to_contain_text("Close order for AAPL sent")
    shot(page, "e2e-positions")

    page.goto("/trader/risk")
    value = page.locator("#risk-sizing_value")
    expect(value).to_have_value("2")
    value.fill("-5")
    page.locator("#risk-save").click()
    expect(page.locator("#risk-sizing_value-error")).to_contain_text("more than 0")
    shot(page, "e2e-risk-error")
