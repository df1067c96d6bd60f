"""``/``: sends the browser to the trader overview, or to the login page."""

from __future__ import annotations

import reflex as rx

from pages import routes
from pages.template import bare_page
from state.auth import AuthState


@bare_page(route=routes.INDEX, title="Welcome", on_load=AuthState.go_home)
def index() -> rx.Component:
    return rx.center(rx.spinner(size="3"), min_height="100vh")
