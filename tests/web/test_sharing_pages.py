"""Web sharing pages: exports and activations, imports with and without a token, the catalog, tenant isolation."""

from __future__ import annotations

import re
from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth import get_user_model

from accounts_service import services
from accounts_service.models import Account, Activation, Export, Import, Team
from accounts_service.rights import PLATFORM
from accounts_service.services import team_create
from operators import claims

pytestmark = pytest.mark.django_db


def _person(email: str):
    # No password: the tests log in with force_login, and hashing one costs more than the rest of a test.
    return get_user_model().objects.create_user(username=email, email=email)


@pytest.fixture
def alice(operator_setup):
    return _person("alice@example.com")


@pytest.fixture
def bob(operator_setup):
    return _person("bob@example.com")


@pytest.fixture
def acme(alice) -> Team:
    return team_create(name="Acme", actor=alice, default_account=True)


@pytest.fixture
def globex(bob) -> Team:
    return team_create(name="Globex", actor=bob, default_account=True)


@pytest.fixture
def acme_account(acme) -> Account:
    return Account.objects.get(team=acme)


@pytest.fixture
def globex_account(globex) -> Account:
    return Account.objects.get(team=globex)


@pytest.fixture
def alice_client(client, alice):
    client.force_login(alice)
    return client


def _export_form(**overrides) -> dict:
    data = {"name": "orders", "subject": "orders.>", "type": "stream", "response_type": "Singleton",
            "account_token_position": "0", "description": ""}
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def _nats(account: Account) -> dict:
    account.refresh_from_db()
    return claims.decode(account.jwt, expected_type=claims.ACCOUNT).nats


# ------------------------------------------------------------------------------------------------
# Exports
# ------------------------------------------------------------------------------------------------


def test_create_a_stream_and_a_service_export_through_the_page(alice_client, acme_account):
    url = f"/accounts/{acme_account.public_key}/exports/"
    assert alice_client.get(url).status_code == 200
    version = acme_account.version

    response = alice_client.post(url, _export_form(description="every order", advertise="on"))
    stream = Export.objects.get(account=acme_account, name="orders")
    assert response.status_code == 302 and response["Location"] == f"{url}#export-{stream.pk}"
    assert (stream.type, stream.subject, stream.token_req, stream.advertise) == ("stream", "orders.>", False, True)

    response = alice_client.post(url, _export_form(name="quotes", subject="quotes.*", type="service",
                                                   response_type="Stream", account_token_position="2",
                                                   private="on"))
    assert response.status_code == 302
    service = Export.objects.get(account=acme_account, name="quotes")
    assert (service.type, service.response_type, service.account_token_position, service.token_req) == (
        "service", "Stream", 2, True)

    exported = {e["subject"]: e for e in _nats(acme_account)["exports"]}
    assert exported["quotes.*"]["type"] == "service" and exported["quotes.*"]["token_req"] is True
    assert exported["orders.>"]["advertise"] is True
    acme_account.refresh_from_db()
    assert acme_account.version > version

    page = alice_client.get(url).content.decode()
    assert "orders.&gt;" in page and "quotes.*" in page and "every order" in page
    assert "Issue activation" in page and "advertised" in page and "private" in page


def test_bad_export_input_is_a_field_error_and_creates_nothing(alice_client, acme_account):
    url = f"/accounts/{acme_account.public_key}/exports/"
    version = Account.objects.get(pk=acme_account.pk).version
    for data, message in [
        (_export_form(subject="orders..bad"), "subject"),
        (_export_form(subject="a b"), "subject"),
        (_export_form(subject=""), "This field is required"),
        (_export_form(name="x", subject="quotes.*", type="service", account_token_position="1"),
         "account_token_position must point at"),
        (_export_form(type="queue"), "Select a valid choice"),
        (_export_form(account_token_position="-1"), "greater than or equal to 0"),
    ]:
        response = alice_client.post(url, data)
        assert response.status_code == 200, data
        assert b"errorlist" in response.content and message.encode() in response.content, data
    assert not Export.objects.filter(account=acme_account).exists()
    assert Account.objects.get(pk=acme_account.pk).version == version

    alice_client.post(url, _export_form())
    dup = alice_client.post(url, _export_form(subject="orders.new.>"))
    assert b"an export named" in dup.content
    overlap = alice_client.post(url, _export_form(name="other", subject="orders.eu"))
    assert b"overlaps" in overlap.content
    assert Export.objects.filter(account=acme_account).count() == 1


