"""Shared fixtures: every database test runs on SQLite *and* on Postgres.

Postgres (``TEST_POSTGRES_URL``, default the local trust-auth server) and
Redis (``TEST_REDIS_URL``) are required: if they cannot be reached the
tests that need them FAIL with a message saying so; they never skip.
Each test session gets its own throw-away Postgres database, and tables are
emptied between tests (TRUNCATE is far cheaper than re-creating 30 tables).
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import Session

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

os.environ.setdefault("APP_ENV", "test")
os.environ.setdefault("REFLEX_TELEMETRY_ENABLED", "false")

import backend.db.models as models  # noqa: E402

PG_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
SHARED = ROOT.parent / "shared"


def _pg_url(dbname: str) -> str:
    return sa.engine.make_url(PG_ADMIN_URL).set(database=dbname).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh database for this test session; dropped at the end."""
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            name = f"dte_test_{uuid.uuid4().hex[:10]}"
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        pytest.fail(f"Postgres is required for the test suite and is unreachable at {PG_ADMIN_URL}: {exc}", pytrace=False)
    yield _pg_url(name)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def _pg_engine(postgres_url) -> Iterator[sa.Engine]:
    engine = sa.create_engine(postgres_url, pool_size=5, max_overflow=10)
    models.metadata.create_all(engine)
    yield engine
    engine.dispose()


def _truncate(engine: sa.Engine) -> None:
    """Empty the session's Postgres database for the next test, and forget the process-wide adapters
    cached for its engine (``adapters.shared_adapters``): they remember rows of the emptied database
    (a paper broker its paper account id), and ids restart, so a later test would reach a stale row."""
    from backend.execution import adapters

    names = ", ".join(f'"{t.name}"' for t in models.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    adapters._shared.pop(id(engine), None)


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request, tmp_path) -> Iterator[sa.Engine]:
    """An empty, fully created database: SQLite file or the session's Postgres database."""
    if request.param == "sqlite":
        from backend.db.session import engine_for

        eng = engine_for(f"sqlite:///{tmp_path / 'test.db'}")
        models.metadata.create_all(eng)
        yield eng
        eng.dispose()
    else:
        eng = request.getfixturevalue("_pg_engine")
        _truncate(eng)
        yield eng


@pytest.fixture
def pg_engine(_pg_engine) -> sa.Engine:
    """Postgres only (benchmarks-like tests, concurrency, rotation with many rows)."""
    _truncate(_pg_engine)
    return _pg_engine


@pytest.fixture
def session(engine) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as s:
        yield s


@pytest.fixture
def redis_client():
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.exceptions.ConnectionError as exc:
        pytest.fail(f"Redis is required for the test suite and is unreachable at {REDIS_URL}: {exc}", pytrace=False)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def settings_env(monkeypatch, tmp_path):
    """Point the product's settings at a temporary data folder; returns a function to set more."""
    from backend.config import reset_settings_cache

    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))

    def apply(**env: str) -> None:
        for key, value in env.items():
            monkeypatch.setenv(key.upper(), value)
        reset_settings_cache()

    apply()
    yield apply
    reset_settings_cache()


@pytest.fixture(scope="session")
def reflex_asgi():
    """The Reflex app's ASGI app, built once per process (Reflex refuses a second build).

    ``__REFLEX_SKIP_COMPILE`` skips the frontend build, so the API routes and
    Reflex's own backend routes can be driven with Starlette's TestClient.
    """
    mp = pytest.MonkeyPatch()
    mp.setenv("__REFLEX_SKIP_COMPILE", "true")
    from app.app import app

    yield app()
    mp.undo()


def pytest_collection_modifyitems(config, items):
    """Browser tests run last.

    Playwright's sync API keeps an asyncio loop running in the main thread while
    its browser is open; any pytest-asyncio test scheduled after it would find
    "a running event loop" and fail.  Running them last also gives fast feedback
    from the rest of the suite first.
    """
    items.sort(key=lambda item: "tests/e2e/" in item.nodeid.replace("\\", "/"))
