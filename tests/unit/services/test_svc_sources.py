"""Hosts register sources: role-checked, validated, audited, secret shown once."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlmodel import Session, select

from backend.audit import verify
from backend.db.models import Community, SignalSource, User
from backend.errors import PermissionDenied, ValidationError
from backend.services import sources
from backend.services.demo_seed import seed_demo

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def demo(engine):
    seed_demo(engine)
    with Session(engine) as s:
        users = {u.username: u.id for u in s.exec(select(User)).all()}
        community = s.exec(select(Community)).first()
    return users, community.id, community.slug


def test_admin_registers_a_channel_and_a_tradingview_source(engine, demo):
    users, cid, _ = demo
    with Session(engine) as s:
        created = sources.register_discord_source(s, users["dana"], cid, provider_id=users["pat"],
                                                  channel_id="123456789012345678", name="Pat's swings")
        tv = sources.register_tradingview_source(s, users["dana"], cid, provider_id=users["pat"], name="Pat TV")
        s.commit()
        row = s.get(SignalSource, tv.source_id)
        assert row.webhook_secret_hash == hashlib.sha256(tv.webhook_secret.encode()).hexdigest()
        assert tv.webhook_path == f"/webhooks/tradingview/{row.webhook_token}"
        assert s.get(SignalSource, created.source_id).discord_channel_id == "123456789012345678"
        assert verify(s).ok


def test_refusals_name_the_field_and_the_role(engine, demo):
    users, cid, _ = demo
    with Session(engine) as s:
        with pytest.raises(PermissionDenied, match="admin role"):
            sources.register_discord_source(s, users["alex"], cid, provider_id=users["pat"],
                                            channel_id="123456789012345678", name="x")
        with pytest.raises(ValidationError) as bad_id:
            sources.register_discord_source(s, users["dana"], cid, provider_id=users["pat"],
                                            channel_id="#signals", name="x")
        assert bad_id.value.field == "channel_id" and "Copy ID" in bad_id.value.message
        with pytest.raises(ValidationError) as taken:
            existing = s.exec(select(SignalSource.discord_channel_id).where(
                SignalSource.discord_channel_id.is_not(None))).first()
            sources.register_discord_source(s, users["dana"], cid, provider_id=users["pat"],
                                            channel_id=existing, name="dup")
        assert taken.value.field == "channel_id"
        with pytest.raises(ValidationError, match="guild"):
            sources.connect_guild(s, users["dana"], cid, "not-a-number")


def test_cli_registers_a_source_as_the_host(engine, demo, tmp_path):
    _users, _cid, slug = demo
    env = {**os.environ, "DATABASE_URL": engine.url.render_as_string(hide_password=False),
           "DATA_DIR": str(tmp_path)}
    run = subprocess.run([sys.executable, "-m", "backend", "community", "add-tradingview-source", "--community", slug,
                          "--as", "dana", "--provider", "pat", "--name", "CLI TV"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "/webhooks/tradingview/" in run.stdout and "Secret" in run.stdout
    refused = subprocess.run([sys.executable, "-m", "backend", "community", "connect-guild", "--community", slug,
                              "--as", "alex", "--guild-id", "123456789012345678"],
                             cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1 and "admin role" in refused.stdout
