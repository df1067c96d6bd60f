"""Scheduled jobs: heartbeats land in the database; a failing job never stops the others."""

from __future__ import annotations

import logging

from backend.workers import jobs
from backend.workers.heartbeat import heartbeats


def test_heartbeat_job_writes_and_updates_one_row(engine):
    jobs.heartbeat_job(engine)
    first = heartbeats(engine)
    jobs.heartbeat_job(engine)
    second = heartbeats(engine)
    assert [r["name"] for r in second] == ["scheduler"]
    assert second[0]["last_seen"] >= first[0]["last_seen"]
    assert "heartbeat" in second[0]["data"]["jobs"]


def test_a_failing_job_is_logged_not_raised(engine, caplog):
    def boom(_engine):
        raise RuntimeError("venue exploded")

    with caplog.at_level(logging.ERROR):
        jobs.run_safely(jobs.Job("boom", 1, boom), engine)
    assert "scheduled job boom failed" in caplog.text
