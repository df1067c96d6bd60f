"""Community area: the host's view of one community (members, sources, provider stats).

The community shown comes from the ``?c=<id>`` query parameter or the first
community the user manages; either way ``backend.services.community``
checks the admin role before returning anything, and a refusal is shown as
a message on the page (never as someone else's data).
"""

from __future__ import annotations

import reflex as rx

from backend.db.session import session_scope
from backend.errors import PermissionDenied
from backend.services import community as community_service
from state import format as fmt
from state.auth import AuthState

MEMBERS_PER_PAGE = 50


class CommunityState(AuthState):
    communities: list[dict[str, str]] = []
    community_id: int = 0
    community_name: str = ""
    my_role: str = ""
    member_count: int = 0
    role_summary: str = ""
    members: list[dict[str, str]] = []
    sources: list[dict[str, str]] = []
    signals_total: int = 0
    orders_total: int = 0
    member_page: int = 0
    error: str = ""
    loaded: bool = False

    @rx.event
    def load(self):
        requested = self.router.url.query_parameters.get("c", "")
        return self._open(int(requested) if requested.isdigit() else None, page=0)

    @rx.event
    def select_community(self, community_id: int):
        return self._open(int(community_id), page=0)

    @rx.event
    def next_members(self):
        return self._open(self.community_id, page=self.member_page + 1)

    @rx.event
    def previous_members(self):
        return self._open(self.community_id, page=max(self.member_page - 1, 0))

    @rx.var
    def has_more_members(self) -> bool:
        return (self.member_page + 1) * MEMBERS_PER_PAGE < self.member_count

    def _open(self, community_id: int | None, *, page: int):
        with session_scope() as session:
            user = self._signed_in_user(session)
            if user is None:
                return self._to_login()
            refs = community_service.managed_communities(session, user.id)
            self.communities = [{"id": str(r.id), "name": r.name, "role": r.role} for r in refs]
            if community_id is None:
                if not refs:
                    self._clear("You do not host or help run a community yet.")
                    return None
                community_id = refs[0].id
            try:
                overview = community_service.community_overview(
                    session, user.id, community_id,
                    member_limit=MEMBERS_PER_PAGE, member_offset=page * MEMBERS_PER_PAGE,
                )
            except PermissionDenied as exc:
                self._clear(exc.message)
                return None
        self._show(overview, page)
        return None

    def _clear(self, message: str) -> None:
        self.error = message
        self.community_id, self.community_name, self.my_role = 0, "", ""
        self.members, self.sources = [], []
        self.member_count = self.signals_total = self.orders_total = 0
        self.role_summary = ""
        self.loaded = True

    def _show(self, o: community_service.CommunityOverview, page: int) -> None:
        self.error = ""
        self.community_id, self.community_name, self.my_role = o.id, o.name, o.my_role
        self.member_count, self.member_page = o.member_count, page
        order = ["owner", "admin", "trader", "viewer"]
        self.role_summary = ", ".join(
            f"{o.role_counts[r]} {r}{'s' if o.role_counts[r] != 1 else ''}" for r in order if o.role_counts.get(r)
        )
        self.members = [
            {"id": str(m.user_id), "name": m.name, "role": m.role, "role_text": fmt.humanize(m.role),
             "joined": fmt.when(m.joined_at)}
            for m in o.members
        ]
        self.sources = [
            {"id": str(s.id), "name": s.name, "kind": fmt.source_kind(s.kind), "provider": s.provider_name,
             "active": "Active" if s.active else "Paused", "followers": str(s.followers),
             "auto": str(s.auto_trading_followers), "signals": str(s.signals_total),
             "dispatched": str(s.signals_dispatched), "rejected": str(s.signals_rejected),
             "orders": str(s.orders_total), "last_signal": fmt.when(s.last_signal_at)}
            for s in o.sources
        ]
        self.signals_total, self.orders_total = o.signals_total, o.orders_total
        self.loaded = True
