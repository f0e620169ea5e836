"""The API's routes read from the URL conf, with the objects to fill them in (isolation and role walks), and
API clients acting as a person."""

from __future__ import annotations

import re

from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from accounts_service import services
from accounts_service.rights import PLATFORM

METHODS = ("get", "post", "put", "patch", "delete")
# Routes that name no tenant object: scoping there is by the caller's own teams or by staff permission.
# api-diagnose names its account inside the body (creds or account): tests/api/test_diagnose_api.py proves
# another team's creds or account get the same 404 as unknown ones.
# Staff routes: no tenant's object; anyone else is a 403 (tests/api/test_payouts_api.py walks them).
STAFF = {"api-fleet-nodes", "api-payout-statements", "api-payout-statement", "api-payout-statement-csv",
         "api-node-operators", "api-node-operator-members", "api-node-operator-member", "api-node-operator-assign"}
# api-payout-list and api-payout-operators list the caller's own payout lines and node operators
# (tests/api/test_payouts_api.py proves nobody sees another's).
UNSCOPED = {"api-account-list", "api-connect", "api-diagnose", "api-plan-list", "api-invoice-list",
            "api-invitation-list", "api-team-list", "api-token-list", "api-payout-list", "api-payout-operators"} | STAFF
# Routes of a person's own objects (their API tokens, the invitations mailed to them): another person's is a 404
# (the isolation walk), and no team role applies (the role walk skips them).
PERSONAL = {"api-invitation-accept", "api-token-detail"}


def api_routes() -> list[tuple[str, str, type]]:
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


ROUTES = api_routes()


def token_client(user) -> APIClient:
    client = APIClient()
    _, token = services.api_token_create(actor=PLATFORM, user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def member_client(username: str, team, *, role: str = "member") -> APIClient:
    """A new person with ``role`` in ``team``, as an API client with their own token."""
    from django.contrib.auth import get_user_model

    person = get_user_model().objects.create_user(username=username, password="pw-" + username)
    services.team_member_add(team=team, user=person, role=role)
    return token_client(person)


def fill(route: str, objects: dict) -> str:
    values = dict(objects)
    if "<int:export_id>" in route:  # an export is addressed under its own (exporting) account
        values["account_pk"] = objects["export_account_pk"]
    path = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(values[m.group(1)]), route)
    assert "<" not in path, f"cannot fill {route}: add its parameter to first_team_objects"
    return "/" + path
