"""Tenant isolation, generated from the URL conf: for every API route that names an object, a second team's
token gets a 404 on the first team's object with every method the route serves. A new route is checked
as soon as it is added to a URL conf; a route this test cannot fill in fails it instead of being skipped.
"""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from accounts_service import services
from accounts_service.rights import PLATFORM
from billing.invoices import invoice_generate
from billing.selectors import period_start

pytestmark = pytest.mark.django_db

METHODS = ("get", "post", "put", "patch", "delete")
# Routes that name no tenant object: scoping there is by the caller's own teams or by staff permission.
UNSCOPED = {"api-account-list", "api-connect", "api-fleet-nodes", "api-plan-list", "api-invoice-list"}


def _api_routes() -> list[tuple[str, str, type]]:
    """(name, route with <converters>, view class) of every route under api/v1/."""
    routes: list[tuple[str, str, type]] = []

    def walk(patterns, prefix: str) -> None:
        for p in patterns:
            if isinstance(p, URLResolver):
                walk(p.url_patterns, prefix + str(p.pattern))
            elif isinstance(p, URLPattern) and (prefix + str(p.pattern)).startswith("api/v1/"):
                routes.append((p.name, prefix + str(p.pattern), p.callback.view_class))

    walk(get_resolver().url_patterns, "")
    return routes


ROUTES = _api_routes()


@pytest.fixture
def first_team_objects(operator_setup):
    owner = get_user_model().objects.create_user(username="alice", password="pw-alice-123")
    team = services.team_create(name="acme", actor=owner)
    account = services.account_create(actor=PLATFORM, team=team, name="shop")
    feed = services.account_create(actor=PLATFORM, team=team, name="feed")
    user = services.user_create(actor=PLATFORM, account=account, name="app", pub_allow=["orders.>"])
    export = services.export_create(actor=PLATFORM, account=feed, name="prices", subject="prices.>", type="stream")
    imp = services.import_create(actor=PLATFORM,
                                 account=account, exporter_public_key=feed.public_key, subject="prices.>")
    services.account_plan_set(actor=PLATFORM, account=account, plan="free")
    invoice, _ = invoice_generate(team=team, start=period_start())
    return {"owner": owner, "account_pk": account.public_key, "user_pk": user.public_key, "export_id": export.pk,
            "import_id": imp.pk, "export_account_pk": feed.public_key, "number": invoice.number}


def _client(user) -> APIClient:
    client = APIClient()
    _, token = services.api_token_create(actor=PLATFORM, user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def _fill(route: str, objects: dict) -> str:
    values = dict(objects)
    if "<int:export_id>" in route:  # an export is addressed under its own (exporting) account
        values["account_pk"] = objects["export_account_pk"]
    path = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(values[m.group(1)]), route)
    assert "<" not in path, f"cannot fill {route}: add its parameter to first_team_objects"
    return "/" + path


def test_every_api_route_is_known_to_this_test():
    names = {name for name, _, _ in ROUTES}
    assert {"api-account-detail", "api-user-creds", "api-export-detail", "api-import-detail",
            "api-account-status"} <= names, names


@pytest.mark.parametrize(("name", "route", "view"), [r for r in ROUTES if r[0] not in UNSCOPED],
                         ids=[r[0] for r in ROUTES if r[0] not in UNSCOPED])
def test_another_teams_token_gets_404_with_every_method(name, route, view, first_team_objects):
    mallory = get_user_model().objects.create_user(username="mallory", password="pw-mallory-123")
    services.team_create(name="globex", actor=mallory)
    intruder = _client(mallory)
    path = _fill(route, first_team_objects)
    methods = [m for m in METHODS if hasattr(view, m)]
    assert methods, f"{name} serves no method"
    for method in methods:
        response = getattr(intruder, method)(path, {}, format="json")
        assert response.status_code == 404, (method, path, response.status_code, response.content[:300])
        body = response.json()
        assert set(body) == {"message", "code", "extra"}, body
    # The owner reaches the same object (so the 404 above is isolation, not a wrong id).
    if hasattr(view, "get"):
        assert _client(first_team_objects["owner"]).get(path).status_code == 200, path
