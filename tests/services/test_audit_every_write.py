"""Every write service appends one audit row, in its own transaction, with who, on what, and (for updates) only
what changed, before and after."""

from __future__ import annotations

from unittest import mock

import pytest
from django.contrib.auth import get_user_model

from accounts_service import services
from accounts_service.models import AuditEvent, Invitation
from accounts_service.rights import PLATFORM

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(operator_setup):
    owner = get_user_model().objects.create_user(username="alice", email="alice@example.com", password="pw-a-12345")
    team = services.team_create(name="acme", actor=owner)
    shop = services.account_create(actor=owner, team=team, name="shop")
    feed = services.account_create(actor=owner, team=team, name="feed")
    export = services.export_create(actor=owner, account=feed, name="q", subject="q.>", type="stream", private=True)
    activation = services.activation_create(actor=owner, export=export, target_public_key=shop.public_key)
    imp = services.import_create(actor=owner, account=shop, exporter_public_key=feed.public_key, subject="q.>",
                                 token=activation.token)
    user = services.user_create(actor=owner, account=shop, name="app", pub_allow=["a.>"])
    bob = get_user_model().objects.create_user(username="bob", email="bob@example.com", password="pw-b-12345")
    member = services.team_member_add(team=team, user=bob)
    return {"owner": owner, "team": team, "shop": shop, "feed": feed, "export": export, "activation": activation,
            "imp": imp, "user": user, "bob": bob, "member": member}


def _key_add(w):
    return services.account_signing_key_add(account=w["shop"], actor=w["owner"])


def _key_rotate(w):
    key = services.account_signing_key_add(account=w["shop"], actor=w["owner"])
    return services.account_signing_key_rotate(account=w["shop"], public_key=key.public_key, actor=w["owner"])


def _invite(w):
    return services.invitation_create(team=w["team"], email="carol@example.com", role="member", actor=w["owner"],
                                      base_url="http://t")


def _invite_revoke(w):
    services.invitation_revoke(invitation=_invite(w), actor=w["owner"])


def _join(w):
    carol = get_user_model().objects.create_user(username="carol", email="carol@example.com", password="pw-c-123456")
    invitation = _invite(w)
    with mock.patch("accounts_service.services.members._digest", return_value=invitation.digest):
        services.invitation_accept(token="x", actor=carol)


def _operator(w, slug="acme-ops"):
    from broker_gateway.node_operators import operator_create

    return operator_create(slug=slug, name="Acme Hosting", actor=PLATFORM)


def _member_add(w):
    from broker_gateway.node_operators import operator_member_add

    operator_member_add(operator=_operator(w), username="bob", actor=PLATFORM)


def _member_remove(w):
    from broker_gateway.node_operators import operator_member_add, operator_member_remove

    operator = operator_member_add(operator=_operator(w), username="bob", actor=PLATFORM)
    operator_member_remove(operator=operator, username="bob", actor=PLATFORM)


def _node_assign(w):
    from broker_gateway.node_operators import node_operator_assign
    from broker_gateway.nodes import node_add

    node = node_add(name="n1", ports={"client_port": 21000, "cluster_port": 21001, "monitoring_port": 21002,
                                      "leafnode_port": 21003, "gateway_port": 21004})
    node_operator_assign(node=node, operator=_operator(w), actor=PLATFORM)


def _payout(w):
    import datetime as dt

    from billing.models import Invoice, NodeUsageHour
    from payouts.services import payout_run

    nov, dec = dt.datetime(2026, 11, 1, tzinfo=dt.UTC), dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    Invoice.objects.create(team=w["team"], number="T-1", period_start=nov, period_end=dec, total_cents=900,
                           status="paid", paid_at=dec)
    NodeUsageHour.objects.create(node="n1", hour=nov, sent_bytes=5)
    payout_run(period="2026-11", actor=PLATFORM, now=dec + dt.timedelta(days=1))


