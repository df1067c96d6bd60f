"""The web process: builds ``rx.App``, registers every page, mounts the HTTP routes.

Reflex imports this module as ``app.app`` (``app_name="app"`` in
rxconfig.py) and serves ``app`` below.  Importing the page modules records
their pages in ``pages.template.PAGES``; they are added here explicitly.
Migrations and demo data are not run here: with Redis, Reflex starts
several workers from this module, and schema changes must happen once,
before any of them (the run script calls ``python -m backend.db.migrate``
and ``python -m backend.services.demo_seed``).  The theme lives in
rxconfig.py (``RadixThemesPlugin``).
"""

from __future__ import annotations

import reflex as rx

from app.api import build_api
from pages import admin as _admin_pages  # noqa: F401
from pages import brokers as _brokers_pages  # noqa: F401
from pages import community as _community_pages  # noqa: F401
from pages import console as _console_pages  # noqa: F401
from pages import index as _index_pages  # noqa: F401
from pages import login as _login_pages  # noqa: F401
from pages import notifications as _notifications_pages  # noqa: F401
from pages import orders as _orders_pages  # noqa: F401
from pages import positions as _positions_pages  # noqa: F401
from pages import providers as _providers_pages  # noqa: F401
from pages import risk as _risk_pages  # noqa: F401
from pages import trader as _trader_pages  # noqa: F401
from pages.template import PAGES

app = rx.App(api_transformer=build_api())

for component, page_kwargs in PAGES:
    app.add_page(component, **page_kwargs)