def test_delete_export_is_post_only_and_drops_its_importers(alice_client, acme_account, globex_account):
    export = services.export_create(actor=PLATFORM,
                                    account=acme_account, name="orders", subject="orders.>", type="stream")
    services.import_create(actor=PLATFORM,
                           account=globex_account, exporter_public_key=acme_account.public_key, subject="orders.>")
    url = f"/accounts/{acme_account.public_key}/exports/{export.pk}/delete"
    assert alice_client.get(url).status_code == 405
    assert b"1 importing account will lose it" in alice_client.get(
        f"/accounts/{acme_account.public_key}/exports/").content
    response = alice_client.post(url)
    assert response.status_code == 302 and response["Location"] == f"/accounts/{acme_account.public_key}/exports/"
    assert not Export.objects.filter(pk=export.pk).exists()
    assert not Import.objects.filter(account=globex_account).exists()
    assert _nats(globex_account).get("imports") in (None, [])


# ------------------------------------------------------------------------------------------------
# Activations and imports
# ------------------------------------------------------------------------------------------------


def test_private_export_activation_then_another_team_imports_it_with_the_token(
    client, alice, bob, acme_account, globex_account,
):
    client.force_login(alice)
    exports_url = f"/accounts/{acme_account.public_key}/exports/"
    client.post(exports_url, _export_form(name="ledger", subject="ledger.>", private="on"))
    export = Export.objects.get(account=acme_account, name="ledger")

    act_url = f"/accounts/{acme_account.public_key}/exports/{export.pk}/activations/"
    assert client.get(act_url).status_code == 200
    bad = client.post(act_url, {"target": "not-a-key"})
    assert bad.status_code == 200 and b"errorlist" in bad.content and not Activation.objects.exists()
    outside = client.post(act_url, {"target": globex_account.public_key, "subject": "other.>"})
    assert b"is not within the export" in outside.content and not Activation.objects.exists()

    response = client.post(act_url, {"target": globex_account.public_key, "subject": "ledger.eu.>"})
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    activation = Activation.objects.get(export=export)
    page = response.content.decode()
    assert activation.token in page and 'data-copy="#activation-token"' in page
    token = re.search(r'<pre id="activation-token"[^>]*>([^<]+)</pre>', page).group(1).strip()
    listing = client.get(exports_url).content.decode()
    assert globex_account.public_key in listing and "ledger.eu.&gt;" in listing and activation.token not in listing

    # The other team imports it through its own imports page.
    client.force_login(bob)
    imports_url = f"/accounts/{globex_account.public_key}/imports/"
    missing = client.post(imports_url, {"from": acme_account.public_key, "subject": "ledger.eu.>"})
    assert b"an activation token is required" in missing.content
    wider = client.post(imports_url, {"from": acme_account.public_key, "subject": "ledger.>", "token": token})
    assert b"does not cover this subject" in wider.content
    assert not Import.objects.exists()

    response = client.post(imports_url, {"from": acme_account.public_key, "subject": "ledger.eu.>",
                                          "local_subject": "acme.ledger.>", "token": token, "name": "acme ledger"})
    imp = Import.objects.get(account=globex_account)
    assert response.status_code == 302 and response["Location"] == f"{imports_url}#import-{imp.pk}"
    page = client.get(imports_url).content.decode()
    assert "acme ledger" in page and acme_account.public_key[:13] in page and acme_account.name in page
    assert "acme.ledger.&gt;" in page and "private" in page

    imported = _nats(globex_account)["imports"]
    assert len(imported) == 1
    assert imported[0]["account"] == acme_account.public_key and imported[0]["subject"] == "ledger.eu.>"
    assert imported[0]["local_subject"] == "acme.ledger.>" and imported[0]["token"] == token
    assert imported[0]["type"] == "stream"

    # The exporter revokes the activation: the export's revocations name the importer.
    client.force_login(alice)
    revoke_url = f"/accounts/{acme_account.public_key}/exports/{export.pk}/activations/{activation.pk}/revoke"
    assert client.get(revoke_url).status_code == 405
    assert client.post(revoke_url).status_code == 302
    assert Activation.objects.get(pk=activation.pk).revoked_at is not None
    (exported,) = _nats(acme_account)["exports"]
    assert globex_account.public_key in exported["revocations"]


def test_public_import_and_delete(client, bob, acme_account, globex_account):
    services.export_create(actor=PLATFORM, account=acme_account, name="orders", subject="orders.>", type="stream")
    client.force_login(bob)
    url = f"/accounts/{globex_account.public_key}/imports/"
    bad = client.post(url, {"from": "AAAA", "subject": "orders.>"})
    assert bad.status_code == 200 and b"errorlist" in bad.content
    nothing = client.post(url, {"from": acme_account.public_key, "subject": "nothing.here"})
    assert b"exports nothing covering" in nothing.content
    assert not Import.objects.exists()

    assert client.post(url, {"from": acme_account.public_key, "subject": "orders.>"}).status_code == 302
    imp = Import.objects.get(account=globex_account)
    assert (imp.name, imp.local_subject, imp.token) == ("orders.>", "orders.>", "")
    delete_url = f"{url}{imp.pk}/delete"
    assert client.get(delete_url).status_code == 405
    assert client.post(delete_url).status_code == 302
    assert not Import.objects.exists()


