"""Steps the browser tests share: dev sign-in, a provider publishing from the signal console, screenshots."""

from __future__ import annotations

import re

from playwright.sync_api import Browser, Page, expect

from app_process import ARTIFACTS

PAGE_TIMEOUT = 30_000


def new_page(browser: Browser, base_url: str) -> Page:
    """A page in a context of its own (its own cookies: its own signed-in user)."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, base_url=base_url)
    page = context.new_page()
    page.set_default_timeout(PAGE_TIMEOUT)
    return page


def sign_in(page: Page, username: str, start: str) -> None:
    """Open ``start``, get sent to the login page, sign in as the demo user, land back on ``start``."""
    page.goto(start)
    page.wait_for_url(re.compile(r".*/login/?\?next="))
    page.locator(f"#login-as-{username}").click()
    page.wait_for_url(re.compile(".*" + re.escape(start) + "/?$"))


def publish_signal(browser: Browser, base_url: str, text: str, *, screenshot: str | None = None) -> None:
    """Pat, the demo provider, publishes ``text`` from the signal console in a browser context of his own."""
    page = new_page(browser, base_url)
    try:
        sign_in(page, "pat", "/community/console")
        page.locator("#console-message").fill(text)
        expect(page.locator("#console-preview")).to_contain_text(text.split()[1])
        page.locator("#console-publish").click()
        expect(page.locator("#console-status")).to_have_text("Dispatched", timeout=PAGE_TIMEOUT)
        if screenshot:
            shot(page, screenshot)
    finally:
        page.context.close()


def shot(page: Page, name: str) -> None:
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
