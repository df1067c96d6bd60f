"""Run Alembic from code: the run command, the workers and the tests migrate the same way."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from backend.config import PROJECT_ROOT


def alembic_config(connection: sa.Connection | None = None) -> Config:
    cfg = Config(str(PROJECT_ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(Path(PROJECT_ROOT) / "alembic"))
    cfg.attributes["skip_logging_config"] = True
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def upgrade(engine: sa.Engine, revision: str = "head") -> None:
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), revision)


def main() -> None:
    """``python -m backend.db.migrate``: bring the configured database to head."""
    from backend.db.session import get_engine

    engine = get_engine()
    upgrade(engine)
    print(f"database migrated to head ({engine.url.render_as_string(hide_password=True)})")


if __name__ == "__main__":
    main()
