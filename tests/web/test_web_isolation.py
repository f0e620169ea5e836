"""Tenant isolation of every web route, generated from the URL conf so a new page cannot be forgotten.

Every route that takes an object id is called (GET and POST) by a logged-in person of another team with
the victim's ids, alone and mixed with the caller's own account: the answer is a 404 (or a 405 for the
method a route does not take) and the victim's objects are unchanged.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.urls import URLPattern, URLResolver

from accounts_service import services
from accounts_service.models import Account, ApiToken, AuditEvent, Invitation, NatsUser, TeamMembership
from accounts_service.rights import PLATFORM
from accounts_service.services import invitation_create, team_create
from accounts_service.web import urls as web_urls
from billing import urls as billing_urls
from billing.invoices import invoice_generate
from billing.selectors import period_start
from broker_gateway import urls as fleet_urls
from operators.models import SigningKey

pytestmark = pytest.mark.django_db

# Routes that hold no tenant object: they are reached by everyone (sign-up, links from mails, lists of
# one's own things) and are covered by their own tests.
PUBLIC_PARAMS = {"uidb64", "token"}


def _patterns(patterns, prefix=""):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from _patterns(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern), entry.name, list(entry.pattern.converters)


def routes_with_ids() -> list[tuple[str, str, list[str]]]:
    found = [*_patterns(web_urls.urlpatterns), *_patterns(fleet_urls.web_urlpatterns),
             *_patterns(billing_urls.urlpatterns)]
    return [r for r in found if r[2] and not set(r[2]) & PUBLIC_PARAMS]


@pytest.fixture
def world(operator_setup):
    User = get_user_model()
    victim = User.objects.create_user(username="victim@example.com", email="victim@example.com", password="v pass 9!x")
    attacker = User.objects.create_user(username="eve@example.com", email="eve@example.com", password="e pass 9!x")
    v_team = team_create(name="Victim Co", actor=victim, default_account=True)
    a_team = team_create(name="Eve Co", actor=attacker, default_account=True)
    v_account, a_account = Account.objects.get(team=v_team), Account.objects.get(team=a_team)
    v_user = services.user_create(actor=PLATFORM, account=v_account, name="svc")
    services.user_create(actor=PLATFORM, account=a_account, name="mine")
    v_export = services.export_create(actor=PLATFORM,
                                      account=v_account, name="orders", subject="orders.>", type="stream",
                                      private=True)
    v_activation = services.activation_create(actor=PLATFORM, export=v_export, target_public_key=a_account.public_key)
    services.export_create(actor=PLATFORM, account=a_account, name="public", subject="pub.>", type="stream")
    v_import = services.import_create(actor=PLATFORM,
                                      account=v_account, exporter_public_key=a_account.public_key, subject="pub.>")
    v_invitation = invitation_create(team=v_team, email="friend@example.com", role="member", actor=victim,
                                     base_url="http://testserver")
    v_token, _ = services.api_token_create(actor=PLATFORM, user=victim, name="victim's")
    v_invoice, _ = invoice_generate(team=v_team, start=period_start())
    foreign = {
        "pk": v_account.public_key, "account_pk": v_account.public_key, "upk": v_user.public_key,
        "slug": v_team.slug, "membership_id": TeamMembership.objects.get(team=v_team, user=victim).pk,
        "invitation_id": v_invitation.pk, "token_id": v_token.pk, "export_id": v_export.pk,
        "import_id": v_import.pk, "activation_id": v_activation.pk,
        "key": SigningKey.objects.filter(owner_public_key=v_account.public_key).first().public_key,
        "number": v_invoice.number, "fmt": "csv", "name": "pro",
    }
    own = {"pk": a_account.public_key, "slug": a_team.slug}
    return {"attacker": attacker, "foreign": foreign, "own": own, "victim_account": v_account}


def _snapshot(account: Account) -> tuple:
    account.refresh_from_db()
    return (
        account.name, account.version, account.jwt,
        list(NatsUser.objects.filter(account=account).values_list("public_key", "revoked_at")),
        account.account_exports.count(), account.account_imports.count(),
        list(account.account_exports.values_list("activations__revoked_at", flat=True)),
        list(SigningKey.objects.filter(owner_public_key=account.public_key).values_list("public_key", flat=True)),
        TeamMembership.objects.filter(team=account.team).count(),
        Invitation.objects.filter(team=account.team, revoked_at__isnull=True).count(),
        ApiToken.objects.filter(revoked_at__isnull=True).count(),
        AuditEvent.objects.filter(team=account.team).count(),
    )


def _fill(route: str, values: dict) -> str:
    for name, value in values.items():
        for conv in ("str", "int", "slug"):
            route = route.replace(f"<{conv}:{name}>", str(value))
    assert "<" not in route, f"{route}: add its parameter to the isolation test's id map"
    return "/" + route


def test_every_web_route_with_ids_is_covered():
    names = {param for _, _, params in routes_with_ids() for param in params}
    known = {"pk", "account_pk", "upk", "slug", "membership_id", "invitation_id", "token_id", "export_id",
             "import_id", "activation_id", "key", "number", "fmt", "name"}
    assert names <= known, f"new id parameters {names - known}: add them to the world fixture"
    assert len(routes_with_ids()) >= 15


def test_another_teams_ids_are_404_on_every_web_route(client, world):
    client.force_login(world["attacker"])
    before = _snapshot(world["victim_account"])
    checked = []
    for route, name, params in routes_with_ids():
        variants = [world["foreign"]]
        for parent in ("pk", "slug"):  # the caller's own account or team, with the victim's child ids
            # (a plan's ``name`` is no team's: the caller's own account with it is the caller's own page)
            if parent in params and set(params) - {parent, "name"}:
                variants.append({**world["foreign"], parent: world["own"][parent]})
        for values in variants:
            url = _fill(route, values)
            get, post = client.get(url).status_code, client.post(url, {"confirm": "default"}).status_code
            assert {get, post} <= {404, 405} and 404 in {get, post}, f"{name} {url}: GET {get}, POST {post}"
            checked.append(name)
    assert _snapshot(world["victim_account"]) == before
    assert len(checked) >= 15
