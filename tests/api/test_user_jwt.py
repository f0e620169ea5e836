"""A user created from the tenant's own public key gets its JWT (API, web, CLI) and a .creds template to complete
with its seed; the creds refusal says where the JWT is. Normal users get their JWT too. Audited, never cached."""

from __future__ import annotations

import io
import subprocess

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from accounts_service import services
from accounts_service.models import AuditEvent
from accounts_service.rights import PLATFORM
from operators import creds, nkeys
from operators.nkeys import KeyType
from tests.api.routes import token_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def byo(operator_setup):
    owner = get_user_model().objects.create_user(username="alice", password="pw-alice-123")
    team = services.team_create(name="acme", actor=owner)
    account = services.account_create(actor=PLATFORM, team=team, name="shop")
    key = nkeys.generate(KeyType.USER)
    user = services.user_create(actor=owner, account=account, name="edge", public_key=key.public_key,
                                pub_allow=["orders.>"])
    return owner, account, user, key


def _base(account, user) -> str:
    return f"/api/v1/accounts/{account.public_key}/users/{user.public_key}"


def test_creds_refusal_names_the_jwt_route(byo):
    owner, account, user, _ = byo
    response = token_client(owner).get(f"{_base(account, user)}/creds")
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "creds_seed_unknown"
    assert f"{_base(account, user)}/jwt" in body["message"] and body["extra"]["jwt"] == f"{_base(account, user)}/jwt"
    assert "pair the user JWT with your seed" not in body["message"]  # no more dead end


def test_api_gives_the_jwt_as_text_audited_and_not_cached(byo):
    owner, account, user, _ = byo
    client = token_client(owner)
    assert client.get(f"{_base(account, user)}/").json()["jwt_url"] == f"{_base(account, user)}/jwt"
    response = client.get(f"{_base(account, user)}/jwt")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain") and response["Cache-Control"] == "no-store"
    user.refresh_from_db()
    assert response.content.decode().strip() == user.jwt
    event = AuditEvent.objects.get(action=AuditEvent.Action.JWT_DOWNLOAD, target=user.public_key)
    assert event.actor == owner and event.detail["via"] == "api" and event.detail["template"] is False


def test_the_creds_template_paired_with_the_seed_is_the_creds_file(byo, tmp_path):
    owner, account, user, key = byo
    template = token_client(owner).get(f"{_base(account, user)}/creds-template")
    assert template.status_code == 200 and template["Cache-Control"] == "no-store"
    text = template.content.decode()
    assert creds.SEED_PLACEHOLDER in text
    with pytest.raises(creds.CredsError):
        creds.parse_creds(text)  # unfilled, a client refuses it at once
    user.refresh_from_db()
    assert text.replace(creds.SEED_PLACEHOLDER, key.seed) == creds.format_creds(user.jwt, key.seed)
    # The one-liner we show does exactly that, in a real shell.
    pairing = services.user_creds_pairing(user=user)
    (tmp_path / pairing["template"]).write_text(text)
    (tmp_path / pairing["seed_file"]).write_text(key.seed + "\n")
    subprocess.run(["sh", "-c", pairing["command"]], cwd=tmp_path, check=True)
    built = (tmp_path / pairing["creds"]).read_text()
    assert creds.parse_creds(built).seed == key.seed and creds.parse_creds(built).jwt == user.jwt
    assert (tmp_path / pairing["creds"]).stat().st_mode & 0o077 == 0


def test_a_normal_user_gets_its_jwt_and_a_revoked_one_gets_a_409(byo):
    owner, account, _, _ = byo
    normal = services.user_create(actor=owner, account=account, name="app")
    client = token_client(owner)
    assert client.get(f"{_base(account, normal)}/jwt").content.decode().strip() == normal.jwt
    services.user_revoke(user=normal, actor=owner)
    response = client.get(f"{_base(account, normal)}/jwt")
    assert response.status_code == 409 and response.json()["code"] == "user_revoked"


def test_web_user_page_shows_the_jwt_template_and_command(client, byo):
    owner, account, user, _ = byo
    client.force_login(owner)
    account_page = client.get(f"/accounts/{account.public_key}/").content.decode()
    assert f"/accounts/{account.public_key}/users/{user.public_key}/#jwt" in account_page  # "Get its JWT"
    response = client.get(f"/accounts/{account.public_key}/users/{user.public_key}/")
    assert response["Cache-Control"] == "no-store"
    page = response.content.decode()
    user.refresh_from_db()
    assert user.jwt in page and 'data-copy="#user-jwt"' in page
    assert "PASTE-YOUR-USER-NKEY-SEED-HERE" in page and "umask 077" in page
    download = client.post(f"/accounts/{account.public_key}/users/{user.public_key}/jwt")
    assert download.status_code == 200 and download.content.decode().strip() == user.jwt
    assert 'filename="edge.jwt"' in download["Content-Disposition"]
    template = client.post(f"/accounts/{account.public_key}/users/{user.public_key}/creds-template")
    assert creds.SEED_PLACEHOLDER in template.content.decode()
    assert AuditEvent.objects.filter(action=AuditEvent.Action.JWT_DOWNLOAD, detail__via="web").count() == 3


def test_web_user_page_of_another_team_is_a_404(client, byo):
    _, account, user, _ = byo
    mallory = get_user_model().objects.create_user(username="mallory", password="pw-mallory-123")
    services.team_create(name="globex", actor=mallory)
    client.force_login(mallory)
    assert client.get(f"/accounts/{account.public_key}/users/{user.public_key}/").status_code == 404
    assert client.post(f"/accounts/{account.public_key}/users/{user.public_key}/jwt").status_code == 404


def test_cli_prints_and_writes_the_jwt_and_the_template(byo, tmp_path):
    _, account, user, _ = byo
    user.refresh_from_db()
    out = io.StringIO()
    call_command("user", "jwt", "--account", account.public_key, "--user", user.public_key, stdout=out)
    assert out.getvalue().strip() == user.jwt
    target = tmp_path / "edge.creds.template"
    out = io.StringIO()
    call_command("user", "jwt", "--account", account.public_key, "--user", user.public_key, "--template",
                 "--out", str(target), stdout=out)
    assert creds.SEED_PLACEHOLDER in target.read_text() and "sed" in out.getvalue()
    assert target.stat().st_mode & 0o077 == 0
    with pytest.raises(CommandError, match="/jwt"):
        call_command("user", "creds", "--account", account.public_key, "--user", user.public_key,
                     "--creds-out", str(tmp_path / "x.creds"), stdout=io.StringIO())
