"""Property-based contract test of REST API v1 against its own OpenAPI schema (drf-spectacular, /api/schema/).

Schemathesis loads the schema from the Django app in-process and calls every operation through the real WSGI
application (real SQLite test database, no mocks; no BrokerNode rows exist, so nothing is pushed to NATS) with
every check it has: no 5xx, documented status codes, content types and headers, responses that conform to their
schema, schema-valid input accepted, schema-invalid input rejected, auth not ignored, Allow on 405. Path
parameters are either the real objects of the caller's team (so the happy paths run) or generated values (so
the 404s run). Each example runs in a savepoint that is rolled back, so a DELETE does not starve the examples
after it, and the run is derandomized.
"""

from __future__ import annotations

import json
import zlib

import pytest
import schemathesis
from django.contrib.auth import get_user_model
from django.core import signals
from django.db import close_old_connections, transaction
from django.test import RequestFactory
from django.urls import resolve
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import positive_data_acceptance

from accounts_service import services
from accounts_service.api.utils import NAME_PATTERN, SUBJECT_PATTERN
from accounts_service.rights import PLATFORM
from accounts_service.validation import name_check
from billing.invoices import invoice_generate
from billing.selectors import period_start
from core.errors import ApplicationError
from operators.subjects import SubjectError, validate_subject

load_all_checks()
ALL_CHECKS = list(CHECKS.get_all())

# Checks that cannot apply to one operation, each with the reason. positive_data_acceptance says "a request the
# schema accepts must get a 2xx (or 401/403/404/409)"; these operations also enforce rules that no JSON schema
# can express, so a schema-valid body is sometimes, rightly, a 400. Everything a schema can say is in it:
# patterns for names, subjects and nkeys, integer ranges, maxLength/maxItems, enums, additionalProperties.
NOT_EXPRESSIBLE = {
    # Limits are bounded by the account's plan, and plans are data (staff-editable, one per account): the
    # ceiling of "conn" depends on which plan the account is on, which a static schema cannot say.
    ("POST", "/api/v1/accounts/"): [positive_data_acceptance],
    ("PATCH", "/api/v1/accounts/{account_pk}/"): [positive_data_acceptance],
    # expires_at must be in the future (relative to now); public_key must carry a valid CRC-16 checksum (a
    # pattern cannot check one) and not be revoked; role must name an existing scoped signing key, and a
    # user of a scoped key may not carry permissions of its own.
    ("POST", "/api/v1/accounts/{account_pk}/users/"): [positive_data_acceptance],
    # expires_at must be in the future; a user of a scoped signing key may not carry permissions.
    ("PATCH", "/api/v1/accounts/{account_pk}/users/{user_pk}/"): [positive_data_acceptance],
    # The subject must not overlap another export of the account, wildcards need the account's
    # wildcard_exports, and account_token_position must point at a "*" token of this subject.
    ("POST", "/api/v1/accounts/{account_pk}/exports/"): [positive_data_acceptance],
    # target must carry a valid checksum and not be the exporter; the export must be private; the subject must
    # lie within the export's subject; expires_at must be in the future.
    ("POST", "/api/v1/accounts/{account_pk}/exports/{export_id}/activations/"): [positive_data_acceptance],
    # exporter must be an existing account (valid checksum) exporting something that covers the subject; a
    # private export needs a valid activation token; the local subject must not overlap another import.
    ("POST", "/api/v1/accounts/{account_pk}/imports/"): [positive_data_acceptance],
    # Exactly one of creds, or account and user together (a oneOf the request schema does not carry); subject
    # and action go together; creds must parse as a .creds file.
    ("POST", "/api/v1/diagnose"): [positive_data_acceptance],
    # expires_at must be in the future, and expires_at and expires_in_days are one or the other, not both.
    ("POST", "/api/v1/tokens/"): [positive_data_acceptance],
}

TOKEN_PLACEHOLDER = "the-test-token"

# Real objects of the current test (_real_path_parameters reads them; each test has its own database state).
REAL: dict[str, object] = {}


def _load_schema():
    from accounts_service.wsgi import application

    # The /api/schema/ view itself, called without the request handler: the handler's ATOMIC_REQUESTS
    # transaction would touch the database, which pytest-django blocks at collection time, and the schema view
    # needs none. The requests of the test go through the whole WSGI application.
    view = resolve("/api/schema/").func
    response = view(RequestFactory().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json"))
    response.render()
    assert response.status_code == 200, response.content
    loaded = schemathesis.openapi.from_dict(json.loads(response.content))
    loaded.app = application

    # Through schemathesis' auth hook (not a header passed to the call), so that the negative cases that drop or
    # mangle the Authorization header keep it dropped or mangled. Some cases are built while pytest collects,
    # before any token exists: they carry a placeholder that the test swaps for the test's own token.
    @loaded.auth(refresh_interval=None)
    class _Bearer:
        def get(self, case, ctx):
            return TOKEN_PLACEHOLDER

        def set(self, case, data, ctx):
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}

    return loaded


schema = _load_schema()


