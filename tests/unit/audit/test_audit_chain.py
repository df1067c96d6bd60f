"""Appending to the audit chain: links, hashes, batching, scrubbing, transactions."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from decimal import Decimal

import pytest
from sqlmodel import Session, select

from backend.audit import GENESIS_HASH, event_hash, record, record_many, verify
from backend.db.models import AuditEvent
from backend.errors import ValidationError


def _events(session):
    return session.exec(select(AuditEvent).order_by(AuditEvent.seq)).all()


def test_first_event_links_to_genesis_and_each_next_to_its_predecessor(session):
    first = record(session, "signal.received", subject_type="signal", subject_id=7, data={"symbol": "AAPL"})
    second = record(session, "order.submitted", subject_type="order", subject_id="o-1", actor_user_id=3, community_id=2)
    session.commit()

    assert (first.seq, first.prev_hash) == (1, GENESIS_HASH)
    assert (second.seq, second.prev_hash) == (2, first.hash)
    assert first.subject_id == "7"  # ints are stored as text, the column's type
    assert verify(session).ok


def test_hash_is_sha256_of_canonical_fields_and_survives_the_round_trip(session, engine):
    event = record(session, "risk.denied", data={"qty": Decimal("1.50"), "at": datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)})
    session.commit()

    with Session(engine) as fresh:
        stored = fresh.exec(select(AuditEvent)).one()
        assert stored.data == {"qty": "1.50", "at": "2024-01-02T03:04:05.000000+00:00"}
        assert stored.created_at.tzinfo is not None
        assert event_hash(stored.model_dump()) == stored.hash == event.hash
        assert len(stored.hash) == 64


def test_record_many_appends_in_order_with_one_chain(session):
    record(session, "seed")
    events = record_many(session, [
        {"action": "order.created", "subject_type": "order", "subject_id": i, "data": {"i": i}, "actor_user_id": i}
        for i in range(50)
    ])
    session.commit()

    assert [e.seq for e in events] == list(range(2, 52))
    assert [e.data["i"] for e in events] == list(range(50))
    assert all(e.id is not None for e in events)
    stored = _events(session)
    assert all(b.prev_hash == a.hash for a, b in zip(stored, stored[1:]))
    assert verify(session).checked == 51


def test_record_many_with_nothing_appends_nothing(session):
    assert record_many(session, []) == []
    assert _events(session) == []


def test_secret_looking_keys_are_redacted_at_any_depth(session):
    record(session, "broker.connected", data={
        "broker": "alpaca",
        "api_key": "AKIA-PLAINTEXT",
        "nested": {"Secret": "s3cr3t", "list": [{"password": "hunter2", "qty": 1}], "credentials_key_id": "k1"},
        "Authorization": "Bearer abc",
        "accessToken": "tok",
    })
    session.commit()

    data = _events(session)[0].data
    assert data["broker"] == "alpaca"
    assert data["api_key"] == data["Authorization"] == data["accessToken"] == "[redacted]"
    assert data["nested"]["Secret"] == "[redacted]"
    assert data["nested"]["list"] == [{"password": "[redacted]", "qty": 1}]
    assert data["nested"]["credentials_key_id"] == "k1"  # names a key, is not one
    assert "AKIA-PLAINTEXT" not in str(data) and "hunter2" not in str(data)


def test_rolled_back_events_leave_no_trace_and_the_chain_continues(session):
    record(session, "kept")
    session.commit()
    record(session, "discarded")
    session.rollback()
    record(session, "after")
    session.commit()

    assert [(e.seq, e.action) for e in _events(session)] == [(1, "kept"), (2, "after")]
    assert verify(session).ok


@pytest.mark.parametrize("bad", [
    {"action": ""},
    {"action": "x" * 65},
    {"action": "ok", "subject_type": "y" * 33},
    {"action": "ok", "colour": "red"},
])
def test_invalid_events_are_refused_before_anything_is_written(session, bad):
    with pytest.raises(ValidationError):
        record_many(session, [bad])
    assert _events(session) == []


def test_fan_out_of_3000_events_is_one_cheap_batch(session, engine):
    events = [{"action": "order.submitted", "subject_type": "order", "subject_id": i,
               "actor_user_id": i, "community_id": 1, "data": {"qty": Decimal("0.5"), "symbol": "BTC/USD"}}
              for i in range(3000)]
    started = time.perf_counter()
    stored = record_many(session, events)
    session.commit()
    elapsed = time.perf_counter() - started

    print(f"\nrecord_many 3000 events on {engine.dialect.name}: {elapsed * 1000:.0f} ms")
    assert len(stored) == 3000 and stored[-1].seq == 3000
    assert elapsed < 5.0, f"3000 audit events took {elapsed:.2f}s"
    assert verify(session) == verify(engine)
    assert verify(engine).checked == 3000
