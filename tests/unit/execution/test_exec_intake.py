"""Intake: every message stored exactly once; chatter, stale, edited and deleted signals never traded."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlmodel import Session, select

from backend.db.models import AuditEvent, Notification, Order, Signal, SignalRevision
from backend.execution.intake import ingest, ingest_delete, ingest_edit
from backend.execution.journal import Journal
from backend.execution.seeding import seed_world

NOW = datetime(2026, 11, 2, 15, 0, tzinfo=timezone.utc)


def _ingest(session, source, mid, text, sent_at=NOW, now=NOW):
    journal = Journal()
    result = ingest(session, source, source_message_id=mid, text=text, sent_at=sent_at, journal=journal, now=now)
    journal.flush_audit(session)
    session.commit()
    return result


def test_a_redelivered_message_is_stored_once(session):
    world = seed_world(session)
    first = _ingest(session, world.source, "m1", "Buy AAPL @ 185 SL 180")
    again = _ingest(session, world.source, "m1", "Buy AAPL @ 185 SL 180")
    assert first.created and not again.created
    assert again.signal_id == first.signal_id and again.status == "received"
    rows = session.exec(select(Signal)).all()
    assert len(rows) == 1 and rows[0].action == "open" and rows[0].parsed["stop_loss"] == "180"
    assert session.exec(select(AuditEvent.action)).all() == ["signal.received"]


def test_chatter_is_kept_for_the_history_but_ignored(session):
    world = seed_world(session)
    result = _ingest(session, world.source, "m2", "anyone still holding NVDA?")
    assert result.status == "ignored" and result.reason == "Not a trading signal."
    assert session.get(Signal, result.signal_id).raw_text == "anyone still holding NVDA?"


def test_a_stale_signal_is_recorded_and_the_followers_told_why(session):
    world = seed_world(session, followers=2, source={"max_lag_seconds": 60})
    result = _ingest(session, world.source, "m3", "Buy AAPL", sent_at=NOW - timedelta(seconds=90))
    assert result.status == "stale"
    assert "90 s after it was sent" in result.reason
    notes = session.exec(select(Notification)).all()
    assert sorted(n.user_id for n in notes) == sorted(u.id for u in world.followers)
    assert all(n.kind == "signal.stale" and "not traded" in n.body for n in notes)


def test_a_runaway_source_is_cut_off(session):
    world = seed_world(session, source={"max_signals_per_minute": 2})
    statuses = [_ingest(session, world.source, f"r{i}", "Buy AAPL").status for i in range(3)]
    assert statuses == ["received", "received", "rejected"]


def test_a_paused_source_records_but_does_not_trade(session):
    world = seed_world(session, source={"active": False})
    assert _ingest(session, world.source, "p1", "Buy AAPL").status == "ignored"


def test_edits_are_revisions_never_new_trades(session):
    world = seed_world(session)
    first = _ingest(session, world.source, "e1", "Buy AAPL @ 185 SL 180")
    journal = Journal()
    same = ingest_edit(session, world.source, source_message_id="e1", text="Buy AAPL @ 185 SL 180 ", journal=journal,
                       now=NOW)
    changed = ingest_edit(session, world.source, source_message_id="e1", text="Buy AAPL @ 185 SL 175", journal=journal,
                          now=NOW)
    journal.flush_audit(session)
    session.commit()
    assert same.signal_id == changed.signal_id == first.signal_id
    revisions = session.exec(select(SignalRevision).order_by(SignalRevision.revision)).all()
    assert [(r.revision, r.changed) for r in revisions] == [(2, False), (3, True)]
    signal = session.get(Signal, first.signal_id)
    assert signal.revision == 3 and signal.parsed["stop_loss"] == "180"  # the traded content is never rewritten
    assert session.exec(select(Order)).all() == []
    assert ingest_edit(session, world.source, source_message_id="unknown", text="x", journal=journal) is None


def test_a_signal_deleted_before_its_fan_out_is_not_traded(engine):
    with Session(engine, expire_on_commit=False) as session:
        world = seed_world(session)
        first = _ingest(session, world.source, "d1", "Buy AAPL")
        journal = Journal()
        ingest_delete(session, world.source, source_message_id="d1", journal=journal, now=NOW)
        session.commit()
        signal = session.get(Signal, first.signal_id)
        assert signal.deleted_at == NOW and signal.status == "ignored"
