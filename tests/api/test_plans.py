"""Plans over the REST API: choosing one at creation, changing it (owners only, audited, re-signed), and the
accounts-per-team allowance of each plan."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from accounts_service import services
from accounts_service.models import Account, AuditEvent, TeamMembership
from accounts_service.plans import plans_all
from accounts_service.rights import PLATFORM
from billing.models import Plan
from tests.api.routes import member_client

ACCOUNTS = "/api/v1/accounts/"


def _client(team, username: str, role: str) -> APIClient:
    return member_client(username, team, role=role)


@pytest.fixture
def owner(team) -> APIClient:
    return _client(team, "olivia", TeamMembership.Role.OWNER)


@pytest.fixture
def member(team) -> APIClient:
    return _client(team, "max", TeamMembership.Role.MEMBER)


def _create(client, team, name: str, plan: str | None = None):
    body = {"name": name, "team": team.pk} | ({"plan": plan} if plan else {})
    return client.post(ACCOUNTS, body, format="json")


def test_the_plans_are_data_from_billing(operator_setup):
    names = [terms.name for terms in plans_all()]
    assert names == ["free", "developer", "pro", "business"]
    Plan.objects.filter(name="pro").update(accounts_per_team=7)
    assert {t.name: t.accounts_per_team for t in plans_all()}["pro"] == 7


def test_create_on_a_plan_gets_its_allowance(owner, team, operator_setup):
    response = _create(owner, team, "big", "pro")
    assert response.status_code == 201, response.content
    pro = Plan.objects.get(name="pro")
    assert response.json()["plan"] == "pro" and response.json()["limits"]["conn"] == pro.conn
    assert Account.objects.get(name="big").disk_storage == pro.disk_storage


def test_a_team_holds_only_as_many_accounts_on_a_plan_as_it_allows(owner, team, operator_setup):
    free = Plan.objects.get(name="free")
    for i in range(free.accounts_per_team):
        assert _create(owner, team, f"a{i}").status_code == 201
    refused = _create(owner, team, "one-too-many")
    assert refused.status_code == 409
    assert refused.json()["message"].startswith("the Free plan allows 2 accounts per team")
    assert refused.json()["extra"] == {"field": "plan", "accounts_per_team": 2}
    assert not Account.objects.filter(name="one-too-many").exists()
    # another plan has room of its own
    assert _create(owner, team, "one-too-many", "developer").status_code == 201


def test_owner_changes_the_plan_resigned_and_audited(owner, team, operator_setup):
    account = services.account_create(actor=PLATFORM, team=team, name="app", plan="free")
    response = owner.patch(f"{ACCOUNTS}{account.public_key}/", {"plan": "pro"}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    pro = Plan.objects.get(name="pro")
    assert body["plan"] == "pro" and body["limits"]["conn"] == pro.conn
    assert body["version"] == account.version + 1
    event = AuditEvent.objects.get(action=AuditEvent.Action.PLAN_CHANGE)
    assert event.target == account.public_key
    assert {k: event.detail[k] for k in ("name", "from", "to")} == {"name": "app", "from": "free", "to": "pro"}
    assert event.detail["changes"]["conn"] == {"before": account.conn, "after": pro.conn}  # the limits it changed


def test_plan_change_and_limits_land_together_or_not_at_all(owner, team, operator_setup):
    account = services.account_create(actor=PLATFORM, team=team, name="app", plan="pro")
    response = owner.patch(f"{ACCOUNTS}{account.public_key}/", {"plan": "free", "limits": {"conn": 51}},
                           format="json")
    assert response.status_code == 400 and response.json()["message"] == "the free plan allows conn at most 50"
    fresh = Account.objects.get(pk=account.pk)
    assert (fresh.plan, fresh.version, fresh.conn) == ("pro", account.version, account.conn)
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.PLAN_CHANGE).exists()


@pytest.mark.parametrize(("plan", "status"), [("platinum", 400), ("", 400), ("free", 409)])
def test_plan_change_refusals(owner, team, operator_setup, plan, status):
    services.account_create(actor=PLATFORM, team=team, name="a", plan="free")
    services.account_create(actor=PLATFORM, team=team, name="b", plan="free")
    account = services.account_create(actor=PLATFORM, team=team, name="c", plan="developer")
    response = owner.patch(f"{ACCOUNTS}{account.public_key}/", {"plan": plan}, format="json")
    assert response.status_code == status, response.content
    assert set(response.json()) == {"message", "code", "extra"}
    assert Account.objects.get(pk=account.pk).plan == "developer"


def test_members_cannot_change_plans(member, team, operator_setup):
    account = services.account_create(actor=PLATFORM, team=team, name="app", plan="free")
    response = member.patch(f"{ACCOUNTS}{account.public_key}/", {"plan": "business"}, format="json")
    assert response.status_code == 403
    assert Account.objects.get(pk=account.pk).plan == "free"


def test_plans_are_listed_with_limits_and_prices(member, operator_setup):
    body = member.get("/api/v1/plans/").json()
    assert [p["name"] for p in body["results"]] == ["free", "developer", "pro", "business"]
    free = body["results"][0]
    assert free["limits"]["conn"] == 50 and free["limits"]["data"] == -1  # data is metered, not in the JWT
    assert (free["accounts_per_team"], free["data_bytes"], free["base_price_cents"]) == (2, 1024**3, 0)
    assert (free["connection_hours"], free["connection_cents_per_1000_hours"]) == (-1, 0)  # bounded by its limits
    pro = body["results"][2]
    assert pro["currency"] == "USD"
    assert {k: pro[k] for k in ("connection_hours", "connection_cents_per_1000_hours", "storage_gib_hours",
                                "storage_cents_per_1000_gib_hours")} == {
        "connection_hours": 500_000, "connection_cents_per_1000_hours": 8, "storage_gib_hours": 7_300,
        "storage_cents_per_1000_gib_hours": 20}  # the seeded defaults (billing/migrations/0009)


def test_invoices_of_the_callers_teams_only(member, team, other_team, operator_setup):
    import datetime as dt

    from accounts_service.models import PlanSpan
    from billing.invoices import invoice_generate
    from billing.selectors import period_start

    Plan.objects.filter(name="developer").update(base_price_cents=900)
    services.account_create(actor=PLATFORM, team=team, name="app", plan="developer")
    services.account_create(actor=PLATFORM, team=other_team, name="theirs", plan="developer")
    PlanSpan.objects.update(at=period_start() - dt.timedelta(days=1))  # held the whole month: its whole price
    mine, _ = invoice_generate(team=team, start=period_start())
    theirs, _ = invoice_generate(team=other_team, start=period_start())
    listing = member.get("/api/v1/invoices/").json()
    assert [i["number"] for i in listing["results"]] == [mine.number]
    assert listing["results"][0]["total_cents"] == 900 and listing["results"][0]["status"] == "open"
    doc = member.get(f"/api/v1/invoices/{mine.number}").json()
    assert doc["number"] == mine.number and doc["lines"][0]["description"] == "Developer plan, account app"
    refused = member.get(f"/api/v1/invoices/{theirs.number}")
    assert refused.status_code == 404 and set(refused.json()) == {"message", "code", "extra"}


# ------------------------------------------------------------------------------------------------
# JetStream limits: a plan's ceiling bounds what the server enforces (0 and -1 cannot slip past it)
# ------------------------------------------------------------------------------------------------


def _js(account: Account) -> dict:
    from operators import claims

    account.refresh_from_db()
    limits = claims.decode(account.jwt).claims["nats"]["limits"]
    return claims.jetstream_server_reading(claims.JetStreamLimits(
        **{k: limits[k] for k in ("mem_storage", "disk_storage", "streams", "consumer")}))


@pytest.mark.parametrize("field", ["streams", "consumer", "disk_storage"])
def test_jetstream_limits_at_the_ceiling_are_allowed_and_one_past_or_unlimited_refused(owner, team, operator_setup,
                                                                                        field):
    free = Plan.objects.get(name="free")  # 5 streams, 50 consumers, 256 MiB of disk, no memory
    account = services.account_create(actor=PLATFORM, team=team, name="js", plan="free")
    ceiling = getattr(free, field)
    assert _js(account)[field] == ceiling  # a new account gets the allowance, enforced as such
    for value in (ceiling + 1, -1):
        response = owner.patch(f"{ACCOUNTS}{account.public_key}/", {"limits": {field: value}}, format="json")
        assert response.status_code == 400, response.content
        assert response.json()["message"] == f"the free plan allows {field} at most {ceiling}"
    response = owner.patch(f"{ACCOUNTS}{account.public_key}/", {"limits": {field: ceiling - 1}}, format="json")
    assert response.status_code == 200 and _js(account)[field] == ceiling - 1


def test_zero_streams_is_jetstream_off_not_unlimited(owner, team, operator_setup):
    account = services.account_create(actor=PLATFORM, team=team, name="js", plan="free")
    response = owner.patch(f"{ACCOUNTS}{account.public_key}/", {"limits": {"streams": 0}}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["limits"]["streams"] == 0
    assert set(_js(account).values()) == {0}


def test_zero_consumers_with_jetstream_on_is_refused(owner, team, operator_setup):
    account = services.account_create(actor=PLATFORM, team=team, name="js", plan="free")
    version = Account.objects.get(pk=account.pk).version
    response = owner.patch(f"{ACCOUNTS}{account.public_key}/", {"limits": {"consumer": 0}}, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "limit_consumer_zero" and response.json()["extra"] == {"field": "consumer"}
    assert Account.objects.get(pk=account.pk).version == version and _js(account)["consumer"] == 50
    # with JetStream off, 0 consumers is what the account has anyway
    response = owner.patch(f"{ACCOUNTS}{account.public_key}/", {"limits": {"consumer": 0, "disk_storage": 0}},
                           format="json")
    assert response.status_code == 200 and set(_js(account).values()) == {0}


def test_a_plan_cannot_grant_streams_but_no_consumers(operator_setup):
    from django.core.exceptions import ValidationError

    free = Plan.objects.get(name="free")
    free.consumer = 0
    with pytest.raises(ValidationError, match="consumer cannot be 0"):
        free.full_clean()
    free.streams = 0  # no JetStream at all: fine
    free.full_clean()