def test_imports_form_is_prefilled_from_query_params(alice_client, acme_account, globex_account):
    url = f"/accounts/{acme_account.public_key}/imports/?from={globex_account.public_key}&subject=pub.x&name=feed"
    page = alice_client.get(url).content.decode()
    assert f'value="{globex_account.public_key}"' in page and 'value="pub.x"' in page and 'value="feed"' in page


# ------------------------------------------------------------------------------------------------
# Catalog
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def listed(acme_account, globex_account):
    """Globex advertises a public stream and a private service, and has one unadvertised export."""
    return {
        "public": services.export_create(actor=PLATFORM,
                                         account=globex_account, name="weather", subject="weather.>", type="stream",
                                         advertise=True, description="hourly forecasts"),
        "private": services.export_create(actor=PLATFORM, account=globex_account, name="pricing", subject="pricing.*",
                                          type="service", private=True, advertise=True, account_token_position=2),
        "hidden": services.export_create(actor=PLATFORM, account=globex_account, name="internal", subject="internal.>",
                                         type="stream"),
    }


def test_catalog_lists_advertised_exports_of_other_teams_only(alice_client, acme_account, globex_account, listed):
    system = Account.objects.get(is_system=True)
    services.export_create(actor=PLATFORM,
                           account=system, name="sys", subject="sysfeed.>", type="stream", advertise=True)
    page = alice_client.get("/catalog/").content.decode()
    assert "weather" in page and "hourly forecasts" in page and "pricing" in page
    assert "internal" not in page and "sysfeed" not in page
    assert globex_account.public_key in page and globex_account.name in page
    assert "bob@example.com" not in page  # the exporter's people stay private
    assert "team <strong>Globex" in page  # every export is attributed to its team (only the platform's are "platform")
    assert "private: ask the owner for an activation" in page
    assert f'<option value="{acme_account.public_key}"' in page
    assert 'data-copy' not in page


def test_catalog_search_and_pagination_without_n_plus_one(alice_client, globex_account, listed,
                                                          django_assert_max_num_queries):
    page = alice_client.get("/catalog/?q=forecast").content.decode()
    assert "weather" in page and "pricing" not in page
    assert "pricing" in alice_client.get("/catalog/?q=PRICING").content.decode()
    assert "No advertised export matches" in alice_client.get("/catalog/?q=nope").content.decode()

    # 30 more across several accounts (a free account allows 25 exports): the query count does not grow.
    feeds = [services.account_create(actor=PLATFORM, team=globex_account.team, name=f"feeds {k}") for k in range(3)]
    for n in range(30):
        services.export_create(actor=PLATFORM,
                               account=feeds[n % 3], name=f"feed {n:02d}", subject=f"feed{n}.>", type="stream",
                               advertise=True)
    with django_assert_max_num_queries(8):
        first = alice_client.get("/catalog/").content.decode()
    assert "page 1 of 2" in first and "32 exports" in first
    second = alice_client.get("/catalog/?page=2").content.decode()
    assert second.count('<tr id="catalog-') == 32 - 25
    assert "page 1 of 2" in alice_client.get("/catalog/?q=feed").content.decode()


def test_import_into_from_the_catalog_prefills_the_import_form(alice_client, acme_account, globex_account, listed):
    response = alice_client.get(f"/catalog/import?export={listed['private'].pk}&account={acme_account.public_key}")
    assert response.status_code == 302
    target = urlsplit(response["Location"])
    assert target.path == f"/accounts/{acme_account.public_key}/imports/"
    query = parse_qs(target.query)
    # The account token position is filled with the importer's own key.
    assert query == {"from": [globex_account.public_key], "subject": [f"pricing.{acme_account.public_key}"],
                     "name": ["pricing"]}
    page = unescape(alice_client.get(response["Location"]).content.decode())
    assert f'value="pricing.{acme_account.public_key}"' in page and "Pre-filled from the catalog" in page

    hidden = f"/catalog/import?export={listed['hidden'].pk}&account={acme_account.public_key}"
    assert alice_client.get(hidden).status_code == 404
    foreign = f"/catalog/import?export={listed['public'].pk}&account={globex_account.public_key}"
    assert alice_client.get(foreign).status_code == 404


