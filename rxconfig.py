"""Reflex configuration, derived from the product's one settings object.

Nothing here is configured twice: the database and Redis URLs come from
``backend.config`` (``DATABASE_URL`` / ``REDIS_URL`` or the embedded
defaults).  A Redis URL switches Reflex's state manager to Redis, which is
what lets several web workers share browser sessions.  Telemetry is off and
the sitemap plugin is disabled: every page sits behind a login, so a public
sitemap would only list redirects.
"""

from __future__ import annotations

import os
import pathlib

import reflex as rx

from backend.config import get_settings

settings = get_settings()

_optional: dict = {}
if "public_url" in settings.model_fields_set:
    # Behind a proxy the browser reaches the websocket at the public address.
    # Left unset, Reflex derives it from the port the app runs on.
    _optional["api_url"] = settings.public_url
    _optional["deploy_url"] = settings.public_url
if os.environ.get("REFLEX_BUN_PATH"):
    # Reflex calls .exists() on it: it must be a Path, a str crashes the build.
    _optional["bun_path"] = pathlib.Path(os.environ["REFLEX_BUN_PATH"])

config = rx.Config(
    app_name="app",
    db_url=settings.effective_database_url,
    redis_url=settings.redis_url or None,
    telemetry_enabled=False,
    frontend_port=settings.port,
    backend_port=settings.port,
    show_built_with_reflex=False,
    plugins=[
        rx.plugins.RadixThemesPlugin(
            theme=rx.theme(appearance="light", accent_color="indigo", gray_color="slate", radius="medium"),
        ),
    ],
    disable_plugins=[rx.plugins.SitemapPlugin],
    **_optional,
)
