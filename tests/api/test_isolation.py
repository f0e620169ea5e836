"""Tenant isolation, generated from the URL conf: for every API route that names an object, a second team's
token gets a 404 on the first team's object with every method the route serves. A new route is checked
as soon as it is added to a URL conf; a route this test cannot fill in fails it instead of being skipped.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from accounts_service import services
from tests.api.routes import METHODS, ROUTES, UNSCOPED, fill, token_client

pytestmark = pytest.mark.django_db

def test_every_api_route_is_known_to_this_test():
    names = {name for name, _, _ in ROUTES}
    assert {"api-account-detail", "api-user-creds", "api-export-detail", "api-import-detail",
            "api-account-status"} <= names, names


@pytest.mark.parametrize(("name", "route", "view"), [r for r in ROUTES if r[0] not in UNSCOPED],
                         ids=[r[0] for r in ROUTES if r[0] not in UNSCOPED])
def test_another_teams_token_gets_404_with_every_method(name, route, view, first_team_objects):
    mallory = get_user_model().objects.create_user(username="mallory", password="pw-mallory-123")
    services.team_create(name="globex", actor=mallory)
    intruder = token_client(mallory)
    path = fill(route, first_team_objects)
    methods = [m for m in METHODS if hasattr(view, m)]
    assert methods, f"{name} serves no method"
    for method in methods:
        response = getattr(intruder, method)(path, {}, format="json")
        assert response.status_code == 404, (method, path, response.status_code, response.content[:300])
        body = response.json()
        assert set(body) == {"message", "code", "extra"}, body
    # The owner reaches the same object (so the 404 above is isolation, not a wrong id).
    if hasattr(view, "get"):
        assert token_client(first_team_objects["owner"]).get(path).status_code == 200, path