# ------------------------------------------------------------------------------------------------
# Isolation and methods
# ------------------------------------------------------------------------------------------------


def test_another_teams_sharing_pages_are_404(alice_client, acme_account, globex_account):
    export = services.export_create(actor=PLATFORM,
                                    account=globex_account, name="ledger", subject="ledger.>", type="stream",
                                    private=True)
    activation = services.activation_create(actor=PLATFORM, export=export, target_public_key=acme_account.public_key)
    services.export_create(actor=PLATFORM, account=acme_account, name="mine", subject="mine.>", type="stream")
    imp = services.import_create(actor=PLATFORM, account=globex_account, exporter_public_key=acme_account.public_key,
                                 subject="mine.>")
    g = globex_account.public_key
    version = Account.objects.get(pk=globex_account.pk).version
    form = {"name": "x", "subject": "x.>", "type": "stream", "target": g, "from": g}
    for url in [f"/accounts/{g}/exports/", f"/accounts/{g}/imports/",
                f"/accounts/{g}/exports/{export.pk}/activations/"]:
        assert alice_client.get(url).status_code == 404, url
        assert alice_client.post(url, form).status_code == 404, url
    for url in [f"/accounts/{g}/exports/{export.pk}/delete", f"/accounts/{g}/imports/{imp.pk}/delete",
                f"/accounts/{g}/exports/{export.pk}/activations/{activation.pk}/revoke"]:
        assert alice_client.post(url).status_code == 404, url
    # Another account's export or import under one's own account is a 404 too.
    a = acme_account.public_key
    for url in [f"/accounts/{a}/exports/{export.pk}/delete", f"/accounts/{a}/imports/{imp.pk}/delete",
                f"/accounts/{a}/exports/{export.pk}/activations/{activation.pk}/revoke"]:
        assert alice_client.post(url).status_code == 404, url
    assert alice_client.get(f"/accounts/{a}/exports/{export.pk}/activations/").status_code == 404
    assert Export.objects.filter(pk=export.pk).exists() and Import.objects.filter(pk=imp.pk).exists()
    assert Activation.objects.get(pk=activation.pk).revoked_at is None
    assert Account.objects.get(pk=globex_account.pk).version == version


def test_pages_need_a_login(client, acme_account):
    for url in [f"/accounts/{acme_account.public_key}/exports/", f"/accounts/{acme_account.public_key}/imports/",
                "/catalog/"]:
        response = client.get(url)
        assert response.status_code == 302 and "/login/" in response["Location"], url


def test_catalog_link_in_the_nav(alice_client, acme_account):
    page = alice_client.get(f"/accounts/{acme_account.public_key}/imports/").content.decode()
    assert 'href="/catalog/"' in page and 'class="active"' in page


def test_the_import_form_refuses_another_accounts_key_in_the_token_position(client, bob, acme_account,
                                                                            globex_account):
    services.export_create(actor=PLATFORM, account=acme_account, name="per-account", subject="data.*.feed",
                           type="stream", account_token_position=2)
    client.force_login(bob)
    url = f"/accounts/{globex_account.public_key}/imports/"
    page = client.post(url, {"from": acme_account.public_key, "subject": f"data.{acme_account.public_key}.feed"})
    assert page.status_code == 200
    assert f"import &#x27;data.{globex_account.public_key}.feed&#x27;".encode() in page.content  # what to do instead
    assert not Import.objects.exists()


def test_a_token_position_export_says_its_activations_are_not_enforced(client, alice, acme_account, globex_account):
    export = services.export_create(actor=PLATFORM, account=acme_account, name="q", subject="quote.*",
                                    type="service", private=True, account_token_position=2)
    activation = services.activation_create(actor=PLATFORM, export=export,
                                            target_public_key=globex_account.public_key)
    client.force_login(alice)
    page = client.get(f"/accounts/{acme_account.public_key}/exports/").content.decode()
    assert "not enforced: token position 2" in page and "private export without a token position" in page
    revoke_url = f"/accounts/{acme_account.public_key}/exports/{export.pk}/activations/{activation.pk}/revoke"
    assert f'action="{revoke_url}"' not in page
    followed = client.post(revoke_url, follow=True).content.decode()
    assert "a revocation would change nothing" in unescape(followed)
    assert Activation.objects.get(pk=activation.pk).revoked_at is None
    form_url = f"/accounts/{acme_account.public_key}/exports/{export.pk}/activations/"
    form = client.get(form_url)
    assert form.status_code == 200 and 'id="token-position-note"' in form.content.decode()
    refused = client.post(form_url, {"target": globex_account.public_key, "expires_at": "2099-01-01T00:00"})
    assert "would not be enforced" in unescape(refused.content.decode())
