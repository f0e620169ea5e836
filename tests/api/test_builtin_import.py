"""The platform's ngs.usage import is built in: shown as such and refused removal on the web, the API and the CLI
(a 409 ``import_builtin``); the account's other imports are removed as before."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from accounts_service import services
from accounts_service.models import AuditEvent, Import
from accounts_service.rights import PLATFORM
from tests.api.routes import token_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop(operator_setup):
    services.usage_service_ensure()  # the platform offers ngs.usage.*: new accounts import it
    owner = get_user_model().objects.create_user(username="alice", password="pw-alice-123")
    team = services.team_create(name="acme", actor=owner)
    account = services.account_create(actor=PLATFORM, team=team, name="shop")
    return owner, account


def _usage_import(account) -> Import:
    return Import.objects.select_related("export__account__team").get(account=account, local_subject="ngs.usage")


def test_the_usage_import_is_builtin_and_an_ordinary_one_is_not(shop):
    owner, account = shop
    feed = services.account_create(actor=PLATFORM, team=account.team, name="feed")
    services.export_create(actor=PLATFORM, account=feed, name="prices", subject="prices.>", type="stream")
    other = services.import_create(actor=PLATFORM, account=account, exporter_public_key=feed.public_key,
                                   subject="prices.>")
    assert services.import_is_builtin(_usage_import(account))
    assert not services.import_is_builtin(other)
    services.import_delete(imp=other, actor=owner)  # an ordinary import still goes
    assert not Import.objects.filter(pk=other.pk).exists()


def test_api_refuses_removing_the_usage_import_with_a_409_and_lists_it_as_builtin(shop):
    owner, account = shop
    imp = _usage_import(account)
    version = account.version
    client = token_client(owner)
    listed = client.get(f"/api/v1/accounts/{account.public_key}/imports/").json()["results"]
    assert [i["builtin"] for i in listed if i["local_subject"] == "ngs.usage"] == [True]
    response = client.delete(f"/api/v1/accounts/{account.public_key}/imports/{imp.pk}/")
    assert response.status_code == 409, response.content
    body = response.json()
    assert body["code"] == "import_builtin" and "built in" in body["message"]
    assert Import.objects.filter(pk=imp.pk).exists()
    account.refresh_from_db()
    assert account.version == version  # nothing re-signed
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.IMPORT_DELETE).exists()


def test_web_shows_the_badge_without_a_delete_button_and_refuses_the_post(client, shop):
    owner, account = shop
    imp = _usage_import(account)
    client.force_login(owner)
    page = client.get(f"/accounts/{account.public_key}/imports/").content.decode()
    row = page[page.index(f'id="import-{imp.pk}"'):]
    row = row[:row.index("</tr>")]
    assert "built-in" in row and "cannot be removed" in row
    assert "import_delete" not in row and f"/imports/{imp.pk}/delete" not in row
    response = client.post(f"/accounts/{account.public_key}/imports/{imp.pk}/delete", follow=True)
    assert "built in" in response.content.decode()
    assert Import.objects.filter(pk=imp.pk).exists()


def test_cli_lists_it_as_builtin_and_refuses_deleting_it(shop):
    _, account = shop
    imp = _usage_import(account)
    out = io.StringIO()
    call_command("import", "list", "--account", account.public_key, stdout=out)
    assert "(built-in)" in out.getvalue()
    with pytest.raises(CommandError, match="built in"):
        call_command("import", "delete", "--account", account.public_key, "--id", str(imp.pk), stdout=io.StringIO())
    assert Import.objects.filter(pk=imp.pk).exists()
