"""Who may do what: community roles and the platform admin role.

Every use case that reads or changes community data calls ``require_role``
first, with the *signed-in* user's id, so a member of one community can
never see another community's data by guessing an id.  Roles are ordered
owner > admin > trader > viewer; ``min_role`` is the weakest role allowed.
The refusal is a ``PermissionDenied`` with a message a person can act on,
and it does not say whether the community exists (no probing by id).
"""

from __future__ import annotations

from sqlmodel import Session, select

from backend.db.models import Community, CommunityRole, Membership, PlatformRole, User
from backend.errors import PermissionDenied

ROLE_RANK: dict[str, int] = {
    CommunityRole.VIEWER.value: 1,
    CommunityRole.TRADER.value: 2,
    CommunityRole.ADMIN.value: 3,
    CommunityRole.OWNER.value: 4,
}


def role_at_least(role: str | None, min_role: CommunityRole | str) -> bool:
    wanted = min_role.value if isinstance(min_role, CommunityRole) else min_role
    return role is not None and ROLE_RANK.get(role, 0) >= ROLE_RANK[wanted]


def role_in(session: Session, user_id: int | None, community_id: int) -> str | None:
    """The user's role in a community, or None when not a member."""
    if user_id is None:
        return None
    return session.exec(
        select(Membership.role).where(Membership.community_id == community_id, Membership.user_id == user_id)
    ).first()


def require_role(
    session: Session, user_id: int | None, community_id: int, min_role: CommunityRole | str
) -> str:
    """Return the user's role, or raise ``PermissionDenied`` if it is weaker than ``min_role``."""
    role = role_in(session, user_id, community_id)
    if not role_at_least(role, min_role):
        wanted = min_role.value if isinstance(min_role, CommunityRole) else min_role
        raise PermissionDenied(f"You need the {wanted} role (or higher) in this community to do that.")
    return role


def is_platform_admin(session: Session, user_id: int | None) -> bool:
    if user_id is None:
        return False
    user = session.get(User, user_id)
    return user is not None and user.platform_role == PlatformRole.ADMIN.value


def require_platform_admin(session: Session, user_id: int | None) -> User:
    if not is_platform_admin(session, user_id):
        raise PermissionDenied("Only platform administrators can open the admin area.")
    return session.get(User, user_id)


def communities_with_role(
    session: Session, user_id: int, min_role: CommunityRole | str = CommunityRole.ADMIN
) -> list[tuple[Community, str]]:
    """The communities where the user holds at least ``min_role``, oldest first."""
    rows = session.exec(
        select(Community, Membership.role)
        .join(Membership, Membership.community_id == Community.id)
        .where(Membership.user_id == user_id)
        .order_by(Community.id)
    ).all()
    return [(c, r) for c, r in rows if role_at_least(r, min_role)]
