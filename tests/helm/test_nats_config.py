"""The chart's nats.conf is the control plane's own config rendering, character for character, and the
real nats-server accepts it and runs with it.

Every pod of the StatefulSet shares one ConfigMap; its only per-pod value, the server name, is written
`server_name: $POD_NAME` (nats-server resolves it from the pod's environment, set from the downward API).
So: chart text == config.render_statefulset(...) exactly, and, with the pod's name substituted, it is
config.render() of that pod's ServerConfig."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from pathlib import Path

import pytest
import yaml

from broker_gateway import config
from broker_gateway.fleet.local import nats_server_bin
from tests.helm.conftest import NAMESPACE, OPERATOR, RELEASE, deep_merge, production_values, seeds_in
from tests.natsproc import free_port, wait_for_port


def layout_for(values: dict, *, namespace: str = NAMESPACE, release: str = RELEASE) -> config.StatefulSetLayout:
    """The same inputs, read from the values the way a person reads values.yaml (not from the chart)."""
    nats = values.get("nats", {})
    cfg = nats.get("config", {})
    ports = {"client": 4222, "cluster": 6222, "monitoring": 8222, "leafnode": 7422, **cfg.get("ports", {})}
    return config.StatefulSetLayout(
        name=f"{release}-nats", headless_service=f"{release}-nats-headless", namespace=namespace,
        replicas=nats.get("replicas", 3), cluster_name=cfg.get("clusterName", "natsctl"),
        cluster_domain=values.get("clusterDomain", "cluster.local"),
        client_port=ports["client"], cluster_port=ports["cluster"], monitoring_port=ports["monitoring"],
        leafnode_port=ports["leafnode"], data_dir=nats.get("storage", {}).get("mountPath", "/data"),
    )


def tuning_for(values: dict) -> dict:
    cfg = values.get("nats", {}).get("config", {})
    resolver = {"interval": "30s", "timeout": "1.9s", "allowDelete": True, **cfg.get("resolver", {})}
    return {
        "operator_jwt": OPERATOR.operator_jwt,
        "system_account": OPERATOR.system.public_key,
        "system_account_jwt": OPERATOR.system_jwt,
        "resolver_interval": resolver["interval"],
        "resolver_timeout": resolver["timeout"],
        "allow_delete": resolver["allowDelete"],
        "lame_duck_duration": cfg.get("lameDuckDuration", "30s"),
        "max_payload": cfg.get("maxPayload"),
    }


CASES = {
    "defaults": {},
    "one-node": {"nats": {"replicas": 1}},
    "five-nodes": {"nats": {"replicas": 5}},
    "tuned": {
        "clusterDomain": "k8s.internal",
        "nats": {
            "replicas": 2,
            "config": {
                "clusterName": "eu-west_1",
                "ports": {"client": 14222, "cluster": 16222, "monitoring": 18222, "leafnode": 17422},
                "resolver": {"interval": "1m30s", "timeout": "500ms", "allowDelete": False},
                "lameDuckDuration": "45s",
                "maxPayload": 8 * 1024 * 1024,
                "extraConfig": "\nmax_connections: 1000\nmax_subscriptions: 500\n",
            },
            "storage": {"mountPath": "/var/lib/nats/"},
        },
    },
}


@pytest.mark.parametrize("case", CASES)
def test_chart_config_is_the_control_planes_rendering(render, case):
    values = deep_merge(CASES[case], OPERATOR.values)
    text = render(values).nats_conf()
    layout = layout_for(values)
    if case == "tuned":
        layout = config.StatefulSetLayout(**{**layout.__dict__, "data_dir": "/var/lib/nats"})
    extra = values["nats"].get("config", {}).get("extraConfig", "")
    assert text == config.render_statefulset(layout, extra_config=extra, **tuning_for(values))
    # Per pod: the same text as render() of that pod's own ServerConfig, once $POD_NAME is the pod's name.
    for index in range(layout.replicas):
        pod = layout.pod_name(index)
        own = config.render(config.statefulset_server_config(layout, server_name=pod, **tuning_for(values)))
        if extra.strip():
            own += "# extra config of this node\n" + extra.strip() + "\n"
        assert text.replace(config.POD_NAME_REF, json.dumps(pod)) == own


def test_config_spells_out_what_the_pods_need(render):
    text = render(OPERATOR.values).nats_conf()
    lines = text.splitlines()
    assert "server_name: $POD_NAME" in lines
    assert 'host: "0.0.0.0"' in lines and 'http: "0.0.0.0:8222"' in lines
    assert f'operator: "{OPERATOR.operator_jwt}"' in lines
    assert f'system_account: "{OPERATOR.system.public_key}"' in lines
    assert "  type: full" in lines and '  dir: "/data/resolver"' in lines and '  store_dir: "/data/jetstream"' in lines
    assert f'  {OPERATOR.system.public_key}: "{OPERATOR.system_jwt}"' in lines
    routes = [f'"nats://natsctl-nats-{i}.natsctl-nats-headless.{NAMESPACE}.svc.cluster.local:6222"' for i in range(3)]
    assert "  routes: [" + ", ".join(routes) + "]" in lines
    assert seeds_in(text) == []


def test_a_lone_node_has_no_cluster_block(render):
    # as the local fleet: nats-server refuses clustered JetStream without routes
    text = render(deep_merge(OPERATOR.values, {"nats": {"replicas": 1}})).nats_conf()
    assert "cluster: {" not in text and "jetstream: {" in text


# --- the real nats-server ---------------------------------------------------------------------------


def nats_server_check(text: str, tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    path = tmp_path / "nats.conf"
    path.write_text(text)
    return subprocess.run([nats_server_bin(), "-t", "-c", str(path)], capture_output=True, text=True, timeout=30,
                          cwd=tmp_path, env={**os.environ, **env})


@pytest.mark.parametrize("case", CASES)
def test_nats_server_accepts_the_chart_config(render, tmp_path, case):
    # The pod's paths (the volume) point into a temporary directory; everything else is as rendered.
    values = deep_merge(CASES[case], OPERATOR.values, {"nats": {"storage": {"mountPath": str(tmp_path / "data")}}})
    text = render(values).nats_conf()
    result = nats_server_check(text, tmp_path, {"POD_NAME": f"{RELEASE}-nats-0"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is valid" in result.stdout + result.stderr


def test_nats_server_needs_the_pods_name_from_the_environment(render, tmp_path):
    # negative control: $POD_NAME is really read from the environment, so the check above means something
    values = deep_merge(OPERATOR.values, {"nats": {"storage": {"mountPath": str(tmp_path / "data")}}})
    text = render(values).nats_conf()
    env = {k: v for k, v in os.environ.items() if k != "POD_NAME"}
    path = tmp_path / "nats.conf"
    path.write_text(text)
    result = subprocess.run([nats_server_bin(), "-t", "-c", str(path)], capture_output=True, text=True, timeout=30,
                            env=env)
    assert result.returncode != 0
    assert "POD_NAME" in result.stdout + result.stderr


def test_nats_server_runs_one_node_from_the_chart_config(render, tmp_path):
    """One node, as a pod would run it (ports free on loopback, its volume a temporary directory): it
    starts in operator mode, takes its name from POD_NAME, and serves the preloaded system account."""
    client, monitoring, cluster, leafnode = free_port(), free_port(), free_port(), free_port()
    values = deep_merge(OPERATOR.values, {"nats": {
        "replicas": 1,
        "config": {"ports": {"client": client, "cluster": cluster, "monitoring": monitoring, "leafnode": leafnode}},
        "storage": {"mountPath": str(tmp_path / "data")},
    }})
    text = render(values).nats_conf().replace('"0.0.0.0', '"127.0.0.1')  # no wildcard listeners in tests
    (tmp_path / "nats.conf").write_text(text)
    with open(tmp_path / "nats.log", "wb") as log:
        proc = subprocess.Popen([nats_server_bin(), "-c", str(tmp_path / "nats.conf")], stdout=log,
                                stderr=subprocess.STDOUT, env={**os.environ, "POD_NAME": "natsctl-nats-0"})
    try:
        wait_for_port(monitoring, proc=proc)
        varz = json.load(urllib.request.urlopen(f"http://127.0.0.1:{monitoring}/varz", timeout=5))
        assert varz["server_name"] == "natsctl-nats-0"
        assert varz["system_account"] == OPERATOR.system.public_key
        assert varz["port"] == client
        accountz = json.load(urllib.request.urlopen(
            f"http://127.0.0.1:{monitoring}/accountz?acc={OPERATOR.system.public_key}", timeout=5))
        assert accountz["account_detail"]["jwt"] == OPERATOR.system_jwt
        assert (tmp_path / "data" / "resolver").is_dir()
        assert urllib.request.urlopen(f"http://127.0.0.1:{monitoring}/healthz", timeout=5).status == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# --- the values file the control plane writes -------------------------------------------------------


def test_chart_values_are_public_material_only():
    text = config.chart_values(operator_jwt=OPERATOR.operator_jwt, system_account=OPERATOR.system.public_key,
                               system_account_jwt=OPERATOR.system_jwt)
    assert yaml.safe_load(text) == OPERATOR.values
    assert seeds_in(text) == []
    for field in ("operator_jwt", "system_account", "system_account_jwt"):
        args = {"operator_jwt": OPERATOR.operator_jwt, "system_account": OPERATOR.system.public_key,
                "system_account_jwt": OPERATOR.system_jwt}
        with pytest.raises(ValueError, match="seed must never"):
            config.chart_values(**{**args, field: OPERATOR.system.seed})
        with pytest.raises(ValueError, match="empty"):
            config.chart_values(**{**args, field: " "})


def test_the_schema_refuses_a_seed_for_the_operator(render):
    import helm_python

    for field, value in (("jwt", OPERATOR.operator.seed), ("systemAccount", OPERATOR.system.seed),
                         ("systemAccountJwt", OPERATOR.signing_key.seed)):
        with pytest.raises(helm_python.HelmError, match=f"/nats/operator/{field}"):
            render(deep_merge(OPERATOR.values, {"nats": {"operator": {field: value}}}))


@pytest.mark.django_db
def test_chart_values_command_feeds_the_chart_what_the_control_plane_renders(operator_setup, render, tmp_path):
    from django.core.management import call_command

    from accounts_service.services import system_account_ensure
    from operators.selectors import operator_get

    out = tmp_path / "values-nats.yaml"
    call_command("config", "chart-values", "--out", str(out))
    text = out.read_text()
    assert seeds_in(text) == []
    values = yaml.safe_load(text)
    operator, system = operator_get(), system_account_ensure()
    assert values == {"nats": {"operator": {"jwt": operator.jwt, "systemAccount": system.public_key,
                                            "systemAccountJwt": system.jwt}}}
    rendered = render(values).nats_conf()
    assert rendered == config.render_statefulset(
        layout_for(values), operator_jwt=operator.jwt, system_account=system.public_key,
        system_account_jwt=system.jwt, resolver_interval="30s", lame_duck_duration="30s")
    assert seeds_in(render(values).text()) == []


@pytest.mark.django_db
def test_chart_values_command_to_stdout(operator_setup, capsys):
    from django.core.management import call_command

    call_command("config", "chart-values", "--out", "-")
    assert yaml.safe_load(capsys.readouterr().out)["nats"]["operator"]["jwt"].count(".") == 2


def test_production_values_render_the_fleet_they_describe(render):
    values = deep_merge(production_values(), OPERATOR.values)
    text = render(values).nats_conf()
    assert text == config.render_statefulset(layout_for(values), extra_config="max_connections: 100000",
                                             **tuning_for(values))


# --- regions: one StatefulSet each, gateways between them ------------------------------------------


def region_layouts(values: dict, *, namespace: str = NAMESPACE,
                   release: str = RELEASE) -> dict[str, config.StatefulSetLayout]:
    """Every local region's layout by StatefulSet name, read from the values as a person reads values.yaml:
    <release>-nats-<region> (or <release>-nats with legacyNames), each pod's gateway URL by its DNS name, a
    remote region's gatewayUrls as given; every region lists every region."""
    nats = values["nats"]
    base = layout_for(values, namespace=namespace, release=release)
    gateway_port = nats.get("config", {}).get("ports", {}).get("gateway", 7222)
    layouts, gateways = {}, []
    for region in nats["regions"]:
        if region.get("gatewayUrls"):
            gateways.append((region["name"], region["gatewayUrls"]))
            continue
        name = f"{release}-nats" if region.get("legacyNames") else f"{release}-nats-{region['name']}"
        layout = config.StatefulSetLayout(**{**base.__dict__, "name": name, "headless_service": f"{name}-headless",
                                             "replicas": region.get("replicas", nats.get("replicas", 3)),
                                             "region": region["name"], "gateway_port": gateway_port})
        layouts[name] = layout
        gateways.append((region["name"], config.statefulset_gateway_urls(layout)))
    return {name: config.StatefulSetLayout(**{**layout.__dict__, "gateways": tuple(gateways)})
            for name, layout in layouts.items()}


