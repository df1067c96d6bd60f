"""``/login``: Discord sign-in, and the development login (demo users) outside production."""

from __future__ import annotations

import reflex as rx

from pages import routes
from pages.components import error_callout
from pages.template import bare_page
from state.login import LoginState


def demo_user_card(user: dict) -> rx.Component:
    return rx.card(
        rx.hstack(
            rx.avatar(fallback=user["name"].to(str)[0:1], size="3", radius="full"),
            rx.vstack(
                rx.text(user["name"], weight="bold"),
                rx.text(user["role"], size="1", color_scheme="gray"),
                spacing="0",
            ),
            rx.spacer(),
            rx.button(
                "Sign in",
                on_click=LoginState.sign_in_as(user["id"].to(int)),
                id="login-as-" + user["username"].to(str),
            ),
            align="center",
            width="100%",
        ),
        width="100%",
    )


@bare_page(route=routes.LOGIN, title="Sign in", on_load=LoginState.load)
def login() -> rx.Component:
    return rx.center(
        rx.vstack(
            rx.hstack(rx.icon("zap", size=28, color=rx.color("accent", 9)), rx.heading("Trade Executor", size="7"),
                      align="center", spacing="2"),
            rx.text("Signals from Discord and TradingView, executed for every follower under their own risk limits.",
                    color_scheme="gray", size="2", text_align="center"),
            error_callout(LoginState.error),
            rx.cond(
                LoginState.discord_enabled,
                # reload_document: the OAuth redirects are plain HTTP routes, outside the single-page app's router.
                rx.link(rx.button(rx.icon("message-circle", size=18), "Sign in with Discord", size="3", width="100%",
                                  color_scheme="iris"),
                        href=LoginState.discord_href, reload_document=True, id="login-discord", width="100%"),
            ),
            rx.cond(
                LoginState.dev_login_enabled,
                rx.vstack(
                    rx.heading("Development login", size="4"),
                    rx.text("Pick a demo user. This list exists only outside production.", size="2",
                            color_scheme="gray"),
                    rx.foreach(LoginState.demo_users, demo_user_card),
                    rx.cond(LoginState.demo_users.length() == 0,
                            rx.text("No demo users yet: run python -m backend.services.demo_seed.", size="2")),
                    spacing="3",
                    width="100%",
                ),
            ),
            spacing="5",
            width="28rem",
            max_width="100%",
            padding="2rem",
        ),
        min_height="100vh",
        background=rx.color("gray", 2),
    )
