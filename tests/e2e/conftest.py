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
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
TOOLS = ROOT / ".tools"
CHROMIUM = "/usr/bin/chromium"
START_TIMEOUT = float(os.environ.get("E2E_START_TIMEOUT", "900"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _app_env(data_dir: Path, port: int) -> dict[str, str]:
    """The environment ``scripts/bootstrap.sh export_env`` gives, plus a private database."""
    bun = TOOLS / "node_modules" / ".bin" / "bun"
    if not bun.exists():
        pytest.fail("bun is missing from .tools/: run the tests through scripts/test.sh, which installs it",
                    pytrace=False)
    env = dict(os.environ)
    # The in-process API tests set __REFLEX_SKIP_COMPILE for the whole pytest session;
    # inherited here it would skip the compile (and the frontend package install) and
    # the production build would fail on a clean clone with "react-router: not found".
    for key in ("DATABASE_URL", "REDIS_URL", "PUBLIC_URL", "REFLEX_REDIS_URL", "REFLEX_DB_URL",
                "__REFLEX_SKIP_COMPILE"):
        env.pop(key, None)
    env.update({
        "PATH": f"{bun.parent}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        "REFLEX_BUN_PATH": str(bun),
        "REFLEX_TELEMETRY_ENABLED": "false",
        "REFLEX_CHECK_LATEST_VERSION": "false",
        "REFLEX_DIR": str(TOOLS / "reflex"),
        "BUN_INSTALL_CACHE_DIR": env.get("BUN_INSTALL_CACHE_DIR", str(TOOLS / "bun-cache")),
        "BUN_RUNTIME_TRANSPILER_CACHE_PATH": str(TOOLS / "bun-transpile"),
        "PYTHONUNBUFFERED": "1",
        "APP_ENV": "development",
        "DATA_DIR": str(data_dir),
        "DATABASE_URL": f"sqlite:///{data_dir / 'app.db'}",
        "SESSION_SECRET": "e2e-session-secret-not-for-production-use",
        "PORT": str(port),
    })
    return env


def _wait_until_up(base: str, proc: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the app exited with {proc.returncode} while starting; last lines of {log_path}:\n"
                        + "\n".join(log_path.read_text(errors="replace").splitlines()[-40:]), pytrace=False)
        # Reflex serves the previous build while it compiles the new one: only after it
        # prints "App running at" is the frontend the one built from this checkout.
        if "App running at" not in log_path.read_text(errors="replace"):
            time.sleep(0.5)
            continue
        try:
            with urllib.request.urlopen(base + "/readyz", timeout=5) as r1, \
                    urllib.request.urlopen(base + "/login/", timeout=5) as r2:
                if r1.status == 200 and r2.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        time.sleep(1)
    pytest.fail(f"the app did not answer within {START_TIMEOUT:.0f} s; see {log_path}", pytrace=False)


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM the app's process group (reflex + its server workers), then SIGKILL stragglers."""
    if proc.poll() is not None:
        return
    pgid = os.getpgid(proc.pid)
    os.killpg(pgid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=10)


@pytest.fixture(scope="session")
def discord_oauth(live_app_port) -> Iterator:
    """A loopback fake of Discord's OAuth endpoints; the app under test is configured to use it."""
    from fakes.fake_discord_oauth import FakeDiscordOAuth, running

    with running(FakeDiscordOAuth(redirect_uri=f"http://localhost:{live_app_port}/auth/discord/callback")) as fake:
        yield fake


@pytest.fixture(scope="session")
def live_app_port() -> int:
    return _free_port()


@pytest.fixture(scope="session")
def live_app(tmp_path_factory, live_app_port, discord_oauth) -> Iterator[str]:
    """Base URL of the running app (migrated, seeded, production build, Discord sign-in on the fake)."""
    ARTIFACTS.mkdir(exist_ok=True)
    data_dir = tmp_path_factory.mktemp("e2e-data")
    port = live_app_port
    env = _app_env(data_dir, port)
    env.update(discord_oauth.env(), PUBLIC_URL=f"http://localhost:{port}")
    for module in ("backend.db.migrate", "backend.services.demo_seed"):
        subprocess.run([sys.executable, "-m", module], cwd=ROOT, env=env, check=True, timeout=120,
                       capture_output=True)
    log_path = ARTIFACTS / "e2e-app.log"
    started = time.monotonic()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "reflex", "run", "--env", "prod",
             "--frontend-port", str(port), "--backend-port", str(port)],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    base = f"http://localhost:{port}"
    try:
        _wait_until_up(base, proc, log_path)
        elapsed = time.monotonic() - started
        (ARTIFACTS / "e2e-timings.txt").write_text(f"app start incl. frontend build: {elapsed:.1f} s\n")
        print(f"\n[e2e] app up on {base} after {elapsed:.1f} s (frontend build included)")
        yield base
    finally:
        _stop(proc)


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