@pytest.fixture
def _connections_kept_open():
    """Like Django's test client: the handler must not close the test's connection (and its transaction)
    when a request starts or finishes."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def api_objects(operator_setup, _connections_kept_open):
    """A person who owns a team with two accounts: one (on the free plan, with this month's invoice) with a user and
    an import of the other's private export; another team's invitation mailed to them."""
    owner = get_user_model().objects.create_user(username="alice", email="alice@example.com", password="pw-alice-123")
    team = services.team_create(name="acme", actor=owner)
    inviter = get_user_model().objects.create_user(username="carol", email="carol@example.com", password="pw-carol-1")
    invitation = services.invitation_create(team=services.team_create(name="initech", actor=inviter), actor=inviter,
                                            email="alice@example.com", role="member", base_url="http://testserver")
    account = services.account_create(actor=PLATFORM, team=team, name="shop")
    feed = services.account_create(actor=PLATFORM, team=team, name="feed")
    user = services.user_create(actor=PLATFORM, account=account, name="app", pub_allow=["orders.>"])
    export = services.export_create(actor=PLATFORM,
                                    account=feed, name="prices", subject="prices.>", type="stream", private=True)
    activation = services.activation_create(actor=PLATFORM, export=export, target_public_key=account.public_key)
    imp = services.import_create(actor=PLATFORM,
                                 account=account, exporter_public_key=feed.public_key, subject="prices.>",
                                 token=activation.token)
    services.account_plan_set(actor=PLATFORM, account=account, plan="free")
    invoice, _ = invoice_generate(team=team, start=period_start())
    record, token = services.api_token_create(actor=PLATFORM, user=owner)
    REAL.clear()
    REAL.update(account_pk=account.public_key, user_pk=user.public_key, export_id=export.pk, import_id=imp.pk,
                export_account_pk=feed.public_key, token=token, number=invoice.number, activation_id=activation.pk,
                team_id=team.pk, member_id=team.memberships.get(user=owner).pk, prefix=record.prefix,
                invitation_id=invitation.pk,
                # Staff routes (payouts, node operators): the caller is no staff, so these are its 403s.
                period=f"{period_start():%Y-%m}", slug="platform", username="alice", name="node-1")
    yield
    REAL.clear()


def _real_path_parameters(case) -> None:
    """Point three cases in four at the fixture's objects, so the happy paths (and the body validation behind the
    lookup) run; the rest keep their generated, well-formed but unknown keys and ids and run the 404s. A case whose
    path parameters are the negated component keeps them malformed. The choice is a function of the generated
    values, so the derandomized run stays deterministic."""
    if not case.path_parameters or case.meta is None or case.meta.is_negative_at(ParameterLocation.PATH):
        return
    drawn = json.dumps([case.path_parameters, case.query, case.body], sort_keys=True, default=lambda o: "-")
    if zlib.crc32(drawn.encode("utf-8", "surrogatepass")) % 4 == 0:
        return
    # An export is addressed under its own (exporting) account, everything else under the importing one.
    owner = REAL["export_account_pk"] if "export_id" in case.path_parameters else REAL["account_pk"]
    case.path_parameters = {key: owner if key == "account_pk" else REAL[key] for key in case.path_parameters}


@pytest.mark.django_db
@schema.parametrize()
@settings(max_examples=15, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much])
def test_api_conforms_to_its_schema(case, api_objects):
    _real_path_parameters(case)
    if case.headers and case.headers.get("Authorization") == f"Bearer {TOKEN_PLACEHOLDER}":
        case.headers["Authorization"] = f"Bearer {REAL['token']}"
    excluded = NOT_EXPRESSIBLE.get((case.method.upper(), case.path), [])
    # Every example starts from the fixture's state: its writes (a deleted account, a revoked user) roll back.
    with transaction.atomic():
        case.call_and_validate(checks=ALL_CHECKS, excluded_checks=excluded)
        transaction.set_rollback(True)


# The schema documents two rules the services enforce; the contract above holds only if the patterns say the same
# as the code, under the schema's own reading of a pattern (ECMA-262, as schemathesis' validator applies it).
_TRICKY = st.text(alphabet=st.sampled_from(list("ab.*> \t\n\x00\x1f\x7f\x85\xa0\u2028\u3000é😀")), max_size=12)


def _schema_accepts(pattern: str, value: str) -> bool:
    import jsonschema_rs

    return jsonschema_rs.validator_for({"type": "string", "pattern": pattern}).is_valid(value)


@settings(max_examples=300, derandomize=True, database=None)
@given(_TRICKY)
def test_subject_pattern_is_validate_subject(value):
    try:
        validate_subject(value)
        valid = True
    except SubjectError:
        valid = False
    assert _schema_accepts(SUBJECT_PATTERN, value) is valid


@settings(max_examples=300, derandomize=True, database=None)
@given(_TRICKY)
def test_name_pattern_is_within_name_check(value):
    """A name the schema accepts is one the service accepts (the API matches the pattern itself, so the service's
    wider rule never decides)."""
    if _schema_accepts(NAME_PATTERN, value):
        try:
            name_check(value)
        except ApplicationError as exc:  # pragma: no cover - the failure message
            pytest.fail(f"{value!r} matches the schema but name_check says {exc.message}")
