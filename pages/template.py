"""The shared page frame: navigation for the three areas, the user menu, sign-out.

``@template(route=..., title=..., on_load=...)`` records a page and wraps
its content in the frame, so every page gets the same navigation without
repeating it (the pattern of Reflex's dashboard template).  ``@bare_page``
records a page without the frame (login).  ``app/app.py`` adds everything
in ``PAGES`` with ``app.add_page``; explicit registration instead of
``@rx.page`` because Reflex re-applies decorated pages on every compile and
warns about each one.  The Admin section is drawn only for platform admins and the
Community section only for hosts; that is comfort, not security: each
page's state checks the user again on the server.
"""

from __future__ import annotations

from collections.abc import Callable

import reflex as rx

from pages import routes
from state.auth import AuthState

SIDEBAR_WIDTH = "15rem"

TRADER_LINKS = [
    ("Overview", routes.TRADER, "layout-dashboard"),
    ("Orders & trades", routes.TRADER_ORDERS, "list"),
    ("Positions", routes.TRADER_POSITIONS, "briefcase"),
    ("Signal providers", routes.TRADER_PROVIDERS, "radio-tower"),
    ("Risk settings", routes.TRADER_RISK, "shield"),
    ("Brokers", routes.TRADER_BROKERS, "landmark"),
    ("Notifications", routes.TRADER_NOTIFICATIONS, "bell"),
]
COMMUNITY_LINKS = [
    ("Community", routes.COMMUNITY, "users"),
    ("Signal console", routes.COMMUNITY_CONSOLE, "terminal"),
]
ADMIN_LINKS = [
    ("Platform", routes.ADMIN, "settings"),
]

# Pages that exist in the navigation; the frame links only to registered routes.
REGISTERED: set[str] = set()
# (component function, add_page keyword arguments), in registration order.
PAGES: list[tuple[Callable[[], rx.Component], dict]] = []


def nav_link(label: str, href: str, icon: str) -> rx.Component:
    current = rx.State.router.url.path
    active = (current == href) | (current == href + "/")
    return rx.link(
        rx.hstack(
            rx.icon(icon, size=16),
            rx.text(label, size="2", weight=rx.cond(active, "bold", "regular")),
            spacing="2",
            align="center",
            padding_x="0.75rem",
            padding_y="0.45rem",
            border_radius="var(--radius-2)",
            background=rx.cond(active, rx.color("accent", 4), "transparent"),
            color=rx.cond(active, rx.color("accent", 12), rx.color("gray", 12)),
            _hover={"background": rx.color("accent", 3)},
            width="100%",
        ),
        href=href,
        underline="none",
        width="100%",
    )


def nav_section(title: str, links: list[tuple[str, str, str]]) -> rx.Component:
    return rx.vstack(
        rx.text(title.upper(), size="1", weight="bold", color=rx.color("gray", 10), padding_x="0.75rem"),
        *[nav_link(label, href, icon) for label, href, icon in links if href in REGISTERED],
        spacing="1",
        width="100%",
    )


def sidebar() -> rx.Component:
    return rx.vstack(
        rx.hstack(
            rx.icon("zap", size=20, color=rx.color("accent", 9)),
            rx.heading("Trade Executor", size="4"),
            align="center",
            spacing="2",
            padding_x="0.75rem",
            padding_y="1rem",
        ),
        nav_section("Trader", TRADER_LINKS),
        rx.cond(AuthState.manages_community, nav_section("Community", COMMUNITY_LINKS)),
        rx.cond(AuthState.is_platform_admin, nav_section("Admin", ADMIN_LINKS)),
        rx.spacer(),
        user_menu(),
        spacing="5",
        height="100vh",
        width=SIDEBAR_WIDTH,
        min_width=SIDEBAR_WIDTH,
        padding="0.75rem",
        border_right=f"1px solid {rx.color('gray', 5)}",
        background=rx.color("gray", 2),
        position="sticky",
        top="0",
    )


def user_menu() -> rx.Component:
    return rx.hstack(
        rx.avatar(fallback=AuthState.user_initials, size="2", radius="full"),
        rx.vstack(
            rx.text(AuthState.user_name, size="2", weight="medium", id="signed-in-user"),
            rx.text(rx.cond(AuthState.is_platform_admin, "Platform admin", "Member"), size="1", color_scheme="gray"),
            spacing="0",
        ),
        rx.spacer(),
        rx.tooltip(
            rx.icon_button(rx.icon("log-out", size=16), variant="ghost", on_click=AuthState.sign_out,
                           aria_label="Sign out", id="sign-out"),
            content="Sign out",
        ),
        align="center",
        width="100%",
        padding="0.5rem",
        border_top=f"1px solid {rx.color('gray', 5)}",
    )


def frame(title: str, content: rx.Component) -> rx.Component:
    return rx.hstack(
        sidebar(),
        rx.box(
            rx.vstack(
                rx.heading(title, size="6"),
                content,
                spacing="5",
                width="100%",
                max_width="80rem",
            ),
            padding="2rem",
            width="100%",
            min_height="100vh",
        ),
        spacing="0",
        align="start",
        width="100%",
    )


def _with_live_updates(on_load):
    """Append the live-update task (state/live.py) to a page whose loader's state mixes it in."""
    from state.live import LiveUpdates

    state = getattr(on_load, "state", None)
    if isinstance(state, type) and issubclass(state, LiveUpdates):
        return [on_load, state.start_live]
    return on_load


def _record(component: Callable[[], rx.Component], route: str, title: str, on_load) -> None:
    REGISTERED.add(route)
    on_load = _with_live_updates(on_load)
    kwargs = {"route": route, "title": f"{title} · Trade Executor"}
    if on_load is not None:
        kwargs["on_load"] = on_load
    PAGES.append((component, kwargs))


def bare_page(*, route: str, title: str, on_load=None) -> Callable[[Callable[[], rx.Component]], Callable]:
    """Record a page drawn without the navigation frame."""

    def decorator(component: Callable[[], rx.Component]) -> Callable[[], rx.Component]:
        _record(component, route, title, on_load)
        return component

    return decorator


def template(*, route: str, title: str, on_load=None) -> Callable[[Callable[[], rx.Component]], Callable]:
    """Record ``route`` as a page whose content is the decorated function, inside the frame."""

    def decorator(content: Callable[[], rx.Component]) -> Callable[[], rx.Component]:
        def page() -> rx.Component:
            return frame(title, content())

        page.__name__ = content.__name__
        page.__module__ = content.__module__
        _record(page, route, title, on_load)
        return page

    return decorator
