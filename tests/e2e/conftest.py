"""Browser tests against the REAL app: ``reflex run --env prod`` in a subprocess.

One app process per test session: it is built once (a production frontend
build from whatever ``.web/`` holds, a clean clone included), served on one
free port, against a throw-away SQLite database that is migrated and seeded
exactly like the embedded default.  Chromium is Debian's ``/usr/bin/chromium``
driven by Python Playwright (``playwright install`` is never needed).
Teardown kills the app's whole process group, so no worker outlives pytest.

The start-up time (frontend build included) is written to
``test-artifacts/e2e-timings.txt``; screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from app_process import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, AppProcessError, app_env, free_port, prepare_database, \
    start, stop, wait_until_up

START_TIMEOUT = float(os.environ.get("E2E_START_TIMEOUT", "900"))


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


@pytest.fixture(scope="session")
def live_app(tmp_path_factory, live_app_port, discord_oauth) -> Iterator[str]:
    """Base URL of the running app (migrated, seeded, production build, Discord sign-in on the fake)."""
    ARTIFACTS.mkdir(exist_ok=True)
    data_dir = tmp_path_factory.mktemp("e2e-data")
    port = live_app_port
    with _as_failure():
        env = app_env(data_dir, port)
        env.update(discord_oauth.env(), PUBLIC_URL=f"http://localhost:{port}")
        prepare_database(env)
    log_path = ARTIFACTS / "e2e-app.log"
    started = time.monotonic()
    proc = start(env, port, log_path)
    base = f"http://localhost:{port}"
    try:
        with _as_failure():
            wait_until_up(base, proc, log_path, START_TIMEOUT)
        elapsed = time.monotonic() - started
        (ARTIFACTS / "e2e-timings.txt").write_text(f"app start incl. frontend build: {elapsed:.1f} s\n")
        print(f"\n[e2e] app up on {base} after {elapsed:.1f} s (frontend build included)")
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
