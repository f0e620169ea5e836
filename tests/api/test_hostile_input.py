"""Input nats-server would ignore, reserved names and bad bodies are refused before anything is signed; each of
these was accepted before (issue: "Hostile tenants"). Web and CLI go through the same services."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from accounts_service import services
from accounts_service.models import Account, Export, Import
from accounts_service.rights import PLATFORM
from core.errors import ApplicationError
from tests.api.routes import member_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop(operator_setup, team) -> Account:
    services.usage_service_ensure()
    return services.account_create(actor=PLATFORM, team=team, name="shop", plan="free")


@pytest.fixture
def victim(operator_setup, other_team) -> Account:
    return services.account_create(actor=PLATFORM, team=other_team, name="victim")


def _refused(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["code"] == code, body
    return body


def test_an_import_with_another_accounts_key_in_the_token_position_is_refused(shop, victim, team):
    api = member_client("alice", team)
    version = Account.objects.get(pk=shop.pk).version
    usage = services.usage_export_get()
    body = {"exporter": usage.account.public_key, "subject": f"ngs.usage.{victim.public_key}"}
    refused = _refused(api.post(f"/api/v1/accounts/{shop.public_key}/imports/", body, format="json"), 400,
                       "account_token_mismatch")
    assert refused["extra"]["field"] == "subject"
    assert f"ngs.usage.{shop.public_key}" in refused["message"]  # says what to import instead
    assert Account.objects.get(pk=shop.pk).version == version
    assert not Import.objects.filter(account=shop, subject__endswith=victim.public_key).exists()


def test_a_tenant_export_with_a_token_position_admits_only_the_importers_key(shop, victim, team):
    feed = services.account_create(actor=PLATFORM, team=victim.team, name="feed")
    services.export_create(actor=PLATFORM, account=feed, name="per-account", subject="data.*.updates", type="stream",
                           account_token_position=2)
    api = member_client("alice", team)
    url = f"/api/v1/accounts/{shop.public_key}/imports/"
    _refused(api.post(url, {"exporter": feed.public_key, "subject": f"data.{victim.public_key}.updates"},
                      format="json"), 400, "account_token_mismatch")
    _refused(api.post(url, {"exporter": feed.public_key, "subject": "data.*.updates"}, format="json"), 400,
             "account_token_mismatch")
    ok = api.post(url, {"exporter": feed.public_key, "subject": f"data.{shop.public_key}.updates"}, format="json")
    assert ok.status_code == 201, ok.content


def test_the_cli_refuses_the_same_import(shop, victim):
    usage = services.usage_export_get()
    with pytest.raises(CommandError, match="own key in token 3"):
        call_command("import", "add", "--account", shop.public_key, "--from", usage.account.public_key,
                     "--subject", f"ngs.usage.{victim.public_key}", stdout=io.StringIO())


@pytest.mark.parametrize("subject", ["$SYS.>", "$SYS.REQ.ACCOUNT.*.CONNZ", "ngs.usage.*", "ngs.billing"])
def test_tenants_cannot_export_the_platforms_subjects(shop, team, subject):
    api = member_client("alice", team)
    body = {"name": "official usage", "subject": subject, "type": "service", "advertise": True}
    if "*" in subject:
        Account.objects.filter(pk=shop.pk).update(wildcard_exports=True)
    _refused(api.post(f"/api/v1/accounts/{shop.public_key}/exports/", body, format="json"), 400, "subject_reserved")
    assert not Export.objects.filter(account=shop).exists()


def test_a_deeply_nested_body_is_a_400_in_the_one_error_shape(shop, team):
    api = member_client("alice", team)
    body = "[" * 100_000 + "]" * 100_000
    response = api.generic("POST", "/api/v1/accounts/", body, content_type="application/json")
    assert response.status_code == 400, response.content[:200]
    assert response.json()["code"] == "parse_error" and "nested too deeply" in response.json()["message"]


@pytest.mark.parametrize("name", ["\u200b\u200b", "\u200d", "\ufeff", "pay\u202epal", "a\u2066b", "\u00ad"])
def test_invisible_and_bidi_names_are_refused_everywhere(shop, team, name):
    api = member_client("alice", team)
    count = Account.objects.count()
    response = api.post("/api/v1/accounts/", {"name": name}, format="json")
    assert response.status_code == 400, response.content
    assert Account.objects.count() == count
    with pytest.raises(ApplicationError, match=r"visible|bidirectional"):
        services.export_create(actor=PLATFORM, account=shop, name=name, subject="orders.new", type="stream")
    with pytest.raises(ApplicationError, match=r"visible|bidirectional"):
        services.team_create(name=name, actor=PLATFORM)


def test_a_name_may_hold_a_joiner_inside_visible_text(shop, team):
    api = member_client("alice", team)
    response = api.post("/api/v1/accounts/", {"name": "family \U0001F468\u200d\U0001F469"}, format="json")
    assert response.status_code == 201, response.content
    assert json.loads(response.content)["name"] == "family \U0001F468\u200d\U0001F469"
