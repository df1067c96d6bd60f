"""Notifications page state called directly: the owner's inbox only, writes scoped to the owner."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from backend.db.models import Notification, User
from state.notifications import NotificationsState, kind_tone
from webstate import sign_in


def signed_in(db, user) -> NotificationsState:
    state = sign_in(NotificationsState, db, user)
    return state


def test_anonymous_visitors_go_to_login(db):
    state = NotificationsState()
    assert state.load() is not None and state.items == []


def test_the_seeded_fill_is_in_danas_inbox_and_can_be_marked_read(db, users):
    state = signed_in(db, users["dana"])
    state.load()
    [note] = state.items
    assert note["title"] == "Bought 10 AAPL @ 190.00" and note["tone"] == "green" and note["read"] == ""
    assert state.unread == 1
    state.mark_read(note["id"])
    assert state.unread == 0 and state.items[0]["read"] == "yes"
    state.set_unread_only(True)
    assert state.items == []


def test_marking_another_users_notification_read_is_refused(db, users):
    with Session(db) as s:
        danas = s.exec(select(Notification.id).where(Notification.user_id == users["dana"].id)).one()
    sam = signed_in(db, users["sam"])
    sam.load()
    assert sam.items == []
    sam.mark_read(str(danas))
    assert "does not exist" in sam.error
    with Session(db) as s:
        assert s.get(Notification, danas).read_at is None


def test_dm_switch_changes_the_bots_preference(db, users):
    state = signed_in(db, users["alex"])
    state.load()
    assert state.dm_enabled and not state.discord_linked
    state.set_dm_enabled(False)
    assert not state.dm_enabled
    with Session(db) as s:
        assert s.get(User, users["alex"].id).dm_enabled is False


@pytest.mark.parametrize("kind,tone", [("order.filled", "green"), ("order.rejected", "red"),
                                       ("risk.halted", "red"), ("signal.stale", "amber"), ("misc", "gray")])
def test_kind_tone(kind, tone):
    assert kind_tone(kind) == tone
