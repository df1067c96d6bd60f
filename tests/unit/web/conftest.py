"""Fixtures of the web-state tests: the demo world, with the app's settings pointing at it."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from backend.db.models import User
from backend.services.demo_seed import seed_demo


@pytest.fixture
def db(engine, settings_env):
    settings_env(DATABASE_URL=engine.url.render_as_string(hide_password=False))
    seed_demo(engine)
    return engine


@pytest.fixture
def users(db):
    with Session(db) as s:
        return {u.username: u for u in s.exec(select(User)).all()}