WRITES = {
    "account.create": lambda w: services.account_create(actor=w["owner"], team=w["team"], name="new"),
    "account.update": lambda w: services.account_update(actor=w["owner"], account=w["shop"], limits={"conn": 3}),
    "account.plan": lambda w: services.account_plan_set(actor=w["owner"], account=w["shop"], plan="free"),
    "account.suspend": lambda w: services.account_suspend(actor=PLATFORM, account=w["shop"], reason="quota"),
    "account.resume": lambda w: services.account_resume(
        actor=PLATFORM, account=services.account_suspend(actor=PLATFORM, account=w["shop"], reason="quota")),
    "account.delete": lambda w: services.account_delete(actor=w["owner"], account=w["shop"]),
    "account.region": lambda w: services.account_home_region_set(actor=w["owner"], account=w["shop"],
                                                                 region="us-east"),
    "user.create": lambda w: services.user_create(actor=w["owner"], account=w["shop"], name="two"),
    "user.update": lambda w: services.user_update(actor=w["owner"], user=w["user"], pub_allow=["b.>"]),
    "user.revoke": lambda w: services.user_revoke(actor=w["owner"], user=w["user"]),
    "user.delete": lambda w: services.user_delete(actor=w["owner"], user=w["user"]),
    "export.create": lambda w: services.export_create(actor=w["owner"], account=w["shop"], name="e", subject="e.>",
                                                      type="stream"),
    "export.delete": lambda w: services.export_delete(actor=w["owner"], export=w["export"]),
    "import.create": lambda w: services.import_create(
        actor=w["owner"], account=w["shop"], exporter_public_key=w["feed"].public_key, subject="q.>",
        local_subject="other.>", token=w["activation"].token),
    "import.delete": lambda w: services.import_delete(actor=w["owner"], imp=w["imp"]),
    "activation.create": lambda w: services.activation_create(actor=w["owner"], export=w["export"],
                                                              target_public_key=w["shop"].public_key),
    "activation.revoke": lambda w: services.activation_revoke(actor=w["owner"], activation=w["activation"]),
    "key.add": _key_add,
    "key.rotate": _key_rotate,
    "member.invite": _invite,
    "member.invite_revoke": _invite_revoke,
    "member.join": _join,
    "member.role": lambda w: services.member_role_set(team=w["team"], membership=w["member"], role="owner",
                                                      actor=w["owner"]),
    "member.remove": lambda w: services.member_remove(team=w["team"], membership=w["member"], actor=w["owner"]),
    "team.create": lambda w: services.team_create(name="initech", actor=w["owner"]),
    "token.create": lambda w: services.api_token_create(user=w["owner"], actor=w["owner"], team=w["team"]),
    "operator.create": _operator,
    "operator.member_add": _member_add,
    "operator.member_remove": _member_remove,
    "node.assign": _node_assign,
    "payout.run": _payout,
    "token.revoke": lambda w: services.api_token_revoke(
        token=services.api_token_create(user=w["owner"], actor=w["owner"], team=w["team"])[0], actor=w["owner"]),
}


def test_every_action_has_a_write_here():
    # Credential uses, not changes: each is audited where it happens (tests/api/test_user_jwt.py, the creds and
    # leafnode tests, tests/integration/test_connection_test.py).
    assert set(AuditEvent.Action.values) - set(WRITES) <= {"creds.download", "leafnode.download", "jwt.download",
                                                            "user.connection_test"}


@pytest.mark.parametrize("action", sorted(WRITES))
def test_each_write_is_audited(action, world):
    before = set(AuditEvent.objects.values_list("pk", flat=True))
    WRITES[action](world)
    new = AuditEvent.objects.exclude(pk__in=before).filter(action=action)
    assert new.exists(), (action, list(AuditEvent.objects.exclude(pk__in=before).values_list("action", flat=True)))
    event = new.latest("pk")
    assert event.actor_name in {"alice", "platform", "carol"}
    assert event.target
    assert event.team_id is not None  # on a team's log: the one the object belongs to


def test_an_update_records_only_what_changed_before_and_after(world):
    services.account_update(actor=world["owner"], account=world["shop"], name="shop", limits={"conn": 3, "subs": -1})
    event = AuditEvent.objects.filter(action="account.update").latest("pk")
    assert event.detail["changes"] == {"conn": {"before": -1, "after": 3}}
    services.user_update(actor=world["owner"], user=world["user"], pub_allow=["b.>"], sub_allow=[])
    event = AuditEvent.objects.filter(action="user.update").latest("pk")
    assert event.detail["changes"] == {"pub_allow": {"before": ["a.>"], "after": ["b.>"]}}
    services.account_update(actor=world["owner"], account=world["shop"], name="shop")
    assert AuditEvent.objects.filter(action="account.update").count() == 1  # nothing changed: no row


def test_a_failed_write_leaves_no_audit_row(world):
    before = AuditEvent.objects.count()
    with mock.patch("accounts_service.services.accounts.account_resign", side_effect=RuntimeError("boom")):
        with pytest.raises(RuntimeError):
            services.account_update(actor=world["owner"], account=world["shop"], limits={"conn": 3})
    assert AuditEvent.objects.count() == before  # the row went with the rollback
    assert not Invitation.objects.exists()
