"""The inbox read model: scoped to its owner, newest first, paged, marked read once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

from backend.db.models import Notification, User
from backend.db.types import utcnow
from backend.errors import NotFound
from backend.services import notifications as inbox
from backend.services.demo_seed import seed_demo


@pytest.fixture
def users(session, engine):
    seed_demo(engine)
    return {u.username: u for u in session.exec(select(User)).all()}


def add(session, user, title, minutes_ago, *, read=False, kind="order.filled"):
    now = utcnow()
    n = Notification(user_id=user.id, kind=kind, title=title, created_at=now - timedelta(minutes=minutes_ago),
                     read_at=now if read else None, data={"order_id": 3})
    session.add(n)
    session.commit()
    return n


def test_inbox_lists_only_the_owners_notifications_newest_first(session, users):
    add(session, users["sam"], "older", 50)
    add(session, users["sam"], "newer", 5)
    add(session, users["alex"], "alex's", 1)
    box = inbox.inbox(session, users["sam"].id)
    assert [n.title for n in box.items] == ["newer", "older"]
    assert (box.unread, box.total, box.has_more) == (2, 2, False)
    assert box.items[0].order_id == 3


def test_inbox_pages_and_filters_unread(session, users):
    for i in range(5):
        add(session, users["sam"], f"n{i}", 10 - i, read=i % 2 == 0)
    first = inbox.inbox(session, users["sam"].id, page_size=2)
    assert [n.title for n in first.items] == ["n4", "n3"] and first.has_more
    last = inbox.inbox(session, users["sam"].id, page=2, page_size=2)
    assert [n.title for n in last.items] == ["n0"] and not last.has_more
    unread = inbox.inbox(session, users["sam"].id, unread_only=True)
    assert [n.title for n in unread.items] == ["n3", "n1"] and unread.unread == 2


def test_mark_read_is_refused_for_someone_elses_notification(session, users):
    theirs = add(session, users["alex"], "alex's", 1)
    with pytest.raises(NotFound):
        inbox.mark_read(session, users["sam"].id, theirs.id)
    with pytest.raises(NotFound):
        inbox.mark_read(session, users["sam"].id, 999_999)
    session.refresh(theirs)
    assert theirs.read_at is None


def test_mark_read_and_mark_all_read(session, users):
    a = add(session, users["sam"], "a", 3)
    add(session, users["sam"], "b", 2)
    other = add(session, users["alex"], "alex's", 1)
    inbox.mark_read(session, users["sam"].id, a.id)
    session.commit()
    assert inbox.unread_count(session, users["sam"].id) == 1
    assert inbox.mark_all_read(session, users["sam"].id) == 1
    session.commit()
    assert inbox.unread_count(session, users["sam"].id) == 0
    session.refresh(other)
    assert other.read_at is None, "marking all read touches only the caller's rows"


def test_dm_preference_reports_whether_discord_is_linked(session, users):
    pref = inbox.dm_preference(session, users["sam"].id)
    assert pref.enabled and not pref.discord_linked
    users["sam"].discord_id = "123456789"
    session.add(users["sam"])
    session.commit()
    assert inbox.dm_preference(session, users["sam"].id).discord_linked
