"""``python -m backend.workers.scheduler`` runs as its own process and stops cleanly.

The jobs themselves are tested in test_scheduler_jobs.py; this proves the
entry point an operator starts: it runs its jobs at once (the heartbeat row
appears) and exits 0 on SIGTERM, as the run command and process managers
stop it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy as sa
from sqlmodel import Session

import backend.db.models as models
from backend.db.models import WorkerHeartbeat

ROOT = Path(__file__).resolve().parents[2]


def test_the_scheduler_process_beats_and_stops_on_sigterm(tmp_path):
    url = f"sqlite:///{tmp_path / 'scheduler.db'}"
    engine = sa.create_engine(url)
    models.metadata.create_all(engine)
    env = {**os.environ, "DATABASE_URL": url, "DATA_DIR": str(tmp_path), "APP_ENV": "test"}
    env.pop("REDIS_URL", None)
    proc = subprocess.Popen([sys.executable, "-m", "backend.workers.scheduler"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        beat = None
        while time.monotonic() < deadline and beat is None and proc.poll() is None:
            with Session(engine) as s:
                beat = s.get(WorkerHeartbeat, "scheduler")
            time.sleep(0.1)
        assert beat is not None, "the scheduler wrote no heartbeat"
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=15)
        engine.dispose()
    assert proc.returncode == 0, out
    assert "scheduler started with jobs" in out and "scheduler stopped" in out


async def test_every_job_is_scheduled_on_its_interval_not_paused(tmp_path):
    """A job added with ``next_run_time=None`` is *paused* in APScheduler 3: it would never repeat."""
    from backend.workers.jobs import JOBS
    from backend.workers.scheduler import build_scheduler

    engine = sa.create_engine(f"sqlite:///{tmp_path / 's.db'}")
    scheduler = build_scheduler(engine)
    scheduler.start(paused=True)
    try:
        jobs = {job.id: job for job in scheduler.get_jobs()}
        assert set(jobs) == {j.name for j in JOBS}
        for spec in JOBS:
            job = jobs[spec.name]
            assert job.next_run_time is not None, f"{spec.name} is paused"
            assert job.trigger.interval.total_seconds() == spec.seconds
    finally:
        scheduler.shutdown(wait=False)
        engine.dispose()
