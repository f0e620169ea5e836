"""The CLI contract: operator, account, user, export, import, activation, jwt, config, api_token."""

from __future__ import annotations

import json
import stat
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from accounts_service.models import ApiToken, NatsUser
from operators import claims, creds

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue().strip()


@pytest.fixture
def op(db, tmp_path):
    return run("operator", "init", "--name", "cli-op", "--identity-seed-out", str(tmp_path / "op.nk"))


def test_operator_init_is_idempotent_and_describable(op, tmp_path):
    assert op.startswith("created operator cli-op O")
    assert "written to" in op and (tmp_path / "op.nk").exists()
    again = run("operator", "init", "--name", "cli-op", "--identity-seed-out", str(tmp_path / "op2.nk"))
    assert "already exists" in again and not (tmp_path / "op2.nk").exists()
    described = run("operator", "describe")
    assert "strict signing key usage: True" in described and "identity seed stored:     False" in described


def test_account_user_export_import_activation_flow(op, tmp_path):
    a = run("account", "create", "--team", "acme", "--name", "svc")
    b = run("account", "create", "--team", "globex", "--name", "client", "--conn", "10")
    assert a.startswith("A") and len(a) == 56
    listed = json.loads(run("account", "list", "--json"))
    assert {x["public_key"] for x in listed} >= {a, b} and any(x["team"] == "acme" for x in listed)
    assert claims.decode(run("account", "jwt", b)).nats["limits"]["conn"] == 10
    assert json.loads(run("account", "describe", b, "--json"))["limits"]["conn"] == 10

    creds_path = tmp_path / "alice.creds"
    out = run("user", "create", "--account", a, "--name", "alice", "--pub", "svc.>", "--sub", "svc.>",
              "--creds-out", str(creds_path))
    assert f"creds written to {creds_path}" in out
    assert stat.S_IMODE(creds_path.stat().st_mode) == 0o600
    parsed = creds.parse_creds(creds_path.read_text())
    assert claims.decode(parsed.jwt).nats["pub"] == {"allow": ["svc.>"]}
    described = run("jwt", "describe", str(creds_path))
    assert "signature: valid" in described and described.count("trusted") == 2

    run("export", "add", "--account", a, "--name", "svc", "--subject", "svc.echo", "--type", "service", "--private")
    with pytest.raises(CommandError, match="activation token is required"):
        run("import", "add", "--account", b, "--from", a, "--subject", "svc.echo")
    token = run("activation", "generate", "--account", a, "--subject", "svc.echo", "--target", b)
    assert claims.decode(token).type == "activation"
    assert "imported service svc.echo" in run("import", "add", "--account", b, "--from", a, "--subject", "svc.echo",
                                              "--token", token)
    assert json.loads(run("import", "list", "--account", b, "--json"))[0]["from"] == a

    upub = parsed_pub = claims.decode(parsed.jwt).subject
    assert "revoked" in run("user", "revoke", "--account", a, "--user", upub)
    assert "REVOKED" in run("jwt", "describe", str(creds_path))
    assert parsed_pub in run("user", "list", "--account", a)


def test_bad_input_is_a_clear_command_error(op):
    a = run("account", "create", "--team", "acme", "--name", "svc")
    with pytest.raises(CommandError, match="empty token"):
        run("user", "create", "--account", a, "--name", "x", "--pub", "a..b")
    with pytest.raises(CommandError, match="no account"):
        run("account", "describe", "ABADKEY")
    with pytest.raises(CommandError, match="three non-empty"):
        run("jwt", "describe", "not-a-jwt")


def test_config_generate_writes_operator_mode_config(op, tmp_path):
    out = tmp_path / "n.conf"
    run("config", "generate", "--out", str(out), "--port", "4333", "--resolver-dir", str(tmp_path / "jwt"))
    text = out.read_text()
    assert "type: full" in text and "system_account:" in text and "resolver_preload" in text
    assert "port: 4333" in text
    import re

    assert not re.search(r"S[OAU][A-Z2-7]{56}", text)  # public material only


def test_api_token_create_prints_a_working_token(db):
    get_user_model().objects.create_user("ann")
    token = run("api_token", "create", "--user", "ann")
    assert token.startswith("nct_") and ApiToken.objects.count() == 1
    with pytest.raises(CommandError, match="no user"):
        run("api_token", "create", "--user", "nobody")


def test_api_token_create_with_scope_team_and_expiry(db):
    from accounts_service.services import team_create

    ann = get_user_model().objects.create_user("ann")
    team = team_create(name="acme", actor=ann)
    run("api_token", "create", "--user", "ann", "--name", "ci", "--scope", "read", "--team", team.slug,
        "--expires-in-days", "7")
    token = ApiToken.objects.get(name="ci")
    assert token.scope == "read" and token.team_id == team.pk and token.expires_at is not None
    with pytest.raises(CommandError, match="no team"):  # not one of hers: as unknown
        run("api_token", "create", "--user", "ann", "--team", "globex")
    assert ApiToken.objects.count() == 1


def test_user_limits_tags_signing_key_and_activation_revoke(op):
    a = run("account", "create", "--team", "acme", "--name", "svc")
    b = run("account", "create", "--team", "globex", "--name", "client")
    upub = run("user", "create", "--account", a, "--name", "u", "--subs", "5", "--data", "1000", "--payload", "64",
               "--tag", "team:blue", "--tag", "edge").splitlines()[0]
    listed = json.loads(run("user", "list", "--account", a, "--json"))
    assert next(u for u in listed if u["public_key"] == upub)["tags"] == ["edge", "team:blue"]
    nats = claims.decode(NatsUser.objects.get(public_key=upub).jwt).nats
    assert (nats["subs"], nats["data"], nats["payload"]) == (5, 1000, 64)
    assert nats["tags"] == ["edge", "team:blue"]
    with pytest.raises(CommandError, match="is not name or name:value"):
        run("user", "create", "--account", a, "--name", "v", "--tag", "a b")

    with pytest.raises(CommandError, match="needs --role"):
        run("account", "signing-key", "add", "--account", a, "--pub", "x")
    plain = run("account", "signing-key", "add", "--account", a)
    scoped = run("account", "signing-key", "add", "--account", a, "--role", "r", "--pub", "x.>", "--subs", "3")
    keys = claims.decode(run("account", "jwt", a)).nats["signing_keys"]
    assert plain in keys
    scope = next(k for k in keys if isinstance(k, dict) and k["key"] == scoped)
    assert scope["role"] == "r" and scope["template"]["pub"] == {"allow": ["x.>"]} and scope["template"]["subs"] == 3

    run("export", "add", "--account", a, "--name", "svc", "--subject", "svc.echo", "--type", "service", "--private")
    run("activation", "generate", "--account", a, "--subject", "svc.echo", "--target", b)
    with pytest.raises(CommandError, match="--id, or --subject and --target"):
        run("activation", "revoke", "--account", a, "--subject", "svc.echo")
    out = run("activation", "revoke", "--account", a, "--subject", "svc.echo", "--target", b)
    assert out.startswith("revoked activation") and b in out
    export = claims.decode(run("account", "jwt", a)).nats["exports"][0]
    assert b in export["revocations"]
    assert "REVOKED" in run("activation", "list", "--account", a)
    with pytest.raises(CommandError, match="already revoked"):
        run("activation", "revoke", "--account", a, "--subject", "svc.echo", "--target", b)
