"""Signing a Reflex State in as a user, for tests that call its handlers directly."""

from __future__ import annotations

from sqlmodel import Session

from backend.services import auth


def sign_in(state_cls, db, user):
    """A fresh ``state_cls`` whose session cookie belongs to ``user`` (a real server-side session)."""
    state = state_cls()
    with Session(db) as s:
        state.session_token = auth.create_session(s, user.id)
        s.commit()
    return state
