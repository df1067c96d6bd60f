"""Admin area: platform-wide figures for platform administrators only.

``backend.services.admin.platform_overview`` refuses anyone else; the page
then shows the refusal, and the navigation hides the area (that is comfort,
the check in the service is the security).
"""

from __future__ import annotations

import reflex as rx

from backend.db.session import session_scope
from backend.errors import PermissionDenied
from backend.services import admin as admin_service
from state import format as fmt
from state.auth import AuthState

SUBSCRIPTIONS_PER_PAGE = 25


class AdminState(AuthState):
    users_count: int = 0
    communities_count: int = 0
    active_subscriptions: int = 0
    mrr: list[dict[str, str]] = []
    communities: list[dict[str, str]] = []
    subscriptions: list[dict[str, str]] = []
    subscriptions_total: int = 0
    subscription_page: int = 0
    audit_events: list[dict[str, str]] = []
    workers: list[dict[str, str]] = []
    error: str = ""
    loaded: bool = False

    @rx.event
    def load(self):
        return self._fetch(0)

    @rx.event
    def next_subscriptions(self):
        return self._fetch(self.subscription_page + 1)

    @rx.event
    def previous_subscriptions(self):
        return self._fetch(max(self.subscription_page - 1, 0))

    @rx.var
    def has_more_subscriptions(self) -> bool:
        return (self.subscription_page + 1) * SUBSCRIPTIONS_PER_PAGE < self.subscriptions_total

    def _fetch(self, page: int):
        with session_scope() as session:
            user = self._signed_in_user(session)
            if user is None:
                return self._to_login()
            try:
                o = admin_service.platform_overview(
                    session, user.id, subscription_limit=SUBSCRIPTIONS_PER_PAGE,
                    subscription_offset=page * SUBSCRIPTIONS_PER_PAGE,
                )
            except PermissionDenied as exc:
                self.error = exc.message
                self.mrr, self.communities, self.subscriptions, self.audit_events = [], [], [], []
                self.workers = []
                self.users_count = self.communities_count = self.active_subscriptions = 0
                self.subscriptions_total = 0
                self.loaded = True
                return None
        self.error = ""
        self.users_count, self.communities_count = o.users_count, o.communities_count
        self.active_subscriptions, self.subscriptions_total = o.active_subscriptions, o.subscriptions_total
        self.subscription_page = page
        self.mrr = [{"currency": cur, "amount": fmt.money(amount)} for cur, amount in sorted(o.mrr.items())] or [
            {"currency": "USD", "amount": fmt.money(0)}
        ]
        self.communities = [
            {"id": str(c.id), "name": c.name, "owner": c.owner_name, "members": str(c.members),
             "sources": str(c.sources), "created": fmt.when(c.created_at)}
            for c in o.communities
        ]
        self.subscriptions = [
            {"id": str(s.id), "customer": s.customer_name, "community": s.community_name or fmt.DASH,
             "provider": s.provider.capitalize(), "plan": s.plan, "status": s.status,
             "status_text": fmt.humanize(s.status), "price": f"{fmt.money(s.amount)} {s.currency} / {s.interval}",
             "monthly": fmt.money(s.monthly) if s.monthly else fmt.DASH, "started": fmt.when(s.started_at)}
            for s in o.subscriptions
        ]
        self.audit_events = [
            {"seq": str(e.seq), "when": fmt.when(e.created_at), "action": e.action,
             "actor": e.actor_name or "System", "subject": e.subject or fmt.DASH}
            for e in o.audit_events
        ]
        self.workers = [
            {"name": w.name.capitalize(), "alive": "Running" if w.alive else "Not responding",
             "tone": "green" if w.alive else "red", "last_seen": fmt.when(w.last_seen), "details": w.summary()}
            for w in o.workers
        ]
        self.loaded = True
        return None
