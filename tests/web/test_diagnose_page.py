"""The /diagnose/ page: paste creds or pick a user, a checklist with the cause first; the seed is never rendered;
another team's creds are the same "not yours" as unknown ones."""

from __future__ import annotations

import pytest

from accounts_service import services
from accounts_service.models import Account
from accounts_service.rights import PLATFORM
from operators import creds as creds_mod
from tests.web.conftest import person

pytestmark = pytest.mark.django_db


@pytest.fixture
def app_user(shared):
    account = Account.objects.filter(team=shared).first()
    return services.user_create(actor=PLATFORM, account=account, name="app", pub_allow=["orders.>"])


def test_pasted_creds_give_a_checklist_without_the_seed(owner_client, app_user):
    text = services.user_creds_get(user=app_user)
    r = owner_client.post("/diagnose/", {"creds": text, "subject": "billing.x", "action": "pub"})
    assert r.status_code == 200 and r["Cache-Control"] == "no-store"
    page = r.content.decode()
    assert creds_mod.parse_creds(text).seed not in page and "BEGIN USER NKEY SEED" not in page
    assert "Refused" in page and "matches none of the allow rules" in page
    # the cause is the first row of the checklist
    assert page.index("permission</code>") < page.index("issuer</code>")


def test_pick_a_user_and_the_links(owner_client, app_user):
    account = app_user.account
    page = owner_client.get(f"/accounts/{account.public_key}/").content.decode()
    assert f"/diagnose/?user={account.public_key}:{app_user.public_key}" in page
    assert "/diagnose/" in owner_client.get("/connect/").content.decode()
    r = owner_client.post("/diagnose/", {"pick": f"{account.public_key}:{app_user.public_key}"})
    assert r.status_code == 200 and "Should connect" in r.content.decode()


def test_another_teams_creds_are_not_yours(client, app_user):
    text = services.user_creds_get(user=app_user)
    mallory = person("mallory@example.com")
    services.team_create(name="Globex", actor=mallory)
    client.force_login(mallory)
    r = client.post("/diagnose/", {"creds": text})
    assert r.status_code == 404 and "no account of yours" in r.content.decode()
    assert app_user.public_key not in r.content.decode() and app_user.account.public_key not in r.content.decode()
    # a pick of another team's user is not even a choice
    r = client.post("/diagnose/", {"pick": f"{app_user.account.public_key}:{app_user.public_key}"})
    assert r.status_code == 400
