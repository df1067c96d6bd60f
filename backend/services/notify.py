"""Notifications rows -> Discord direct messages.

The money path writes a ``notifications`` row with ``dm_status='pending'``
for everything a member must hear about (fills, partial fills, rejections
with their reason, a broker disconnect, a risk halt, a stale signal).  The
bot's DM loop calls ``deliver_pending`` with a ``send(discord_id, text)``
coroutine and every row ends in one of:

* ``sent``   - Discord accepted the message;
* ``off``    - the member turned DMs off, or has no linked Discord account
               (nothing is sent, nothing retried);
* ``failed`` - Discord refused for good (``DMUndeliverable``: DMs closed,
               unknown user), or a temporary error persisted through
               ``MAX_ATTEMPTS`` rounds; the reason is kept in ``data``.

A temporary error leaves the row ``pending`` for the next round.  Each DM is
tried on its own, so one member with closed DMs never holds up the others.
Only one bot process sends (Discord allows one gateway session per token
without sharding), so rows are not claimed before sending.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlmodel import Session, select

from backend.db.models import Notification, User

log = logging.getLogger(__name__)

PENDING, SENT, FAILED, OFF = "pending", "sent", "failed", "off"
MAX_ATTEMPTS = 3
DISCORD_MESSAGE_LIMIT = 2000


class DMUndeliverable(Exception):
    """Raised by a sender when Discord will never accept this DM (closed DMs, unknown user)."""


@dataclass(frozen=True)
class PendingDM:
    notification_id: int
    user_id: int
    discord_id: str
    text: str


@dataclass
class DeliveryReport:
    sent: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    off: list[int] = field(default_factory=list)
    retry: list[int] = field(default_factory=list)


def queue_notification(session: Session, *, user_id: int, kind: str, title: str, body: str, now,
                       data: dict | None = None) -> Notification:
    """Write a notification the dashboard lists and the DM loop sends (``dm_status='pending'``)."""
    note = Notification(user_id=user_id, kind=kind, title=title[:200], body=body, data=data or {}, created_at=now,
                        dm_status=PENDING)
    session.add(note)
    session.flush()
    return note


def dm_text(title: str, body: str) -> str:
    text = f"**{title}**\n{body}".strip() if body else f"**{title}**"
    return text if len(text) <= DISCORD_MESSAGE_LIMIT else text[: DISCORD_MESSAGE_LIMIT - 1] + "…"


def take_pending(session: Session, *, limit: int = 50) -> tuple[list[PendingDM], list[int]]:
    """The next pending DMs (oldest first), and the ids just marked ``off`` (DMs off or no Discord link)."""
    rows = session.execute(
        select(Notification.id, Notification.user_id, Notification.title, Notification.body,
               User.discord_id, User.dm_enabled)
        .join(User, User.id == Notification.user_id)
        .where(Notification.dm_status == PENDING)
        .order_by(Notification.id).limit(limit)
    ).all()
    off = [r.id for r in rows if not r.dm_enabled or not r.discord_id]
    if off:
        session.execute(sa.update(Notification).where(Notification.id.in_(off)).values(dm_status=OFF))
    pending = [PendingDM(r.id, r.user_id, r.discord_id, dm_text(r.title, r.body))
               for r in rows if r.dm_enabled and r.discord_id]
    return pending, off


def record_outcome(session: Session, report: DeliveryReport, errors: dict[int, str]) -> None:
    if report.sent:
        session.execute(sa.update(Notification).where(Notification.id.in_(report.sent)).values(dm_status=SENT))
    for note_id in report.failed:
        note = session.get(Notification, note_id)
        note.dm_status = FAILED
        note.data = {**(note.data or {}), "dm_error": errors.get(note_id, "undeliverable")[:300]}


class DMDispatcher:
    """Sends pending DMs round after round; remembers temporary failures between rounds."""

    def __init__(self, engine: sa.Engine, send: Callable[[str, str], Awaitable[None]], *, batch: int = 50) -> None:
        self.engine = engine
        self.send = send
        self.batch = batch
        self._attempts: dict[int, int] = {}

    def _take(self) -> tuple[list[PendingDM], list[int]]:
        with Session(self.engine, expire_on_commit=False) as session:
            result = take_pending(session, limit=self.batch)
            session.commit()
        return result

    def _record(self, report: DeliveryReport, errors: dict[int, str]) -> None:
        with Session(self.engine, expire_on_commit=False) as session:
            record_outcome(session, report, errors)
            session.commit()

    async def deliver_pending(self) -> DeliveryReport:
        """One round: every pending DM is tried once; returns what happened to each."""
        pending, off = await asyncio.to_thread(self._take)
        report, errors = DeliveryReport(off=off), {}
        for dm in pending:
            try:
                await self.send(dm.discord_id, dm.text)
            except DMUndeliverable as exc:
                report.failed.append(dm.notification_id)
                errors[dm.notification_id] = str(exc) or "undeliverable"
            except Exception as exc:  # noqa: BLE001 - one DM must never stop the others
                attempts = self._attempts.get(dm.notification_id, 0) + 1
                log.warning("DM for notification %s failed (attempt %s): %s", dm.notification_id, attempts, exc)
                if attempts >= MAX_ATTEMPTS:
                    report.failed.append(dm.notification_id)
                    errors[dm.notification_id] = f"gave up after {attempts} attempts: {exc}"
                    self._attempts.pop(dm.notification_id, None)
                else:
                    self._attempts[dm.notification_id] = attempts
                    report.retry.append(dm.notification_id)
            else:
                report.sent.append(dm.notification_id)
                self._attempts.pop(dm.notification_id, None)
        if report.sent or report.failed:
            await asyncio.to_thread(self._record, report, errors)
        return report
