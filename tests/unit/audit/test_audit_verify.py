"""The verifier names the first tampered, unlinked or missing event."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from sqlmodel import Session, select

from backend.audit import event_hash, record_many, verify
from backend.db.models import AuditEvent

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def chain(session):
    record_many(session, [{"action": "order.filled", "subject_type": "order", "subject_id": i, "data": {"qty": str(i)}}
                          for i in range(1, 11)])
    session.commit()
    return session


def _sql(engine, statement: str, **params) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text(statement), params)


def test_intact_chain_verifies_and_reports_its_head(chain, engine):
    result = verify(engine)
    assert (result.ok, result.checked, result.first_bad_seq, result.problem) == (True, 10, None, None)
    assert len(result.head_hash) == 64


def test_empty_chain_is_ok(engine):
    assert verify(engine).ok and verify(engine).checked == 0


def test_data_edited_by_raw_sql_is_detected_at_that_seq(chain, engine):
    _sql(engine, "UPDATE audit_events SET data = :d WHERE seq = 6", d='{"qty": "600"}')
    result = verify(engine)
    assert not result.ok
    assert result.first_bad_seq == 6 and result.checked == 5
    assert "altered" in result.problem


def test_deleted_middle_event_is_detected_as_missing(chain, engine):
    _sql(engine, "DELETE FROM audit_events WHERE seq = 4")
    result = verify(engine)
    assert (result.ok, result.first_bad_seq) == (False, 4)
    assert "missing" in result.problem and "seq 4" in result.problem


def test_edited_prev_hash_is_detected_as_a_broken_link(chain, engine):
    _sql(engine, "UPDATE audit_events SET prev_hash = :h WHERE seq = 8", h="f" * 64)
    result = verify(engine)
    assert (result.ok, result.first_bad_seq) == (False, 8)
    assert "broken link" in result.problem and "seq 7" in result.problem


def test_rewritten_event_with_recomputed_hash_still_breaks_the_next_link(chain, engine):
    """A forger who recomputes the edited row's hash is caught by the link of the row after it."""
    with Session(engine) as s:
        forged = s.exec(select(AuditEvent).where(AuditEvent.seq == 3)).one().model_dump() | {"data": {"qty": "999"}}
    _sql(engine, "UPDATE audit_events SET data = :d, hash = :h WHERE seq = 3", d='{"qty": "999"}', h=event_hash(forged))
    result = verify(engine)
    assert (result.ok, result.first_bad_seq) == (False, 4)
    assert "broken link" in result.problem


def test_genesis_link_is_checked(chain, engine):
    _sql(engine, "UPDATE audit_events SET prev_hash = :h WHERE seq = 1", h="1" * 64)
    result = verify(engine)
    assert (result.ok, result.first_bad_seq) == (False, 1)
    assert "genesis" in result.problem


def test_paging_walks_past_page_boundaries(session, engine):
    record_many(session, [{"action": "tick", "data": {"i": i}} for i in range(25)])
    session.commit()
    assert verify(engine, page_size=7).checked == 25
    _sql(engine, "DELETE FROM audit_events WHERE seq = 15")
    assert verify(engine, page_size=7).first_bad_seq == 15


def _cli(engine, tmp_path) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": engine.url.render_as_string(hide_password=False),
           "DATA_DIR": str(tmp_path / "data"), "APP_ENV": "test"}
    return subprocess.run([sys.executable, "-m", "backend", "audit", "verify"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def test_cli_reports_ok_then_broken_with_exit_codes(chain, engine, tmp_path):
    ok = _cli(engine, tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines()[0] == "audit chain OK: 10 events"

    _sql(engine, "UPDATE audit_events SET action = 'order.cancelled' WHERE seq = 2")
    broken = _cli(engine, tmp_path)
    assert broken.returncode == 1, broken.stderr
    assert broken.stdout.startswith("audit chain BROKEN at seq 2: event altered")