REGION_CASES = {
    "one-region": {"nats": {"regions": [{"name": "us-east", "replicas": 3}]}},
    "one-region-one-node": {"nats": {"regions": [{"name": "us-east", "replicas": 1}]}},
    "three-regions": {"nats": {"regions": [{"name": "us-east", "replicas": 3}, {"name": "eu-west", "replicas": 1},
                                           {"name": "ap-south", "replicas": 2}]}},
    "with-remote": {"nats": {"regions": [
        {"name": "us-east"}, {"name": "eu-west", "replicas": 2},
        {"name": "sa-east", "gatewayUrls": ["nats://gw-0.sa.example.internal:7222", "tls://10.8.0.4:7222"]}]}},
    "legacy-names": {"nats": {"regions": [{"name": "natsctl", "replicas": 3, "legacyNames": True},
                                          {"name": "eu-west", "replicas": 2}]}},
    "tuned": {"clusterDomain": "k8s.internal", "nats": {
        "replicas": 2,
        "config": {"ports": {"client": 14222, "cluster": 16222, "monitoring": 18222, "leafnode": 17422,
                             "gateway": 17222},
                   "resolver": {"interval": "1m30s", "timeout": "500ms", "allowDelete": False},
                   "maxPayload": 8 * 1024 * 1024, "extraConfig": "max_connections: 1000\n"},
        "regions": [{"name": "a", "storage": {"size": "1Gi"}}, {"name": "b-2", "replicas": 4}]}},
}


