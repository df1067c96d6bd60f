"""Browser tests against the REAL app: ``reflex run --env prod`` in a subprocess.

One app process per backend: every browser test runs twice, against the
embedded default (a throw-away SQLite database, the in-process bus, Reflex's
in-memory state) and against Postgres + Redis (a throw-away Postgres
database, the Redis bus and Reflex's Redis state manager, as in production).
The frontend is built once (a production build from whatever ``.web/``
holds, a clean clone included) and each app is served on one free port,
migrated and seeded exactly like the run command does.  Chromium is Debian's ``/usr/bin/chromium``
driven by Python Playwright (``playwright install`` is never needed).
Teardown kills the app's whole process group, so no worker outlives pytest.

The start-up time (frontend build included) is written to
``test-artifacts/e2e-timings.txt``; screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa

from app_process import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, AppProcessError, app_env, free_port, prepare_database, \
    start, stop, wait_until_up

START_TIMEOUT = float(os.environ.get("E2E_START_TIMEOUT", "900"))
PG_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
# Its own Redis database: the rest of the suite flushes TEST_REDIS_URL's (15 by default).
E2E_REDIS_URL = os.environ.get("E2E_REDIS_URL", "redis://127.0.0.1:6379/14")


@contextmanager
def _as_failure() -> Iterator[None]:
    try:
        yield
    except AppProcessError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def discord_oauth(live_app_port) -> Iterator:
    """A loopback fake of Discord's OAuth endpoints; the app under test is configured to use it."""
    from fakes.fake_discord_oauth import FakeDiscordOAuth, running

    with running(FakeDiscordOAuth(redirect_uri=f"http://localhost:{live_app_port}/auth/discord/callback")) as fake:
        yield fake


@pytest.fixture(scope="session")
def live_app_port() -> int:
    return free_port()


@pytest.fixture(scope="session", params=["embedded", "postgres+redis"])
def app_backend(request) -> Iterator[tuple[str, dict[str, str]]]:
    """What one app run stores in: nothing (the embedded default) or a fresh, EMPTY Postgres database
    (the app's own migration creates the tables) and an emptied Redis database; dropped afterwards.

    Session-scoped and parametrised: pytest runs every browser test against one backend, stops that
    app, then runs them all against the other.  Unreachable services fail the tests, never skip them.
    """
    if request.param == "embedded":
        yield request.param, {}
        return
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"dte_e2e_{uuid.uuid4().hex[:10]}"
    bus = redis.Redis.from_url(E2E_REDIS_URL)
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        bus.flushdb()
    except (sa.exc.OperationalError, redis.exceptions.ConnectionError) as exc:
        pytest.fail(f"the Postgres + Redis browser tests need both services: {exc}", pytrace=False)
    url = sa.engine.make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        yield request.param, {"database_url": url, "redis_url": E2E_REDIS_URL}
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
        bus.flushdb()
        bus.close()


@pytest.fixture(scope="session")
def live_app(tmp_path_factory, live_app_port, discord_oauth, app_backend) -> Iterator[str]:
    """Base URL of the running app (migrated, seeded, production build, Discord sign-in on the fake)."""
    ARTIFACTS.mkdir(exist_ok=True)
    data_dir = tmp_path_factory.mktemp("e2e-data")
    port = live_app_port
    backend, stores = app_backend
    with _as_failure():
        env = app_env(data_dir, port, **stores)
        env.update(discord_oauth.env(), PUBLIC_URL=f"http://localhost:{port}")
        prepare_database(env)
    log_path = ARTIFACTS / f"e2e-app-{backend.replace('+', '-')}.log"
    started = time.monotonic()
    proc = start(env, port, log_path)
    base = f"http://localhost:{port}"
    try:
        with _as_failure():
            wait_until_up(base, proc, log_path, START_TIMEOUT)
        elapsed = time.monotonic() - started
        ready = json.loads(urllib.request.urlopen(f"{base}/readyz", timeout=10).read())
        # the app itself says which stores it uses (a Postgres run that fell back to SQLite would
        # also show an empty world: the pages' demo data is only in the database prepared here)
        assert ready["database"] == "ok" and ready["redis"] == ("ok" if stores else "not configured"), ready
        with (ARTIFACTS / "e2e-timings.txt").open("a") as timings:
            timings.write(f"{backend}: app start incl. frontend build: {elapsed:.1f} s\n")
        print(f"\n[e2e] {backend} app up on {base} after {elapsed:.1f} s (frontend build included)")
        yield base
    finally:
        stop(proc)


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: scripts/test.sh installs Debian's chromium", pytrace=False)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, live_app):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, base_url=live_app)
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    yield pg
    context.close()
