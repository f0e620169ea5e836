"""What nats-server enforces of an activation: its revocation on a private export, nothing with a token position.

With an account token position the server checks only the importer's key in that token (server/accounts.go,
``Account.checkAuth``) and never reads the activation, which is why the services refuse a revocation or an
expiry there. Real server, no mocks, no fixed sleeps.
"""

from __future__ import annotations

import asyncio

import nats.errors
import pytest
from django.utils import timezone

from accounts_service.models import Account, Activation
from accounts_service.rights import PLATFORM
from accounts_service.services import account_create as _account_create
from accounts_service.services import (
    account_resign,
    activation_create,
    activation_revoke,
    export_create,
    import_create,
    user_create,
    user_creds_get,
)
from core.errors import ApplicationError
from operators import claims
from tests.integration.test_nats_trust_chain import (
    DEADLINE,
    REQUEST_TIMEOUT,
    close_all,
    echo_responder,
    open_conn,
    push,
    run,
)

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]


def _accounts(team, other_team):
    return (_account_create(actor=PLATFORM, team=team, name="exporter"),
            _account_create(actor=PLATFORM, team=other_team, name="importer"))


def _creds(exporter, importer, pub: str) -> tuple[str, str]:
    svc = user_create(actor=PLATFORM, account=exporter, name="svc", sub_allow=["quote.>"], allow_responses=True)
    cli = user_create(actor=PLATFORM, account=importer, name="cli", pub_allow=[pub], sub_allow=["_INBOX.>"])
    return user_creds_get(user=svc), user_creds_get(user=cli)


async def _answered(cli, subject: str) -> bool:
    try:
        return (await cli.nc.request(subject, b"x", timeout=REQUEST_TIMEOUT)).data == b"echo:x"
    except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
        return False


async def _served(url: str, svc_creds: str, cli_creds: str, expected: bool) -> None:
    """Until the importer's request of quote.get is answered by the exporter's responder (``expected``) or not."""
    svc = await open_conn(url, svc_creds, name="svc")
    cli = await open_conn(url, cli_creds, name="cli")
    try:
        await echo_responder(svc, "quote.get")
        deadline = asyncio.get_running_loop().time() + DEADLINE
        while await _answered(cli, "quote.get") != expected:  # each try waits for its reply: no sleep
            assert asyncio.get_running_loop().time() < deadline, f"served should be {expected}"
    finally:
        await close_all(svc, cli)


def test_revoking_an_activation_of_a_private_export_cuts_the_importer_off(nats_server, team, other_team):
    url = nats_server.url
    exporter, importer = _accounts(team, other_team)
    export = export_create(actor=PLATFORM, account=exporter, name="q", subject="quote.get", type="service",
                           private=True)
    act = activation_create(actor=PLATFORM, export=export, target_public_key=importer.public_key)
    import_create(actor=PLATFORM, account=importer, exporter_public_key=exporter.public_key, subject="quote.get",
                  token=act.token)
    push(exporter, url)
    push(importer, url)
    svc_creds, cli_creds = _creds(exporter, importer, "quote.get")

    run(lambda: _served(url, svc_creds, cli_creds, True))
    activation_revoke(actor=PLATFORM, activation=act)
    # The exporter's new JWT lists the importer in the export's revocations: the server unwires the import.
    assert importer.public_key in claims.decode(Account.objects.get(pk=exporter.pk).jwt).nats["exports"][0][
        "revocations"]
    push(exporter, url)
    run(lambda: _served(url, svc_creds, cli_creds, False))


def test_with_a_token_position_the_server_ignores_the_activation(nats_server, team, other_team):
    url = nats_server.url
    exporter, importer = _accounts(team, other_team)
    export = export_create(actor=PLATFORM, account=exporter, name="q", subject="quote.*", type="service",
                           private=True, account_token_position=2)
    own = f"quote.{importer.public_key}"
    # No token needed (the server would not read it) ...
    import_create(actor=PLATFORM, account=importer, exporter_public_key=exporter.public_key, subject=own)
    push(exporter, url)
    push(importer, url)
    # ... and what we refuse, since no server would enforce it.
    with pytest.raises(ApplicationError, match="would not be enforced") as refused:
        activation_create(actor=PLATFORM, export=export, target_public_key=importer.public_key,
                          expires_at=timezone.now() + timezone.timedelta(hours=1))
    assert refused.value.code == "activation_not_enforced"
    act = activation_create(actor=PLATFORM, export=export, target_public_key=importer.public_key)
    with pytest.raises(ApplicationError, match="a revocation would change nothing") as refused:
        activation_revoke(actor=PLATFORM, activation=act)
    assert refused.value.code == "activation_not_enforced"
    svc_creds, cli_creds = _creds(exporter, importer, own)

    async def scenario() -> None:
        svc = await open_conn(url, svc_creds, name="svc")
        cli = await open_conn(url, cli_creds, name="cli")
        try:
            await echo_responder(svc, "quote.*")
            assert await _answered(cli, own)  # imported without any activation
        finally:
            await close_all(svc, cli)

    run(scenario)

    # What a revocation would have done: the exporter's JWT lists the importer in the export's revocations.
    Activation.objects.filter(pk=act.pk).update(revoked_at=timezone.now())
    exporter = account_resign(account=exporter)
    assert importer.public_key in claims.decode(exporter.jwt).nats["exports"][0]["revocations"]
    push(exporter, url)

    async def still_served() -> None:
        svc = await open_conn(url, svc_creds, name="svc")
        cli = await open_conn(url, cli_creds, name="cli")
        try:
            await echo_responder(svc, "quote.*")
            assert await _answered(cli, own)  # the server never read the revocation
        finally:
            await close_all(svc, cli)

    run(still_served)


def test_revoking_an_activation_through_the_api_cuts_the_importer_off(nats_server, team, other_team):
    """``POST .../activations/{id}/revoke`` re-signs the exporter; the pushed JWT stops a real importer."""
    from django.contrib.auth import get_user_model
    from rest_framework.test import APIClient

    from accounts_service.services import api_token_create, team_member_add

    url = nats_server.url
    exporter, importer = _accounts(team, other_team)
    owner = get_user_model().objects.create_user(username="ops", password="pw-ops-12345")
    team_member_add(team=team, user=owner, role="owner")
    _, token = api_token_create(actor=PLATFORM, user=owner)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    export = export_create(actor=PLATFORM, account=exporter, name="q", subject="quote.get", type="service",
                           private=True)
    base = f"/api/v1/accounts/{exporter.public_key}/exports/{export.pk}/activations/"
    created = api.post(base, {"target": importer.public_key}, format="json")
    assert created.status_code == 201, created.content
    import_create(actor=PLATFORM, account=importer, exporter_public_key=exporter.public_key, subject="quote.get",
                  token=created.json()["token"])
    push(exporter, url)
    push(importer, url)
    svc_creds, cli_creds = _creds(exporter, importer, "quote.get")

    run(lambda: _served(url, svc_creds, cli_creds, True))
    revoked = api.post(f"{base}{created.json()['id']}/revoke")
    assert revoked.status_code == 200, revoked.content
    push(exporter, url)  # (the fleet's push task in production; this server is not a fleet node)
    run(lambda: _served(url, svc_creds, cli_creds, False))
