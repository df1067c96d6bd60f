"""``python -m backend.workers.bot``: the execution worker always, the Discord bot with a token."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa
from sqlmodel import Session, select

import backend.db.models as models
from backend.db.models import Order, PaperQuote, WorkerHeartbeat
from backend.workers import bot as worker_entry
from fakes.fake_discord import FakeDiscord, running_fake

ROOT = Path(__file__).resolve().parents[3]


async def eventually(check, timeout: float = 10.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not (value := await asyncio.to_thread(check)):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.02)
    return value


def _heartbeat(engine, name: str):
    with Session(engine) as s:
        return s.get(WorkerHeartbeat, name)


async def test_without_a_token_only_the_execution_worker_runs(engine, settings_env, caplog):
    caplog.set_level(logging.INFO, logger="backend.workers.bot")
    stop = asyncio.Event()
    task = asyncio.create_task(worker_entry.run(engine, token=None, stop=stop, interval=0.05))
    await eventually(lambda: _heartbeat(engine, "execution"))
    stop.set()
    await asyncio.wait_for(task, 5)
    assert "Discord bot off (DISCORD_BOT_TOKEN is not set)" in caplog.text
    assert _heartbeat(engine, "bot") is None


async def test_with_a_token_the_bot_trades_and_the_worker_runs_beside_it(engine, world, settings_env, caplog):
    caplog.set_level(logging.INFO, logger="backend.workers.bot")
    with Session(engine) as s:
        s.add(PaperQuote(symbol="AAPL", price=Decimal("185")))
        s.commit()
    fake = FakeDiscord()
    fake.add_guild(world.guild_id, world.channel_id)
    async with running_fake(fake):
        stop = asyncio.Event()
        task = asyncio.create_task(worker_entry.run(
            engine, token="fake-token", stop=stop, interval=0.05,
            bot_options={"guild_ready_timeout": 0.01, "heartbeat_seconds": 0.1, "dm_interval": 0.05}))
        await fake.wait_connected()
        await eventually(lambda: _heartbeat(engine, "bot") and _heartbeat(engine, "bot").data["connected"])
        await fake.post(world.channel_id, "BUY AAPL @ 185.50", author_id=world.provider_discord)

        def filled():
            with Session(engine) as s:
                return s.exec(select(Order).where(Order.status == "filled")).all()

        await eventually(filled)
        await eventually(lambda: _heartbeat(engine, "execution"))
        stop.set()
        await asyncio.wait_for(task, 10)
    assert "Discord bot on" in caplog.text
    assert _heartbeat(engine, "bot").data["connected"] is False  # the last beat says it left


def test_the_module_runs_and_stops_on_sigterm(tmp_path):
    url = f"sqlite:///{tmp_path / 'worker.db'}"
    engine = sa.create_engine(url)
    models.metadata.create_all(engine)
    env = {**os.environ, "DATABASE_URL": url, "DATA_DIR": str(tmp_path), "DISCORD_BOT_TOKEN": "", "APP_ENV": "test"}
    proc = subprocess.Popen([sys.executable, "-m", "backend.workers.bot"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _heartbeat(engine, "execution") is None:
            time.sleep(0.1)
        assert _heartbeat(engine, "execution") is not None
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=15)
        engine.dispose()
    assert proc.returncode == 0, out
    assert "Discord bot off (DISCORD_BOT_TOKEN is not set)" in out and "worker stopped" in out
