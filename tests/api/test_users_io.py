"""The users route's lean input check and output (accounts_service/api/users_io.py) against the DRF serializers
they stand in for: the fast check accepts only what the InputSerializer accepts, returning what it returns, and
takes the common inputs; the representation is UserOutputSerializer's, key for key."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts_service import services
from accounts_service.api import users_io
from accounts_service.api.users import UserListCreateApi, UserOutputSerializer
from accounts_service.models import Account
from accounts_service.rights import PLATFORM
from operators import nkeys
from operators.nkeys import KeyType

InputSerializer = UserListCreateApi.InputSerializer


def _same_as_drf(data) -> bool:
    """The fast check's answer is None or exactly the serializer's (values and key order); True if it took it."""
    fast = users_io.create_input_fast(data)
    if fast is None:
        return False
    drf = InputSerializer(data=data)
    assert drf.is_valid(), (data, drf.errors)  # never accepts what DRF refuses
    assert json.dumps(fast) == json.dumps(drf.validated_data), data  # same values, same key order
    return True


def test_the_fast_check_knows_the_serializers_fields_and_bounds():
    fields = InputSerializer().fields
    assert users_io.CREATE_FIELDS == tuple(fields)
    assert users_io.PERMISSION_FIELDS == tuple(fields["permissions"].fields)
    assert users_io.SUBJECT_FIELDS == tuple(fields["permissions"].fields["pub"].fields)
    assert users_io.LIMIT_FIELDS == tuple(fields["limits"].fields)
    assert (fields["name"].max_length, fields["role"].max_length) == (users_io.MAX_NAME, users_io.MAX_NAME)
    assert (fields["tags"].max_length, fields["tags"].child.max_length) == (users_io.MAX_TAGS, users_io.MAX_TAG)
    subjects = fields["permissions"].fields["pub"].fields["allow"]
    assert (subjects.max_length, subjects.child.max_length) == (users_io.MAX_SUBJECTS, users_io.MAX_SUBJECT_LENGTH)


COMMON = [
    {"name": "worker"},
    {"name": "u-1", "permissions": {"pub": {"allow": ["orders.>"]}, "sub": {"allow": ["orders.>"]}}},
    {"name": "svc", "permissions": {"pub": {"allow": ["a.*", "b.>"], "deny": ["a.x"]}, "allow_responses": True},
     "limits": {"subs": 10, "data": -1, "payload": 1024}, "bearer_token": False, "tags": ["env:prod", "team"]},
    {"name": "byo", "public_key": nkeys.generate(KeyType.USER).public_key},
    {"name": "r", "role": "ops", "public_key": ""},
    {"tags": [], "name": "order matters not", "limits": {}, "permissions": {}},
]


@pytest.mark.parametrize("data", COMMON)
def test_common_input_takes_the_fast_path_with_the_serializers_result(data):
    assert _same_as_drf(data)


@pytest.mark.parametrize("data", [
    {}, [], "x", {"name": ""}, {"name": " "}, {"name": None}, {"name": 7}, {"name": "x" * 65}, {"name": "ünï"},
    {"name": "a\x00b"}, {"name": "u", "seed": "SU"}, {"name": "u", "permissions": None},
    {"name": "u", "permissions": {"pub": {"allow": "orders.>"}}}, {"name": "u", "permissions": {"pub": {"alow": []}}},
    {"name": "u", "permissions": {"pub": {"allow": [""]}}}, {"name": "u", "permissions": {"allow_responses": 1}},
    {"name": "u", "limits": {"subs": -2}}, {"name": "u", "limits": {"subs": True}},
    {"name": "u", "limits": {"subs": 2.0}},
    {"name": "u", "limits": {"subs": 2**53 + 1}}, {"name": "u", "limits": {"conn": 1}}, {"name": "u", "tags": "a"},
    {"name": "u", "tags": ["x" * 129]}, {"name": "u", "tags": ["t"] * 33}, {"name": "u", "bearer_token": "yes"},
    {"name": "u", "public_key": "not-a-key"}, {"name": "u", "role": " "},
    {"name": "u", "expires_at": (timezone.now() + dt.timedelta(days=1)).isoformat()},
])
def test_other_input_goes_to_the_serializer(data):
    assert users_io.create_input_fast(data) is None


_good = st.sampled_from(["worker", "ops", "orders.>", "a.*.b", "env:prod"])
_text = st.one_of(_good, st.sampled_from(["", " ", "x" * 64, "x" * 65, "é", "\x00", "a b"]), st.text(max_size=8))
_scalar = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from([2**53, 2**53 + 1, 1.0, 1.5]),
                    _text)
_list = st.one_of(st.lists(_good, max_size=3), st.lists(st.one_of(_text, _scalar), max_size=4))
_subjects = st.dictionaries(st.sampled_from(["allow", "deny", "x"]), st.one_of(_list, _scalar), max_size=3)
_permissions = st.dictionaries(st.sampled_from(["pub", "sub", "allow_responses", "y"]),
                               st.one_of(_subjects, st.booleans(), _scalar), max_size=3)
_limits = st.dictionaries(st.sampled_from(["subs", "data", "payload", "z"]), st.one_of(st.integers(-1, 9), _scalar),
                          max_size=3)
_input = st.fixed_dictionaries({"name": st.one_of(_good, _text, _scalar)}, optional={
    "permissions": st.one_of(_permissions, _scalar), "limits": st.one_of(_limits, _scalar),
    "bearer_token": st.one_of(st.booleans(), _scalar), "tags": st.one_of(_list, _scalar),
    "public_key": st.one_of(_text, st.just(nkeys.generate(KeyType.USER).public_key)),
    "role": st.one_of(_text, _scalar), "other": _scalar})


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_input)
def test_the_fast_check_never_differs_from_the_serializer(data):
    _same_as_drf(data)


def test_the_generated_inputs_also_reach_the_fast_path():
    # (the property above would hold vacuously if the strategy never made a well-formed input)
    taken = []

    @settings(max_examples=300, deadline=None, database=None)
    @given(_input)
    def run(data):
        taken.append(_same_as_drf(data))

    run()
    assert any(taken) and not all(taken)


@pytest.mark.django_db
def test_the_representation_is_the_output_serializers(operator_setup, team):
    account: Account = services.account_create(actor=PLATFORM, team=team, name="app")
    services.account_signing_key_add(account=account, actor=PLATFORM, role="ops", template={"pub_allow": ["ops.>"]})
    users = [
        services.user_create(actor=PLATFORM, account=account, name="plain"),
        services.user_create(actor=PLATFORM, account=account, name="full", pub_allow=["a.>"], sub_deny=["b"],
                             allow_responses=True, subs=3, data=4, payload=5, bearer_token=True, tags=["Env:Prod"],
                             expires_at=timezone.now() + dt.timedelta(days=3)),
        services.user_create(actor=PLATFORM, account=account, name="own",
                             public_key=nkeys.generate(KeyType.USER).public_key),
        services.user_create(actor=PLATFORM, account=account, name="scoped", role="ops"),
    ]
    users.append(services.user_revoke(user=services.user_create(actor=PLATFORM, account=account, name="gone"),
                                      actor=PLATFORM))
    for user in users:  # as returned by the service (the POST's case) and as read back
        for u in (user, type(user).objects.select_related("account", "signing_key").get(pk=user.pk)):
            assert json.dumps(users_io.user_representation(u)) == json.dumps(UserOutputSerializer(u).data)
