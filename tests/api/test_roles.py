"""The same rules on every path: generated from the URL conf, every write route is walked with a team *member's*
token (not an owner's). Owner-only writes (deleting an account, changing its plan) are a 403 that changes nothing;
every other write is the member's to make (whatever its input then says). The outsider's side is
test_isolation.py; the web's is tests/web/test_web_roles.py.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from accounts_service import services
from accounts_service.models import Account, AuditEvent, TeamMembership
from tests.api.routes import PERSONAL, ROUTES, STAFF, UNSCOPED, fill, token_client

pytestmark = pytest.mark.django_db

WRITES = ("post", "put", "patch", "delete")
# (route name, method) -> the body that makes the write owner-only; everything else a member may write.
OWNER_ONLY = {("api-account-detail", "delete"): {}, ("api-account-detail", "patch"): {"plan": "free"},
              ("api-member-list", "post"): {"email": "carol@example.com", "role": "member"},
              ("api-member-detail", "patch"): {"role": "member"}, ("api-member-detail", "delete"): {}}


@pytest.fixture
def member(first_team_objects):
    person = get_user_model().objects.create_user(username="bob", password="pw-bob-12345")
    team = Account.objects.get(public_key=first_team_objects["account_pk"]).team
    services.team_member_add(team=team, user=person, role=TeamMembership.Role.MEMBER)
    return person


def _writes():
    out = []
    for name, route, view in ROUTES:
        for method in WRITES:
            if (hasattr(view, method) and name not in PERSONAL | STAFF
                    and (name not in UNSCOPED or method == "post")):
                out.append((name, route, method))
    return out


def test_the_walk_covers_the_owner_only_writes():
    assert set(OWNER_ONLY) <= {(name, method) for name, _, method in _writes()}


@pytest.mark.parametrize(("name", "route", "method"), _writes(), ids=[f"{n}-{m}" for n, _, m in _writes()])
def test_a_member_may_write_everything_but_the_owners_writes(name, route, method, first_team_objects, member):
    path = fill(route, first_team_objects)
    before = (Account.objects.filter(public_key=first_team_objects["account_pk"]).values_list("plan", "version")
              .first())
    body = OWNER_ONLY.get((name, method), {})
    response = getattr(token_client(member), method)(path, body, format="json")
    if (name, method) in OWNER_ONLY:
        assert response.status_code == 403, (method, path, response.content[:300])
        assert response.json()["code"] == "owner_required"
        after = (Account.objects.filter(public_key=first_team_objects["account_pk"])
                 .values_list("plan", "version").first())
        assert after == before  # nothing changed, nothing re-signed
        assert not AuditEvent.objects.filter(actor=member).exists()
    else:
        # A member reaches the write: it is never refused for the role or hidden as another team's.
        assert response.status_code not in (403, 404), (method, path, response.status_code, response.content[:300])


def test_an_owner_may_make_the_owners_writes(first_team_objects):
    owner = token_client(first_team_objects["owner"])
    path = f"/api/v1/accounts/{first_team_objects['account_pk']}/"
    assert owner.patch(path, {"plan": "free"}, format="json").status_code == 200
    assert owner.delete(path).status_code == 204
    assert AuditEvent.objects.filter(action=AuditEvent.Action.ACCOUNT_DELETE,
                                     target=first_team_objects["account_pk"]).exists()
