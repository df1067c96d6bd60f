"""Notifications page state called directly: the owner's inbox only, writes scoped to the owner."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import Session, select

from backend.db.models import DiscordLinkCode, Notification, User
from backend.db.types import utcnow
from backend.services import members
from state import format as fmt
from state.notifications import NotificationsState, kind_label, kind_tone
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


@pytest.mark.parametrize("kind,tone,label", [
    ("order.filled", "green", "Filled"), ("order.rejected", "red", "Rejected"),
    ("risk.halted", "red", "Trading halted"), ("signal.stale", "amber", "Too late to trade"),
    ("signal.denied", "amber", "Not taken"), ("risk.reducing", "amber", "Close-only"),
    ("risk.resumed", "green", "Trading resumed"), ("broker_disconnected", "red", "Broker disconnected"),
    ("broker_reconnected", "green", "Broker reconnected"),
    ("reconcile.order_missing", "amber", "Order gone at the broker"),
    ("misc", "gray", "Misc"), ("order.some_new_status_failed", "red", "Some new status failed"),
])
def test_kind_tone_and_label(kind, tone, label):
    assert (kind_tone(kind), kind_label(kind)) == (tone, label)


def test_broker_disconnect_and_close_only_notes_show_red_and_amber(db, users):
    """The kinds as the writers produce them (not typed in here), read back through the page."""
    from backend.db.models import BrokerAccount, RiskProfileRecord
    from backend.execution.journal import Journal
    from backend.execution.trading_state import CLOSE_ONLY_REASON, REDUCING, change_state
    from backend.services.broker_status import apply_status

    uid = users["dana"].id
    with Session(db) as s:
        account = s.exec(select(BrokerAccount).where(BrokerAccount.user_id == uid)).first()
        profile = s.exec(select(RiskProfileRecord).where(RiskProfileRecord.user_id == uid)).one()
        journal = Journal()
        assert apply_status(s, journal, account, "connection_lost", "The gateway closed the socket.", utcnow(),
                            by="test")
        change_state(journal, profile, REDUCING, CLOSE_ONLY_REASON, utcnow(), for_the_day=False)
        s.flush()
        journal.flush_audit(s)
        s.commit()
    state = signed_in(db, users["dana"])
    state.load()
    by_kind = {n["kind"]: n for n in state.items}
    assert (by_kind["broker_disconnected"]["tone"], by_kind["broker_disconnected"]["kind_text"]) == (
        "red", "Broker disconnected")
    assert "lost its connection" in by_kind["broker_disconnected"]["title"]
    assert (by_kind["risk.reducing"]["tone"], by_kind["risk.reducing"]["kind_text"]) == ("amber", "Close-only")
    assert by_kind["risk.reducing"]["title"] == "Close-only mode"


def test_discord_card_gives_a_one_time_code_that_the_bot_redeems(db, users):
    from backend.bot import commands

    state = signed_in(db, users["alex"])
    state.load()
    assert not state.discord_linked and state.link_code == ""
    state.get_link_code()
    first = state.link_code
    assert len(first) == members.LINK_CODE_LENGTH and state.error == ""
    with Session(db) as s:
        row = s.get(DiscordLinkCode, first)
        assert row.user_id == users["alex"].id and row.used_at is None
        assert state.link_expires == fmt.when(row.expires_at)
        assert timedelta(minutes=14) < row.expires_at - utcnow() <= members.LINK_CODE_TTL
    state.get_link_code()  # a new code replaces the old one
    assert state.link_code != first
    with Session(db) as s:
        assert s.get(DiscordLinkCode, first) is None
    reply = commands.link(db, "777000000000000001", None, state.link_code)
    assert reply.startswith("✅ Linked")
    state.load()  # the page shows the link, and the used code is gone
    assert state.discord_linked and state.link_code == "" and state.link_expires == ""
    state.get_link_code()
    assert "already linked" in state.error and state.link_code == ""


def test_anonymous_cannot_get_a_link_code(db):
    state = NotificationsState()
    assert state.get_link_code() is not None and state.link_code == ""
    with Session(db) as s:
        assert s.exec(select(DiscordLinkCode)).all() == []
