"""The member's inbox: what the money path told them (fills, rejections, halts), read and unread.

The execution engine writes ``notifications`` rows (and ``backend.services.notify``
turns pending ones into Discord DMs); this module is the dashboard's side:
list them newest first, one page at a time, and mark them read.  Every
query is scoped by the caller's ``user_id`` in SQL, and marking someone
else's notification read is refused as "not found" (it does not reveal
that the id exists).  Nothing here commits: the caller's ``session_scope`` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from backend.db.models import Notification, User
from backend.db.types import utcnow
from backend.errors import NotFound

PAGE_SIZE = 25


@dataclass(frozen=True)
class NotificationView:
    id: int
    kind: str
    title: str
    body: str
    created_at: datetime
    read: bool
    dm_status: str | None
    order_id: int | None


@dataclass(frozen=True)
class InboxPage:
    items: list[NotificationView]
    unread: int
    total: int
    has_more: bool


@dataclass(frozen=True)
class DmPreference:
    enabled: bool
    discord_linked: bool


def _view(n: Notification) -> NotificationView:
    data: dict[str, Any] = n.data or {}
    order_id = data.get("order_id")
    return NotificationView(
        id=n.id, kind=n.kind, title=n.title, body=n.body or "", created_at=n.created_at,
        read=n.read_at is not None, dm_status=n.dm_status,
        order_id=int(order_id) if isinstance(order_id, (int, str)) and str(order_id).isdigit() else None,
    )


def unread_count(session: Session, user_id: int) -> int:
    return session.exec(
        select(sa.func.count()).select_from(Notification)
        .where(Notification.user_id == user_id, Notification.read_at.is_(None))
    ).one()


def inbox(session: Session, user_id: int, *, unread_only: bool = False, page: int = 0,
          page_size: int = PAGE_SIZE) -> InboxPage:
    """One page of the user's notifications, newest first."""
    mine = Notification.user_id == user_id
    query = select(Notification).where(mine)
    if unread_only:
        query = query.where(Notification.read_at.is_(None))
    rows = session.exec(
        query.order_by(Notification.created_at.desc(), Notification.id.desc())
        .offset(max(page, 0) * page_size).limit(page_size + 1)
    ).all()
    total = session.exec(select(sa.func.count()).select_from(Notification).where(mine)).one()
    return InboxPage(items=[_view(n) for n in rows[:page_size]], unread=unread_count(session, user_id),
                     total=total, has_more=len(rows) > page_size)


def mark_read(session: Session, user_id: int, notification_id: int, *, now: datetime | None = None) -> None:
    row = session.get(Notification, notification_id)
    if row is None or row.user_id != user_id:
        raise NotFound("That notification does not exist.")
    if row.read_at is None:
        row.read_at = now or utcnow()
        session.add(row)
        session.flush()


def mark_all_read(session: Session, user_id: int, *, now: datetime | None = None) -> int:
    """Mark every unread notification of the user read; returns how many changed."""
    result = session.execute(
        sa.update(Notification)
        .where(Notification.user_id == user_id, Notification.read_at.is_(None))
        .values(read_at=now or utcnow())
    )
    session.flush()
    return result.rowcount or 0


def dm_preference(session: Session, user_id: int) -> DmPreference:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("That user does not exist.")
    return DmPreference(enabled=user.dm_enabled, discord_linked=bool(user.discord_id))