@pytest.mark.parametrize("case", REGION_CASES)
def test_each_regions_config_is_the_control_planes_rendering(render, case):
    values = deep_merge(REGION_CASES[case], OPERATOR.values)
    confs = render(values).nats_confs()
    layouts = region_layouts(values)
    assert set(confs) == set(layouts)
    extra = values["nats"].get("config", {}).get("extraConfig", "")
    for name, layout in layouts.items():
        text = confs[name]
        assert text == config.render_statefulset(layout, extra_config=extra, **tuning_for(values)), name
        for index in range(layout.replicas):  # per pod: render() of that pod's own ServerConfig
            pod = layout.pod_name(index)
            own = config.render(config.statefulset_server_config(layout, server_name=pod, **tuning_for(values)))
            if extra.strip():
                own += "# extra config of this node\n" + extra.strip() + "\n"
            assert text.replace(config.POD_NAME_REF, json.dumps(pod)) == own


def test_every_region_is_its_own_cluster_and_a_gateway_to_every_region(render):
    values = deep_merge(REGION_CASES["with-remote"], OPERATOR.values)
    confs = render(values).nats_confs()
    assert set(confs) == {"natsctl-nats-us-east", "natsctl-nats-eu-west"}  # sa-east runs elsewhere
    svc = f"{NAMESPACE}.svc.cluster.local"
    us = [f'"nats://natsctl-nats-us-east-{i}.natsctl-nats-us-east-headless.{svc}:7222"' for i in range(3)]
    eu = [f'"nats://natsctl-nats-eu-west-{i}.natsctl-nats-eu-west-headless.{svc}:7222"' for i in range(2)]
    gateways = ["  gateways: [",
                f'    {{name: "us-east", urls: [{", ".join(us)}]}}',
                f'    {{name: "eu-west", urls: [{", ".join(eu)}]}}',
                '    {name: "sa-east", urls: ["nats://gw-0.sa.example.internal:7222", "tls://10.8.0.4:7222"]}',
                "  ]"]
    for region, sts in (("us-east", "natsctl-nats-us-east"), ("eu-west", "natsctl-nats-eu-west")):
        text = confs[sts]
        lines = text.splitlines()
        cluster = lines.index("cluster: {")
        assert lines[cluster + 1] == f'  name: "{region}"'
        assert f"{sts}-headless" in lines[cluster + 3] and "-headless" not in lines[cluster + 3].replace(
            f"{sts}-headless", "")  # routes to its own region's pods only
        gateway = lines.index("gateway: {")
        assert lines[gateway + 1:gateway + 3] == [f'  name: "{region}"', '  listen: "0.0.0.0:7222"']
        assert lines[gateway + 3:gateway + 3 + len(gateways)] == gateways  # one list, shared by every region


