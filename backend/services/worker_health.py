"""Are the background processes alive?  Read from their heartbeats.

The execution worker, the Discord bot and the scheduler each write a row in
``worker_heartbeats`` every few seconds (15 s at most).  A row older than
``STALE_AFTER`` means the process is down or stuck.  ``/readyz`` reports
this (without failing the web process's own readiness: the web app can
serve while the bot restarts) and the admin page shows it with the bot's
details (connected, guilds, last message seen).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from backend.db.models import WorkerHeartbeat
from backend.db.types import utcnow

STALE_AFTER = timedelta(seconds=60)


@dataclass(frozen=True)
class WorkerHealth:
    name: str
    last_seen: datetime
    age_seconds: float
    alive: bool
    data: dict[str, Any]

    def summary(self) -> str:
        """One line a person reads: what the worker says about itself."""
        d = self.data
        if self.name == "bot":
            parts = ["connected" if d.get("connected") else "disconnected from Discord",
                     f"{d.get('guilds', 0)} server(s)", f"{d.get('source_channels', 0)} signal channel(s)"]
            if d.get("catching_up"):
                parts.append(f"catching up {d['catching_up']} channel(s)")
            parts.append(f"last message {d['last_message_at']}" if d.get("last_message_at") else "no message yet")
            return ", ".join(parts)
        if self.name == "execution":
            return f"{d.get('retries_pending', 0)} retry(ies) pending"
        if self.name == "scheduler":
            return "jobs: " + ", ".join(d.get("jobs", []))
        return ""


def worker_health(session: Session | sa.Connection, *, now: datetime | None = None) -> list[WorkerHealth]:
    now = now or utcnow()
    rows = session.execute(select(WorkerHeartbeat.name, WorkerHeartbeat.last_seen, WorkerHeartbeat.data)
                           .order_by(WorkerHeartbeat.name)).all()
    out = []
    for name, last_seen, data in rows:
        age = (now - last_seen).total_seconds()
        out.append(WorkerHealth(name=name, last_seen=last_seen, age_seconds=age,
                                alive=age <= STALE_AFTER.total_seconds(), data=data or {}))
    return out


def readiness_view(health: list[WorkerHealth]) -> dict[str, dict[str, Any]]:
    """The ``workers`` part of ``/readyz``: JSON-ready, no secrets (heartbeats hold none)."""
    return {h.name: {"alive": h.alive, "last_seen": h.last_seen.isoformat(), "age_seconds": round(h.age_seconds, 1),
                     **({"connected": bool(h.data.get("connected")), "guilds": h.data.get("guilds", 0),
                         "last_message_at": h.data.get("last_message_at")} if h.name == "bot" else {})}
            for h in health}
