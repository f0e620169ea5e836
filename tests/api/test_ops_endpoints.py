"""/readyz against a real Redis, and the OpenAPI schema with its locally served Swagger UI."""

from __future__ import annotations

import pytest
from django.utils import timezone

from accounts_service.rights import PLATFORM
from tests.fleet import start_redis
from tests.natsproc import free_port

pytestmark = pytest.mark.django_db


@pytest.fixture
def redis_server(tmp_path):
    server = start_redis(tmp_path / "redis")
    yield server
    server.stop()


def _healthy_node():
    from broker_gateway.models import BrokerNode
    from broker_gateway.nodes import node_add

    node = node_add(name="n1", ports={"client_port": free_port(), "cluster_port": free_port(),
                                      "monitoring_port": free_port(), "leafnode_port": free_port()})
    BrokerNode.objects.filter(pk=node.pk).update(observed_state="healthy", last_healthy_at=timezone.now())


def test_readyz_is_ready_with_database_redis_and_a_healthy_node(client, settings, redis_server, operator_setup):
    settings.REDIS_URL = redis_server.url
    _healthy_node()
    response = client.get("/readyz")
    assert response.status_code == 200, response.json()
    assert response.json() == {"status": "ready", "checks": {"database": "ok", "redis": "ok",
                                                             "fleet": "1/1 nodes healthy"}}


def test_readyz_says_what_is_missing(client, settings, operator_setup):
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not ready" and body["checks"]["database"] == "ok"
    assert body["checks"]["redis"].startswith("error:")
    assert body["checks"]["fleet"] == "error: 0/0 nodes healthy"


def test_healthz_is_liveness_only(client):
    assert client.get("/healthz").json() == {"status": "ok"}


def test_openapi_schema_lists_the_v1_contract(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    paths = set(schema["paths"])
    for expected in ("/api/v1/accounts/", "/api/v1/accounts/{account_pk}/", "/api/v1/accounts/{account_pk}/jwt",
                     "/api/v1/accounts/{account_pk}/status", "/api/v1/accounts/{account_pk}/users/",
                     "/api/v1/accounts/{account_pk}/users/{user_pk}/creds",
                     "/api/v1/accounts/{account_pk}/exports/", "/api/v1/accounts/{account_pk}/imports/",
                     "/api/v1/fleet/nodes/", "/api/v1/connect"):
        assert expected in paths, sorted(paths)


def test_swagger_ui_is_served_without_a_cdn(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html and "drf_spectacular_sidecar" in html
    assert "cdn." not in html and "unpkg" not in html and "jsdelivr" not in html


@pytest.fixture
def token_client(operator_setup):
    from django.contrib.auth import get_user_model
    from rest_framework.test import APIClient

    from accounts_service import services

    owner = get_user_model().objects.create_user(username="erin", password="pw-erin-12345")
    client = APIClient()
    _, token = services.api_token_create(actor=PLATFORM, user=owner)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.mark.parametrize("query", ["offset=null", "limit=-1", "offset=-5", "limit=lots"])
def test_bad_pagination_is_a_400_not_ignored(token_client, query):
    response = token_client.get(f"/api/v1/accounts/?{query}")
    assert response.status_code == 400, response.content
    assert response.json()["message"] == "invalid input"


def test_unmatched_api_url_answers_json_404(token_client):
    response = token_client.get("/api/v1/accounts/AAAA/exports/not-a-number/")
    assert response.status_code == 404
    assert response.json() == {"message": "not found", "code": "not_found", "extra": {}}


def test_errors_on_text_routes_are_json(token_client):
    response = token_client.get("/api/v1/accounts/ABCD/jwt", HTTP_ACCEPT="text/plain")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert set(response.json()) == {"message", "code", "extra"}


def test_the_api_takes_json_only(token_client):
    response = token_client.post("/api/v1/accounts/", {"name": "shop"}, format="multipart")
    assert response.status_code == 415
    assert set(response.json()) == {"message", "code", "extra"}


def test_error_responses_are_documented(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    operation = schema["paths"]["/api/v1/accounts/{account_pk}/"]["patch"]
    assert {"400", "401", "403", "404", "409", "415", "429"} <= set(operation["responses"])
    assert schema["components"]["schemas"]["Error"]["required"] == ["message", "code", "extra"]


def test_favicon_is_served_not_a_404(client):
    from django.contrib.staticfiles import finders

    response = client.get("/favicon.ico")
    assert response.status_code == 301 and response["Location"].endswith("img/favicon.svg")
    assert finders.find("img/favicon.svg")  # the file the redirect names exists
    page = client.get("/login/").content.decode()
    assert 'rel="icon"' in page and "img/favicon.svg" in page


def test_a_host_header_django_refuses_is_the_apis_json_400(client, operator_setup):
    response = client.get("/api/v1/accounts/", HTTP_HOST="evil.example.com'#x")
    assert response.status_code == 400 and response["Content-Type"] == "application/json"
    assert response.json()["code"] == "invalid"
    assert client.get("/login/", HTTP_HOST="evil.example.com'#x").status_code == 400  # the web: Django's page