def test_a_lone_node_region_of_a_supercluster_routes_to_itself(render):
    values = deep_merge(REGION_CASES["three-regions"], OPERATOR.values)
    text = render(values).nats_conf("natsctl-nats-eu-west-config")
    route = f"nats://natsctl-nats-eu-west-0.natsctl-nats-eu-west-headless.{NAMESPACE}.svc.cluster.local:6222"
    assert f'  routes: ["{route}"]' in text.splitlines() and "gateway: {" in text


def test_a_lone_region_has_no_gateway_and_a_lone_node_stays_standalone(render):
    text = render(deep_merge(REGION_CASES["one-region"], OPERATOR.values)).nats_conf(
        "natsctl-nats-us-east-config")
    assert "cluster: {" in text and 'name: "us-east"' in text and "gateway" not in text
    text = render(deep_merge(REGION_CASES["one-region-one-node"], OPERATOR.values)).nats_conf(
        "natsctl-nats-us-east-config")
    assert "cluster: {" not in text and "gateway" not in text


def test_a_supercluster_layout_needs_its_region():
    layout = config.StatefulSetLayout(name="n", headless_service="h", namespace="ns", replicas=1,
                                      gateways=(("a", ["nats://x:7222"]), ("b", ["nats://y:7222"])))
    with pytest.raises(ValueError, match="needs its region"):
        config.render_statefulset(layout, operator_jwt=OPERATOR.operator_jwt,
                                  system_account=OPERATOR.system.public_key, system_account_jwt=OPERATOR.system_jwt)


@pytest.mark.parametrize("case", ["three-regions", "with-remote", "legacy-names", "tuned"])
def test_nats_server_accepts_every_regions_config(render, tmp_path, case):
    values = deep_merge(REGION_CASES[case], OPERATOR.values, {"nats": {"storage": {"mountPath": str(tmp_path / "d")}}})
    confs = render(values).nats_confs()
    assert len(confs) >= 2
    for sts, text in confs.items():
        result = nats_server_check(text, tmp_path, {"POD_NAME": f"{sts}-0"})
        assert result.returncode == 0, sts + ": " + result.stdout + result.stderr
        assert "is valid" in result.stdout + result.stderr
