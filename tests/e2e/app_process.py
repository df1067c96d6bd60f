"""Start and stop the REAL app (``reflex run --env prod``) in a subprocess: shared by the
browser tests (tests/e2e/conftest.py) and the live-update benchmark (benchmarks/bench_live_update.py).

Problems raise ``AppProcessError`` with the app log's last lines; the pytest
fixtures turn that into a plain test failure, the benchmark prints it.
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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
TOOLS = ROOT / ".tools"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


class AppProcessError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def app_env(data_dir: Path, port: int, *, database_url: str | None = None,
            redis_url: str | None = None) -> dict[str, str]:
    """The environment ``scripts/bootstrap.sh export_env`` gives, plus a private database
    (SQLite in ``data_dir`` unless ``database_url``) and, if given, Redis for the bus and Reflex's state."""
    bun = TOOLS / "node_modules" / ".bin" / "bun"
    if not bun.exists():
        raise AppProcessError("bun is missing from .tools/: run the tests through scripts/test.sh, which installs it")
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
        "DATABASE_URL": database_url or f"sqlite:///{data_dir / 'app.db'}",
        "SESSION_SECRET": "e2e-session-secret-not-for-production-use",
        "PORT": str(port),
    })
    if redis_url:
        env["REDIS_URL"] = redis_url
    return env


def prepare_database(env: dict[str, str], *, demo: bool = True) -> None:
    """Migrate (and seed the demo world) exactly like the run script does."""
    modules = ["backend.db.migrate"] + (["backend.services.demo_seed"] if demo else [])
    for module in modules:
        done = subprocess.run([sys.executable, "-m", module], cwd=ROOT, env=env, timeout=120, capture_output=True,
                              text=True)
        if done.returncode:
            raise AppProcessError(f"python -m {module} failed:\n{done.stdout}\n{done.stderr}")


def start(env: dict[str, str], port: int, log_path: Path) -> subprocess.Popen:
    with open(log_path, "w") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "reflex", "run", "--env", "prod",
             "--frontend-port", str(port), "--backend-port", str(port)],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )


def wait_until_up(base: str, proc: subprocess.Popen, log_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AppProcessError(f"the app exited with {proc.returncode} while starting; last lines of {log_path}:\n"
                                  + "\n".join(log_path.read_text(errors="replace").splitlines()[-40:]))
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
    raise AppProcessError(f"the app did not answer within {timeout:.0f} s; see {log_path}")


def stop(proc: subprocess.Popen) -> None:
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
