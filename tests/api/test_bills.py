"""The month to date and the estimate over the REST API: the usage document's ``bill`` (what ``ngs.usage`` answers
too), an account's bill line by line, a team's bill per account; exact figures on a fixed clock (tests/bill_month.py),
and another team's a 404."""

from __future__ import annotations

import pytest

from accounts_service.models import TeamMembership
from tests.api.routes import member_client
from tests.bill_month import (
    APP_ESTIMATE,
    APP_TO_DATE,
    GONE,
    TEAM_ESTIMATE,
    TEAM_TO_DATE,
    clock_set,
    month_build,
)


@pytest.fixture
def month(team, operator_setup, monkeypatch):
    clock_set(monkeypatch)
    return month_build(team)


@pytest.fixture
def api(team):
    return member_client("max", team, role=TeamMembership.Role.MEMBER)


def test_the_usage_document_carries_the_months_bill(api, month):
    doc = api.get(f"/api/v1/accounts/{month.app.public_key}/usage?window=1h").json()
    assert doc["bill"] == {"to_date": APP_TO_DATE, "estimate": APP_ESTIMATE, "currency": "USD"}
    assert doc["plan"] == "pro" and doc["quota"]["used_bytes"] == 5 * 1024**3  # the other keys as they were
    free = api.get(f"/api/v1/accounts/{month.sandbox.public_key}/usage").json()
    assert free["bill"] == {"to_date": 0, "estimate": 0, "currency": "USD"}


def test_an_accounts_bill_line_by_line(api, month):
    doc = api.get(f"/api/v1/accounts/{month.app.public_key}/bill").json()
    assert doc["period"] == {"start": "2026-11-01T00:00:00Z", "end": "2026-12-01T00:00:00Z"}
    assert (doc["at"], doc["currency"], doc["to_date"], doc["estimate"]) == (
        "2026-11-20T00:00:00Z", "USD", APP_TO_DATE, APP_ESTIMATE)
    [account] = doc["accounts"]
    assert (account["account"], account["plan"]) == (month.app.public_key, "pro")
    lines = [(x["kind"], x["plan"], x["start"], x["end"], x["amount_cents"]) for x in account["lines"]]
    assert lines == [
        ("base", "developer", "2026-11-01T00:00:00Z", "2026-11-10T00:00:00Z", 270),
        ("connections", "developer", "2026-11-01T00:00:00Z", "2026-11-10T00:00:00Z", 2),
        ("base", "pro", "2026-11-10T00:00:00Z", "2026-11-20T00:00:00Z", 1633),
        ("data", "pro", "2026-11-10T00:00:00Z", "2026-11-20T00:00:00Z", 0),
        ("connections", "pro", "2026-11-10T00:00:00Z", "2026-11-20T00:00:00Z", 0),
        ("storage", "pro", "2026-11-10T00:00:00Z", "2026-11-20T00:00:00Z", 0),
    ]
    dev_conns = account["lines"][1]
    assert (dev_conns["measure_unit"], dev_conns["measured"], dev_conns["included"], dev_conns["billed"]) == (
        "connection-second", 300 * 3600, 150 * 3600, 150 * 3600)
    assert (dev_conns["quantity"], dev_conns["quantity_unit"], dev_conns["unit"]) == (
        "150.000000", "connection-hours", "1,000 connection-hours")
    pro_data = account["lines"][3]
    assert (pro_data["measured"], pro_data["included"]) == (5 * 1024**3, 7 * 1024**3)  # 21 of 30 days of 10 GiB
    estimate = {(x["kind"], x["plan"]): x for x in account["estimate_lines"]}
    pro_base = estimate[("base", "pro")]
    assert (pro_base["end"], pro_base["amount_cents"]) == ("2026-12-01T00:00:00Z", 3430)  # kept to the month's end
    assert estimate[("data", "pro")]["measured"] == 8_476_909_137  # 5 GiB carried on 11 days at 19 days' rate
    assert estimate[("data", "pro")]["amount_cents"] == 36
    assert sum(x["amount_cents"] for x in account["lines"]) == doc["to_date"]
    assert sum(x["amount_cents"] for x in account["estimate_lines"]) == doc["estimate"]


def test_a_teams_bill_sums_its_accounts_deleted_ones_included(api, team, month):
    doc = api.get(f"/api/v1/teams/{team.pk}/bill").json()
    assert (doc["team"], doc["to_date"], doc["estimate"]) == (team.pk, TEAM_TO_DATE, TEAM_ESTIMATE)
    rows = [(a["name"], a["plan"], a["to_date"], a["estimate"]) for a in doc["accounts"]]
    assert rows == [("app", "pro", APP_TO_DATE, APP_ESTIMATE), ("sandbox", "free", 0, 0),  # in the order it got them
                    ("gone", "pro", GONE, GONE)]
    assert doc["to_date"] == sum(a["to_date"] for a in doc["accounts"])


def test_another_teams_bills_are_404(month, other_team, team):
    stranger = member_client("eve", other_team, role=TeamMembership.Role.OWNER)
    for path in (f"/api/v1/teams/{team.pk}/bill", f"/api/v1/accounts/{month.app.public_key}/bill",
                 f"/api/v1/accounts/{month.app.public_key}/usage"):
        response = stranger.get(path)
        assert response.status_code == 404 and set(response.json()) == {"message", "code", "extra"}, path
    assert stranger.get(f"/api/v1/teams/{other_team.pk}/bill").json()["accounts"] == []


