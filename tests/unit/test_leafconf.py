"""The leafnode config a tenant runs (pure): every URL in one remote, the creds path, the local port, quoting."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker_gateway.leafconf import LeafConfig, LeafConfigError, render_leaf_config

URLS = ("nats-leaf://a.example.com:7422", "nats-leaf://b.example.com:7422")


def test_one_remote_with_every_url_the_creds_and_a_loopback_client_port():
    text = render_leaf_config(LeafConfig(urls=URLS, credentials="edge.creds", comment="for edge\nline two"))
    assert text == (
        "# for edge\n# line two\n"
        'host: "127.0.0.1"\nport: 4222\n'
        "leafnodes {\n  remotes = [\n    {\n      urls: [\n"
        '        "nats-leaf://a.example.com:7422"\n        "nats-leaf://b.example.com:7422"\n'
        '      ]\n      credentials: "edge.creds"\n    }\n  ]\n}\n'
    )
    assert "server_name" not in text and "authorization" not in text  # local clients need no credentials


@given(st.text(min_size=1).filter(lambda s: "\n" not in s))
def test_the_credentials_path_is_quoted_as_json(path):
    text = render_leaf_config(LeafConfig(urls=URLS, credentials=path, port=14222))
    line = next(x for x in text.split("\n") if x.strip().startswith("credentials:"))
    assert json.loads(line.split(":", 1)[1]) == path


@pytest.mark.parametrize("cfg", [
    LeafConfig(urls=(), credentials="x.creds"),
    LeafConfig(urls=("nats://a:4222",), credentials="x.creds"),  # a client URL, not a leafnode one
    LeafConfig(urls=("nats-leaf://a:7422 b",), credentials="x.creds"),
    LeafConfig(urls=URLS, credentials=""),
    LeafConfig(urls=URLS, credentials="a\nb"),
    LeafConfig(urls=URLS, credentials="x.creds", port=0),
    LeafConfig(urls=URLS, credentials="x.creds", port=65536),
])
def test_what_nats_server_would_not_start_with_is_refused(cfg):
    with pytest.raises(LeafConfigError):
        render_leaf_config(cfg)


def test_the_rendering_passes_nats_servers_own_check(tmp_path):
    import subprocess

    from broker_gateway.fleet.local import nats_server_bin

    (tmp_path / "edge.creds").write_text("")
    config = tmp_path / "leaf.conf"
    config.write_text(render_leaf_config(LeafConfig(urls=URLS, credentials=str(tmp_path / "edge.creds"),
                                                    server_name="edge-1")))
    checked = subprocess.run([nats_server_bin(), "-t", "-c", str(config)], capture_output=True, text=True, timeout=20)
    assert checked.returncode == 0, checked.stdout + checked.stderr
