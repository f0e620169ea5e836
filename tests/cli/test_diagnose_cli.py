"""``manage.py user diagnose``: the checklist for a .creds file or a user, text and JSON, never the seed."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from accounts_service import services
from accounts_service.rights import PLATFORM
from operators import creds as creds_mod

pytestmark = pytest.mark.django_db


def cli(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


@pytest.fixture
def user(operator_setup, team):
    account = services.account_create(actor=PLATFORM, team=team, name="shop")
    return services.user_create(actor=PLATFORM, account=account, name="app", pub_allow=["orders.>"])


def test_creds_file_json_and_text(user, tmp_path):
    path = tmp_path / "app.creds"
    text = services.user_creds_get(user=user)
    path.write_text(text)
    out = cli("user", "diagnose", "--creds", str(path), "--subject", "orders.new", "--pub", "--json")
    assert creds_mod.parse_creds(text).seed not in out
    result = json.loads(out)
    assert result["user"] == user.public_key and result["verdict"]["ok"]
    assert next(c for c in result["checks"] if c["check"] == "permission")["detail"]["rule"] == "allow"
    plain = cli("user", "diagnose", "--account", user.account.public_key, "--user", user.public_key)
    assert plain.startswith("OK: app") and "[ok] issuer" in plain


def test_refused_is_a_nonzero_exit_naming_the_cause(user):
    with pytest.raises(CommandError, match="refused: permission"):
        cli("user", "diagnose", "--account", user.account.public_key, "--user", user.public_key,
            "--subject", "billing.x", "--pub")
    services.user_revoke(actor=PLATFORM, user=user)
    with pytest.raises(CommandError, match="refused: revocation"):
        cli("user", "diagnose", "--account", user.account.public_key, "--user", user.public_key)


def test_bad_input(user, tmp_path):
    with pytest.raises(CommandError):
        cli("user", "diagnose", "--account", user.account.public_key)
    with pytest.raises(CommandError, match="cannot read"):
        cli("user", "diagnose", "--creds", str(tmp_path / "missing.creds"))
