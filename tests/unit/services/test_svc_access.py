"""Community roles are ordered; the check refuses weaker roles and non-members alike."""

from __future__ import annotations

import pytest
from sqlmodel import select

from backend.db.models import Community, CommunityRole, Membership, User
from backend.errors import PermissionDenied
from backend.services import access
from backend.services.demo_seed import seed_demo


@pytest.fixture
def world(session, engine):
    seed_demo(engine)
    users = {u.username: u for u in session.exec(select(User)).all()}
    outsider = User(username="outsider")
    session.add(outsider)
    session.flush()
    other = Community(name="Other Club", slug="other-club", owner_id=outsider.id)
    session.add(other)
    session.flush()
    session.add(Membership(community_id=other.id, user_id=outsider.id, role="owner"))
    session.commit()
    demo = session.exec(select(Community).where(Community.slug == "demo-trading-club")).one()
    return users, outsider, demo, other


@pytest.mark.parametrize("username,min_role,allowed", [
    ("dana", CommunityRole.OWNER, True),
    ("pat", CommunityRole.OWNER, False),
    ("pat", CommunityRole.ADMIN, True),
    ("alex", CommunityRole.ADMIN, False),
    ("alex", CommunityRole.TRADER, True),
    ("riley", CommunityRole.TRADER, False),
    ("riley", CommunityRole.VIEWER, True),
])
def test_require_role_follows_the_role_order(session, world, username, min_role, allowed):
    users, _, demo, _ = world
    if allowed:
        assert access.require_role(session, users[username].id, demo.id, min_role)
    else:
        with pytest.raises(PermissionDenied, match=f"{min_role.value} role"):
            access.require_role(session, users[username].id, demo.id, min_role)


def test_a_member_of_one_community_has_no_role_in_another(session, world):
    users, outsider, demo, other = world
    with pytest.raises(PermissionDenied):
        access.require_role(session, users["dana"].id, other.id, CommunityRole.VIEWER)
    with pytest.raises(PermissionDenied):
        access.require_role(session, outsider.id, demo.id, CommunityRole.VIEWER)
    with pytest.raises(PermissionDenied):
        access.require_role(session, None, demo.id, CommunityRole.VIEWER)


def test_platform_admin_is_a_separate_role(session, world):
    users, outsider, _, _ = world
    assert access.require_platform_admin(session, users["dana"].id).username == "dana"
    for user in (users["pat"], outsider):
        with pytest.raises(PermissionDenied, match="platform administrators"):
            access.require_platform_admin(session, user.id)


def test_communities_with_role_lists_only_strong_enough_memberships(session, world):
    users, outsider, demo, other = world
    assert [c.id for c, _ in access.communities_with_role(session, users["pat"].id)] == [demo.id]
    assert access.communities_with_role(session, users["alex"].id) == []
    assert [c.id for c, _ in access.communities_with_role(session, users["alex"].id, "trader")] == [demo.id]
    assert [c.id for c, _ in access.communities_with_role(session, outsider.id)] == [other.id]
