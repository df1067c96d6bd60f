"""Models and migrations agree: upgrading to head then autogenerating finds nothing."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import backend.db.models as models
from backend.db import migrate


def _fresh_engine(request, tmp_path) -> sa.Engine:
    if request.param == "sqlite":
        return sa.create_engine(f"sqlite:///{tmp_path / 'mig.db'}")
    url = request.getfixturevalue("postgres_url")
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text("DROP SCHEMA IF EXISTS mig CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA mig"))
    admin.dispose()
    return sa.create_engine(url, connect_args={"options": "-csearch_path=mig"})


import pytest  # noqa: E402


@pytest.fixture(params=["sqlite", "postgres"])
def fresh_engine(request, tmp_path):
    eng = _fresh_engine(request, tmp_path)
    yield eng
    eng.dispose()


def test_upgrade_head_then_autogenerate_finds_no_difference(fresh_engine):
    migrate.upgrade(fresh_engine)
    with fresh_engine.connect() as conn:
        tables = set(sa.inspect(conn).get_table_names())
        assert set(models.metadata.tables) <= tables
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "render_as_batch": True})
        diff = compare_metadata(ctx, models.metadata)
    assert diff == [], f"models and migrations disagree: {diff}"


def test_upgrade_is_idempotent(fresh_engine):
    migrate.upgrade(fresh_engine)
    migrate.upgrade(fresh_engine)
    with fresh_engine.connect() as conn:
        version = conn.execute(sa.text("select version_num from alembic_version")).scalar_one()
    assert version


def test_the_alembic_command_migrates_the_database_the_settings_name(tmp_path, postgres_url):
    """``alembic upgrade head`` as an operator types it: env.py reads DATABASE_URL itself."""
    import os
    import subprocess
    import sys
    import uuid
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    alembic = Path(sys.executable).parent / "alembic"
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    pg_name = f"dte_cli_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{pg_name}"'))
    pg_url = sa.engine.make_url(postgres_url).set(database=pg_name).render_as_string(hide_password=False)
    try:
        for url in (f"sqlite:///{tmp_path / 'cli.db'}", pg_url):
            env = {**os.environ, "DATABASE_URL": url, "DATA_DIR": str(tmp_path / "data")}
            done = subprocess.run([str(alembic), "upgrade", "head"], cwd=root, env=env,
                                  capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stderr
            engine = sa.create_engine(url)
            with engine.connect() as conn:
                assert set(models.metadata.tables) <= set(sa.inspect(conn).get_table_names())
                assert conn.execute(sa.text("select version_num from alembic_version")).scalar_one()
            engine.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)'))
        admin.dispose()
