"""The CLI against a real nats-server: ``account push`` and ``account delete --url``."""

from __future__ import annotations

import time
from io import StringIO

import pytest
from django.core.management import call_command

from accounts_service.models import Account
from broker_gateway.propagation import account_lookup
from tests.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue().strip()


def test_account_push_returns_once_the_server_answered(nats_server):
    a = run("account", "create", "--team", "acme", "--name", "svc")
    started = time.monotonic()
    out = run("account", "push", a, "--url", nats_server.url, "--timeout", "20")
    elapsed = time.monotonic() - started
    assert "200 jwt updated" in out
    # One server with no routes: the push is done when it answered, not when the 20 s are up.
    assert elapsed < 5, elapsed
    assert account_lookup(account_public_key=a, url=nats_server.url) == Account.objects.get(public_key=a).jwt


def test_account_delete_url_deletes_it_from_that_server(nats_server):
    a = run("account", "create", "--team", "acme", "--name", "svc")
    run("account", "push", a, "--url", nats_server.url)
    assert account_lookup(account_public_key=a, url=nats_server.url)
    started = time.monotonic()
    out = run("account", "delete", a, "--url", nats_server.url, "--timeout", "20")
    assert f"deleted {a}" in out and "deleted 1 accounts" in out
    assert time.monotonic() - started < 5
    assert account_lookup(account_public_key=a, url=nats_server.url) == ""


def test_config_generate_has_jetstream_and_a_server_runs_it(operator_setup, tmp_path):
    import json
    import subprocess
    import urllib.request

    from broker_gateway.fleet.local import nats_server_bin
    from tests.natsproc import free_port, start_nats_server

    port, http_port = free_port(), free_port()
    out = tmp_path / "n.conf"
    run("config", "generate", "--out", str(out), "--port", str(port), "--http-port", str(http_port),
        "--resolver-dir", str(tmp_path / "jwt"), "--jetstream-dir", str(tmp_path / "js"))
    text = out.read_text()
    assert "jetstream: {" in text and str(tmp_path / "js") in text
    checked = subprocess.run([nats_server_bin(), "-t", "-c", str(out)], capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    server = start_nats_server(text, tmp_path / "nats", port=port, http_port=http_port)
    def varz() -> dict | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/varz", timeout=5) as resp:
                return json.loads(resp.read())
        except OSError:
            return None

    try:
        varz = wait_for(varz, timeout=10, what="/varz")
        assert varz["jetstream"]["config"]["store_dir"].startswith(str(tmp_path / "js"))
    finally:
        server.stop()
    run("config", "generate", "--out", str(out), "--no-jetstream", "--resolver-dir", str(tmp_path / "jwt"))
    assert "jetstream" not in out.read_text()


def test_scoped_signing_key_template_expands_the_users_tags(nats_server, tmp_path):
    import asyncio

    from tests.integration.test_nats_trust_chain import Inbox, open_conn
    from tests.waiting import wait_for_async

    a = run("account", "create", "--team", "acme", "--name", "plant")
    key = run("account", "signing-key", "add", "--account", a, "--role", "sensor",
              "--pub", "site.{{tag(site)}}.>", "--sub", "site.{{tag(site)}}.>")
    assert key.startswith("A") and len(key) == 56
    run("account", "push", a, "--url", nats_server.url)
    creds_path = tmp_path / "s1.creds"
    run("user", "create", "--account", a, "--name", "s1", "--role", "sensor", "--tag", "Site:Lyon",
        "--creds-out", str(creds_path))
    from operators import claims, creds

    user_jwt = claims.decode(creds.parse_creds(creds_path.read_text()).jwt)
    assert user_jwt.issuer == key and user_jwt.nats["tags"] == ["site:lyon"]

    async def scenario() -> None:
        conn = await open_conn(nats_server.url, creds_path.read_text(), name="s1")
        try:
            inbox = Inbox()
            await conn.nc.subscribe("site.lyon.>", cb=inbox.cb)
            await conn.nc.flush()
            await conn.nc.publish("site.lyon.temp", b"21")
            await conn.nc.flush()
            await wait_for_async(lambda: inbox.subjects() == ["site.lyon.temp"], what="the tag's subject")
            await conn.nc.publish("site.paris.temp", b"x")
            await conn.nc.flush()
            await wait_for_async(lambda: "permissions violation for publish" in conn.error_text(),
                                 what="another site refused")
        finally:
            await conn.close()

    asyncio.run(scenario())


def test_account_push_to_a_cluster_waits_for_every_server_and_no_longer(operator_setup, tmp_path):
    import json
    import urllib.request

    from broker_gateway.config import ClusterConfig
    from broker_gateway.nodes import server_config_build
    from tests.natsproc import free_port, start_nats_server

    ports = [(free_port(), free_port(), free_port()) for _ in range(2)]
    servers = []
    try:
        for i, (port, http_port, cluster_port) in enumerate(ports):
            routes = [f"nats://127.0.0.1:{c}" for _, _, c in ports if c != cluster_port]
            text = server_config_build(resolver_dir=tmp_path / f"jwt{i}", server_name=f"n{i}", port=port,
                                       http_port=http_port, resolver_interval="2m",
                                       cluster=ClusterConfig(name="c", port=cluster_port, routes=routes))
            servers.append(start_nats_server(text, tmp_path / f"n{i}", port=port, http_port=http_port))

        def routed() -> bool:
            for _, http_port, _ in ports:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/routez", timeout=5) as resp:
                        if not json.loads(resp.read())["num_routes"]:
                            return False
                except OSError:
                    return False
            return True

        wait_for(routed, timeout=10, what="the two servers routed")
        a = run("account", "create", "--team", "acme", "--name", "svc")
        started = time.monotonic()
        out = run("account", "push", a, "--url", servers[0].url, "--timeout", "20")
        assert time.monotonic() - started < 5
        assert "n0: 200 jwt updated" in out and "n1: 200 jwt updated" in out
    finally:
        for server in servers:
            server.stop()