def test_the_usage_documents_bill_reads_the_month_once_and_agrees_with_the_bill(month, django_assert_num_queries):
    """The document already sums the month's hours; for an account on one plan all month the bill uses that sum
    instead of reading them again, and says the same as the bill computed on its own."""
    from billing.bills import account_bill, bill_summary
    from billing.models import Plan
    from billing.selectors import account_usage

    Plan.objects.filter(name="free").update(data_bytes=1024**3 // 2, overage_cents_per_gib=100)  # 0.5 GiB past
    key, team_id = month.sandbox.public_key, month.sandbox.team_id
    alone = bill_summary(account_bill(account_public_key=key, team_id=team_id)[0])
    # 1 GiB in 19 days: 30/19 GiB by the month's end, less the 0.5 included, at 1 USD per GiB
    assert alone == {"to_date": 50, "estimate": round(100 * (30 / 19 - 0.5)), "currency": "USD"}
    with django_assert_num_queries(5):  # plan, window and month (one query), current counts, storage; the spans
        doc = account_usage(account_public_key=key, plan_name="free", window="24h", team_id=team_id)
    assert doc["bill"] == alone
    assert account_usage(account_public_key=month.app.public_key, plan_name="pro", window="24h")["bill"] == \
        bill_summary(account_bill(account_public_key=month.app.public_key)[0])  # two plans: read per plan


def test_ngs_usage_reads_the_account_its_plans_and_every_segment_in_two_queries(month, django_assert_num_queries):
    """``ngs.usage``'s read (billing.usage_answer): the account with its plan and plan history, then every window
    and plan segment in one query; its bill equals the bill computed on its own, for an account that changed plan
    this month (two segments, one more query for the earlier plan's prices) and one on one plan all month."""
    from billing.bills import account_bill, bill_summary
    from billing.selectors import account_usage
    from billing.usage_answer import account_usage_by_key

    app, sandbox = month.app, month.sandbox
    with django_assert_num_queries(2):
        doc = account_usage_by_key(public_key=sandbox.public_key, window="24h")
    assert doc == account_usage(account_public_key=sandbox.public_key, plan_name="free", window="24h")
    with django_assert_num_queries(3):  # developer, then pro: the developer plan's prices read too
        doc = account_usage_by_key(public_key=app.public_key, window="7d")
    assert doc["bill"] == bill_summary(account_bill(account_public_key=app.public_key)[0])
    assert doc["bill"] == {"to_date": APP_TO_DATE, "estimate": APP_ESTIMATE, "currency": "USD"}
    assert doc == account_usage(account_public_key=app.public_key, plan_name="pro", window="7d")
    assert account_usage_by_key(public_key="A" + "Z" * 55, window="24h") is None


def test_ngs_usage_sends_its_second_query_with_the_first_when_it_knows_the_plan_history(month, monkeypatch,
                                                                                        django_assert_num_queries):
    """On PostgreSQL both reads go in one round trip when the process read the account's plan history before (or
    preloaded it): the second query is built from that history. Here the guessing is switched on over SQLite (the
    reads then run one after the other). A history that changed since is read again, one query more, and every
    answer equals the one computed without a guess."""
    import datetime as dt

    from accounts_service.models import PlanSpan
    from accounts_service.rights import PLATFORM
    from accounts_service.services import account_plan_set
    from billing import usage_answer
    from billing.selectors import account_usage
    from tests.bill_month import NOV

    monkeypatch.setattr(usage_answer, "prepared_reads", lambda: True)
    monkeypatch.setattr(usage_answer, "_HISTORY", {})
    together = []
    real_many = usage_answer.rows_read_many
    monkeypatch.setattr(usage_answer, "rows_read_many", lambda queries: together.append(len(queries)) or
                        real_many(queries))
    app = month.app
    key = app.public_key
    expected = account_usage(account_public_key=key, plan_name="pro", window="7d")
    with django_assert_num_queries(3):  # no history known: the plan history, then the totals; the developer prices
        assert usage_answer.account_usage_by_key(public_key=key, window="7d") == expected
    assert together == [] and [at for at, _ in usage_answer._HISTORY[key]]  # kept for the next answer
    with django_assert_num_queries(3):  # known: both reads sent together; the developer prices
        assert usage_answer.account_usage_by_key(public_key=key, window="7d") == expected
    assert together == [2]

    account_plan_set(actor=PLATFORM, account=app, plan="business")  # a third segment (from the 15th)
    PlanSpan.objects.filter(account_public_key=key, plan="business").update(at=NOV + dt.timedelta(days=14))
    app.refresh_from_db()
    expected = account_usage(account_public_key=key, plan_name="business", window="7d")
    with django_assert_num_queries(4):  # together (the stale guess), the totals again, the earlier plans' prices
        assert usage_answer.account_usage_by_key(public_key=key, window="7d") == expected
    assert together == [2, 2] and usage_answer._HISTORY[key][-1][1] == "business"
    with django_assert_num_queries(3):
        assert usage_answer.account_usage_by_key(public_key=key, window="7d") == expected
    assert together == [2, 2, 2]

    assert usage_answer.spans_preload() == usage_answer.Account._base_manager.count()  # every account, once
    assert usage_answer._HISTORY[key][-1][1] == "business"
    assert usage_answer.account_usage_by_key(public_key="A" + "Z" * 55, window="24h") is None
