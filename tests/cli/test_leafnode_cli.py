"""``manage.py user leafnode``: leaf.conf and the .creds it references, written with an absolute path."""

from __future__ import annotations

import stat
import subprocess

import pytest
from django.core.management.base import CommandError

from accounts_service.models import AuditEvent
from operators import claims, creds
from tests.cli.test_cli import run

pytestmark = pytest.mark.django_db


@pytest.fixture
def account(db, tmp_path, settings):
    settings.NATS_PUBLIC_LEAFNODE_URLS = ["nats-leaf://leaf.example.com:7422"]
    run("operator", "init", "--name", "cli-op", "--identity-seed-out", str(tmp_path / "op.nk"))
    return run("account", "create", "--team", "acme", "--name", "svc")


def test_user_leafnode_writes_both_files_and_the_server_accepts_the_config(account, tmp_path):
    from broker_gateway.fleet.local import nats_server_bin

    user = run("user", "create", "--account", account, "--name", "edge box", "--pub", "svc.>", "--sub", "svc.>")
    out_dir = tmp_path / "leaf"
    said = run("user", "leafnode", "--account", account, "--user", user, "--out", str(out_dir), "--port", "14222")
    config, creds_path = out_dir / "leaf.conf", out_dir / "edge_box.creds"
    assert f"{config} and {creds_path} written" in said
    assert stat.S_IMODE(creds_path.stat().st_mode) == 0o600
    assert claims.decode(creds.parse_creds(creds_path.read_text()).jwt).subject == user
    text = config.read_text()
    assert f'credentials: "{creds_path}"' in text and "port: 14222\n" in text
    assert '"nats-leaf://leaf.example.com:7422"' in text
    # nats-server's own check of the config (it reads the creds file when it starts, not in -t)
    checked = subprocess.run([nats_server_bin(), "-t", "-c", str(config)], capture_output=True, text=True,
                             timeout=20, cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    event = AuditEvent.objects.get(action=AuditEvent.Action.LEAFNODE_DOWNLOAD)
    assert event.actor_name == "platform" and event.detail["creds"] is True


def test_user_leafnode_refusals_write_nothing(account, tmp_path):
    zero = run("user", "create", "--account", account, "--name", "zero", "--subs", "0")
    out_dir = tmp_path / "leaf"
    with pytest.raises(CommandError, match="subscription limit is 0"):
        run("user", "leafnode", "--account", account, "--user", zero, "--out", str(out_dir))
    user = run("user", "create", "--account", account, "--name", "edge")
    with pytest.raises(CommandError, match="port is an integer"):
        run("user", "leafnode", "--account", account, "--user", user, "--out", str(out_dir), "--port", "70000")
    run("user", "revoke", "--account", account, "--user", user)
    with pytest.raises(CommandError, match="revoked"):
        run("user", "leafnode", "--account", account, "--user", user, "--out", str(out_dir))
    assert not out_dir.exists()
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.LEAFNODE_DOWNLOAD).exists()
