"""Fixtures of the API tests."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from accounts_service import services
from accounts_service.rights import PLATFORM
from billing.invoices import invoice_generate
from billing.selectors import period_start


@pytest.fixture(autouse=True)
def _leafnode_urls(settings):
    """A fleet address for leafnode configs: the route walks run without any BrokerNode (else a 503)."""
    settings.NATS_PUBLIC_LEAFNODE_URLS = ["nats-leaf://leaf.example.com:7422"]


@pytest.fixture
def first_team_objects(operator_setup):
    owner = get_user_model().objects.create_user(username="alice", email="alice@example.com", password="pw-alice-123")
    team = services.team_create(name="acme", actor=owner)
    account = services.account_create(actor=PLATFORM, team=team, name="shop")
    feed = services.account_create(actor=PLATFORM, team=team, name="feed")
    user = services.user_create(actor=PLATFORM, account=account, name="app", pub_allow=["orders.>"])
    export = services.export_create(actor=PLATFORM, account=feed, name="prices", subject="prices.>", type="stream",
                                    private=True)
    activation = services.activation_create(actor=PLATFORM, export=export, target_public_key=account.public_key)
    imp = services.import_create(actor=PLATFORM, account=account, exporter_public_key=feed.public_key,
                                 subject="prices.>", token=activation.token)
    services.account_plan_set(actor=PLATFORM, account=account, plan="free")
    invoice, _ = invoice_generate(team=team, start=period_start())
    token, _ = services.api_token_create(actor=PLATFORM, user=owner, name="ci")
    # An invitation mailed to the owner by another team: only the owner may accept it.
    inviter = get_user_model().objects.create_user(username="carol", email="carol@example.com", password="pw-carol-123")
    invitation = services.invitation_create(team=services.team_create(name="initech", actor=inviter), actor=inviter,
                                            email="alice@example.com", role="member", base_url="http://testserver")
    return {"owner": owner, "account_pk": account.public_key, "user_pk": user.public_key, "export_id": export.pk,
            "import_id": imp.pk, "export_account_pk": feed.public_key, "number": invoice.number,
            "activation_id": activation.pk, "team_id": team.pk, "member_id": team.memberships.get(user=owner).pk,
            "prefix": token.prefix, "invitation_id": invitation.pk}
