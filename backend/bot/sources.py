"""Which Discord channels the bot listens to, and where each one's catch-up cursor is.

A guild has far more chatter channels than signal channels, so the bot keeps
the registered ``signal_sources`` (kind ``discord``, active) in memory and
drops every other message without touching the database.  The directory is
reloaded on every heartbeat, so a host who registers a channel on the
dashboard is heard within seconds, without restarting the bot.

``last_message_id`` is the catch-up cursor: the newest message of the channel
the bot has handled.  It only ever moves forward (snowflakes are compared as
numbers, in SQL, so two writers cannot move it back).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, select

from backend.db.models import SignalSource, SourceKind, User
from backend.execution.intake import CURSOR_ADVANCE, cursor_params


@dataclass(frozen=True)
class SourceInfo:
    source_id: int
    channel_id: int
    community_id: int
    name: str
    provider_discord_id: str | None  # only this author's messages are signals, when known
    created_at: datetime
    last_message_id: str | None

    def accepts_author(self, author_id: int | str) -> bool:
        return self.provider_discord_id is None or str(author_id) == self.provider_discord_id


def load_sources(engine: sa.Engine) -> dict[int, SourceInfo]:
    with Session(engine) as session:
        rows = session.execute(
            select(SignalSource.id, SignalSource.discord_channel_id, SignalSource.community_id, SignalSource.name,
                   User.discord_id, SignalSource.created_at, SignalSource.last_message_id)
            .join(User, User.id == SignalSource.provider_id)
            .where(SignalSource.kind == SourceKind.DISCORD.value, SignalSource.active.is_(True),
                   SignalSource.discord_channel_id.is_not(None))
        ).all()
    sources = {}
    for r in rows:
        if not str(r.discord_channel_id).isdigit():
            continue  # a typo on the dashboard must not stop the bot
        sources[int(r.discord_channel_id)] = SourceInfo(
            source_id=r.id, channel_id=int(r.discord_channel_id), community_id=r.community_id, name=r.name,
            provider_discord_id=r.discord_id, created_at=r.created_at, last_message_id=r.last_message_id)
    return sources


def read_cursor(engine: sa.Engine, source_id: int) -> str | None:
    with Session(engine) as session:
        return session.execute(select(SignalSource.last_message_id).where(SignalSource.id == source_id)).scalar()


def advance_cursor(engine_or_session: sa.Engine | Session, source_id: int, message_id: int | str) -> None:
    """Move ``last_message_id`` to ``message_id`` unless it is already at or past it
    (``execution.intake.CURSOR_ADVANCE``; the money path moves it with the message it stores)."""
    if isinstance(engine_or_session, Session):
        engine_or_session.execute(CURSOR_ADVANCE, cursor_params(source_id, message_id))
        return
    with engine_or_session.begin() as conn:
        conn.execute(CURSOR_ADVANCE, cursor_params(source_id, message_id))
