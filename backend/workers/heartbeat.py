"""Worker heartbeats: the readiness check and the admin pages show them."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from backend.db.models import WorkerHeartbeat
from backend.db.types import utcnow


def beat(engine: sa.Engine, name: str, data: dict[str, Any] | None = None) -> None:
    with engine.begin() as conn:
        table = WorkerHeartbeat.__table__
        values = {"name": name, "last_seen": utcnow(), "data": data or {}}
        updated = conn.execute(
            table.update().where(table.c.name == name).values(last_seen=values["last_seen"], data=values["data"])
        ).rowcount
        if not updated:
            conn.execute(table.insert().values(**values))


def heartbeats(engine: sa.Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(WorkerHeartbeat.__table__)).mappings().all()
    return [dict(r) for r in rows]
