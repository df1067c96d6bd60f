"""Sign in with the development login and open the three areas with real seeded data."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

pytestmark = pytest.mark.e2e


def sign_in(page: Page, username: str, *, start: str = "/trader") -> None:
    page.goto(start)
    page.wait_for_url(re.compile(r".*/login/?\?next="))
    page.locator(f"#login-as-{username}").click()


def shot(page: Page, name: str) -> None:
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_host_sees_trader_community_and_admin_areas(page: Page):
    sign_in(page, "dana")
    page.wait_for_url(re.compile(r".*/trader/?$"))
    expect(page.locator("#signed-in-user")).to_have_text("Dana Host")
    expect(page.locator("#total-cash")).to_have_text("98,100.00")
    expect(page.locator("#total-equity")).to_have_text("100,050.00")
    expect(page.locator("#positions-table")).to_contain_text("AAPL")
    expect(page.locator("#follows-table")).to_contain_text("Pat Provider")
    shot(page, "e2e-trader-overview")

    page.get_by_role("link", name="Community", exact=True).click()
    page.wait_for_url(re.compile(r".*/community/?$"))
    expect(page.locator("#community-name")).to_have_text("Demo Trading Club")
    expect(page.locator("#members-table")).to_contain_text("Alex Trader")
    expect(page.locator("#sources-table")).to_contain_text("Pat's TradingView alerts")
    shot(page, "e2e-community")

    page.get_by_role("link", name="Platform").click()
    page.wait_for_url(re.compile(r".*/admin/?$"))
    expect(page.locator("#mrr-USD")).to_have_text("89.83")
    expect(page.locator("#users-count")).to_have_text("5")
    expect(page.locator("#subscriptions-table")).to_contain_text("Sam Swing")
    shot(page, "e2e-admin")


def test_login_returns_to_the_page_asked_for_and_sign_out_ends_the_session(page: Page):
    sign_in(page, "dana", start="/community")
    page.wait_for_url(re.compile(r".*/community/?$"))
    expect(page.locator("#community-name")).to_have_text("Demo Trading Club")
    page.locator("#sign-out").click()
    page.wait_for_url(re.compile(r".*/login/?(\?.*)?$"))
    page.goto("/trader")
    page.wait_for_url(re.compile(r".*/login/?\?next="))
    shot(page, "e2e-login")


def test_a_trader_gets_no_community_or_admin_area(page: Page):
    sign_in(page, "alex")
    page.wait_for_url(re.compile(r".*/trader/?$"))
    expect(page.locator("#signed-in-user")).to_have_text("Alex Trader")
    expect(page.get_by_role("link", name="Platform")).to_have_count(0)
    expect(page.get_by_role("link", name="Community", exact=True)).to_have_count(0)
    page.goto("/admin")
    expect(page.get_by_role("alert")).to_contain_text("Only platform administrators")
    expect(page.locator("#subscriptions-table")).to_have_count(0)
    page.goto("/community")
    expect(page.get_by_role("alert")).to_contain_text("do not host")


def test_notifications_inbox_marks_read(page: Page):
    sign_in(page, "alex", start="/trader/notifications")
    page.wait_for_url(re.compile(r".*/trader/notifications/?$"))
    expect(page.locator("#notifications-list")).to_contain_text("Bought 10 AAPL @ 190.00")
    expect(page.locator("#notifications-unread")).to_contain_text(re.compile(r"\b[1-9][0-9]* unread"))
    shot(page, "e2e-notifications")
    page.locator("#mark-all-read").click()
    expect(page.locator("#notifications-unread")).to_contain_text("0 unread")


def test_sign_in_with_discord_creates_the_member(page: Page, discord_oauth):
    page.goto("/trader/providers")
    page.wait_for_url(re.compile(r".*/login/?\?next="))
    page.locator("#login-discord").click()  # -> fake Discord consent -> /auth/discord/callback -> back here
    page.wait_for_url(re.compile(r".*/trader/providers/?$"))
    expect(page.locator("#signed-in-user")).to_have_text("Jordan Discord")
    assert discord_oauth.token_requests, "the code was exchanged at Discord's token endpoint"
    shot(page, "e2e-discord-signed-in")
    page.locator("#sign-out").click()
    page.wait_for_url(re.compile(r".*/login/?(\?.*)?$"))
    expect(page.locator("#login-discord")).to_be_visible()
