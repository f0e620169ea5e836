"""helm/natsctl rendered and linted by a real Helm engine, every manifest validated against the Kubernetes
schemas, and the properties the deployment relies on checked on the rendered objects."""

from __future__ import annotations

import pytest
import yaml
from helm_python import HelmError, lint
from kubernetes_validate import utils as kv

from operators.sealing import Keyring
from tests.helm.conftest import (
    CHART,
    NAMESPACE,
    OPERATOR,
    RELEASE,
    containers,
    deep_merge,
    env_of,
    pod_spec,
    production_values,
    seeds_in,
)

COMPONENTS = ["web", "worker", "beat", "collector", "fleet", "migrate", "nats", "test", "postgresql", "redis"]
CONTROL_PLANE = {"web": "Deployment", "worker": "Deployment", "beat": "Deployment", "collector": "Deployment",
                 "fleet": "Deployment", "migrate": "Job"}
THREE_REGIONS = {"nats": {
    "regions": [
        {"name": "us-east", "replicas": 3},
        {"name": "eu-west", "replicas": 1, "storage": {"size": "20Gi", "storageClassName": "eu-ssd"},
         "resources": {"requests": {"cpu": "500m"}}, "nodeSelector": {"topology.kubernetes.io/region": "eu-west1"},
         "tolerations": [{"key": "nats", "operator": "Exists", "effect": "NoSchedule"}],
         "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
             {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["nats"]}]}]}}}},
        {"name": "ap-south", "replicas": 2},
        {"name": "sa-east", "gatewayUrls": ["nats://gw.sa.example.internal:7222"]},
    ],
    "gatewayService": {"enabled": True, "merge": {"metadata": {"annotations": {
        "networking.gke.io/load-balancer-type": "Internal"}}}},
}}
# The chart's kubeVersion floor and the newest schemas kubernetes-validate ships.
KUBE_VERSIONS = ["1.27", kv.latest_version()]

VALUE_SETS = {
    "default": lambda: {},
    "default+operator": lambda: OPERATOR.values,
    "production": production_values,
    "production+operator": lambda: deep_merge(production_values(), OPERATOR.values),
    "regions+operator": lambda: deep_merge(OPERATOR.values, THREE_REGIONS),
}


@pytest.fixture(scope="module")
def rendered(render):
    return {name: render(make()) for name, make in VALUE_SETS.items()}


# --- Helm's own checks ------------------------------------------------------------------------------


@pytest.mark.parametrize("values", VALUE_SETS)
def test_helm_lint_is_clean(values):
    report = lint(CHART, VALUE_SETS[values](), strict=True, namespace=NAMESPACE, kube_version="v1.30.0")
    assert report["errors"] == []
    problems = [m for m in report["messages"] if m["severity"] >= 2]  # warnings and errors
    assert problems == [], problems
    assert report["total_charts_linted"] == 1


@pytest.mark.parametrize("values", VALUE_SETS)
@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
def test_every_manifest_is_valid_kubernetes(rendered, values, kube_version):
    objects = rendered[values].objects()
    assert len(objects) >= 10
    for obj in objects:
        try:
            kv.validate(obj, kube_version, strict=True)
        except kv.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']} at {path}: {exc.message}")


def test_kubernetes_validation_is_meaningful(rendered):
    # negative control: a misspelt field and a wrong type are refused
    deployment = rendered["default"].get("Deployment", f"{RELEASE}-web")
    broken = deep_merge(deployment, {"spec": {"replica": 2}})
    with pytest.raises(kv.ValidationError):
        kv.validate(broken, KUBE_VERSIONS[-1], strict=True)
    broken = deep_merge(deployment, {"spec": {"replicas": "two"}})
    with pytest.raises(kv.ValidationError):
        kv.validate(broken, KUBE_VERSIONS[-1], strict=True)


# --- the values grammar -----------------------------------------------------------------------------


def test_every_component_block_has_the_same_shape(chart):
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for name in COMPONENTS:
        block = values[name]
        assert {"enabled", "replicas", "resources", "merge", "patch"} <= set(block), name
        assert block["merge"] == {} and block["patch"] == [] and block["resources"] == {}, name
    schema = chart.schema
    for name in COMPONENTS:
        assert {"enabled", "replicas", "resources", "merge", "patch"} <= set(schema["properties"][name]["required"])
    assert chart.values == values  # Helm reads the same file


@pytest.mark.parametrize(("values", "where"), [
    ({"beat": {"replicas": 2}}, "/beat/replicas"),
    ({"collector": {"replicas": 3}}, "/collector/replicas"),
    ({"fleet": {"replicas": 2}}, "/fleet/replicas"),
    ({"web": {"replica": 2}}, "/web"),
    ({"wbe": {}}, "wbe"),
    ({"web": {"patch": [{"op": "move", "path": "/spec", "from": "/x"}]}}, "/web/patch/0"),
    ({"web": {"patch": [{"op": "add", "path": "spec"}]}}, "/web/patch/0/path"),
    ({"web": {"merge": []}}, "/web/merge"),
    ({"nats": {"config": {"resolver": {"interval": "2 minutes"}}}}, "/nats/config/resolver/interval"),
    ({"nats": {"config": {"lameDuckDuration": "30"}}}, "/nats/config/lameDuckDuration"),
    ({"nats": {"config": {"clusterName": "a b"}}}, "/nats/config/clusterName"),
    ({"nats": {"config": {"ports": {"client": 70000}}}}, "/nats/config/ports/client"),
    ({"seedEncryptionKeys": {"value": "k1:not-a-key"}}, "/seedEncryptionKeys/value"),
    ({"externalDatabase": {"url": "mysql://x"}}, "/externalDatabase/url"),
    ({"postgresql": {"password": "p@ss/word"}}, "/postgresql/password"),
    ({"nats": {"regions": [{"name": "US-East"}]}}, "/nats/regions/0/name"),
    ({"nats": {"regions": [{"name": "-east"}]}}, "/nats/regions/0/name"),
    ({"nats": {"regions": [{"name": "a" * 33}]}}, "/nats/regions/0/name"),
    ({"nats": {"regions": [{"name": "us_east"}]}}, "/nats/regions/0/name"),
    ({"nats": {"regions": [{"replicas": 3}]}}, "/nats/regions/0"),
    ({"nats": {"regions": [{"name": "a", "replicas": 0}]}}, "/nats/regions/0/replicas"),
    ({"nats": {"regions": [{"name": "a", "replica": 2}]}}, "/nats/regions/0"),
    ({"nats": {"regions": [{"name": "a"}, {"name": "b", "gatewayUrls": []}]}}, "/nats/regions/1/gatewayUrls"),
    ({"nats": {"regions": [{"name": "a"}, {"name": "b", "gatewayUrls": ["http://x:7222"]}]}},
     "/nats/regions/1/gatewayUrls/0"),
    ({"nats": {"regions": [{"name": "a"}, {"name": "b", "gatewayUrls": ["nats://x:7222"], "replicas": 2}]}},
     "/nats/regions/1"),
    ({"nats": {"regions": {"name": "a"}}}, "/nats/regions"),
    ({"nats": {"config": {"ports": {"gateway": 0}}}}, "/nats/config/ports/gateway"),
])
def test_schema_refuses_bad_values(render, values, where):
    with pytest.raises(HelmError) as exc:
        render(values)
    assert "schema" in str(exc.value) and where in str(exc.value)


# --- merge and patch --------------------------------------------------------------------------------


def test_merge_and_patch_reach_the_rendered_objects(render):
    values = deep_merge(OPERATOR.values, {
        "web": {
            "merge": {"metadata": {"annotations": {"team": "platform"}},
                      "spec": {"template": {"spec": {"nodeSelector": {"pool": "web"}}}}},
            "patch": [
                {"op": "add", "path": "/spec/template/spec/containers/0/env/-", "value": {"name": "X", "value": "1"}},
                {"op": "replace", "path": "/spec/replicas", "value": 7},
                {"op": "remove", "path": "/spec/template/spec/containers/0/startupProbe"},
                {"op": "add", "path": "/metadata/labels/a~1b", "value": "slash"},
            ],
            "service": {"patch": [{"op": "replace", "path": "/spec/ports/0/port", "value": 8080}]},
        },
        "nats": {
            "merge": {"spec": {"template": {"metadata": {"annotations": {"scrape": "yes"}}}}},
            "patch": [{"op": "add", "path": "/spec/template/spec/containers/0/ports/0",
                       "value": {"name": "websocket", "containerPort": 8080}}],
            "configMap": {"merge": {"metadata": {"annotations": {"note": "cm"}}}},
        },
        "worker": {"patch": [{"op": "remove", "path": "/spec/template/spec/initContainers/0"}]},
    })
    out = render(values)
    web = out.get("Deployment", f"{RELEASE}-web")
    assert web["metadata"]["annotations"] == {"team": "platform"}
    assert web["metadata"]["labels"]["a/b"] == "slash"
    assert web["spec"]["replicas"] == 7
    assert web["spec"]["template"]["spec"]["nodeSelector"] == {"pool": "web"}
    container = web["spec"]["template"]["spec"]["containers"][0]
    assert container["env"][-1] == {"name": "X", "value": "1"} and "startupProbe" not in container
    assert "livenessProbe" in container  # the merge kept what it did not name
    assert out.get("Service", f"{RELEASE}-web")["spec"]["ports"][0]["port"] == 8080
    sts = out.get("StatefulSet", f"{RELEASE}-nats")
    assert sts["spec"]["template"]["metadata"]["annotations"]["scrape"] == "yes"
    assert "checksum/config" in sts["spec"]["template"]["metadata"]["annotations"]
    assert [p["name"] for p in sts["spec"]["template"]["spec"]["containers"][0]["ports"]][:2] == ["websocket", "client"]
    assert out.get("ConfigMap", f"{RELEASE}-nats-config")["metadata"]["annotations"] == {"note": "cm"}
    assert out.get("Deployment", f"{RELEASE}-worker")["spec"]["template"]["spec"]["initContainers"] == []


@pytest.mark.parametrize(("patch", "message"), [
    ({"op": "remove", "path": "/spec/nope"}, '"nope" does not exist'),
    ({"op": "replace", "path": "/spec/template/spec/containers/5", "value": {}}, "out of range"),
    ({"op": "add", "path": "/spec/template/spec/containers/x", "value": {}}, "not a list index"),
    ({"op": "remove", "path": "/spec/template/spec/containers/-"}, "only names where to add"),
    ({"op": "add", "path": "/spec/replicas/x", "value": 1}, "cannot go into"),
])
def test_a_bad_patch_fails_the_render_and_says_where(render, patch, message):
    with pytest.raises(HelmError, match="patch") as exc:
        render({"web": {"patch": [patch]}})
    assert message in str(exc.value)


# --- what a default install brings up -------------------------------------------------------------


def test_default_install_is_the_control_plane_and_quick_start_datastores(rendered):
    out = rendered["default"]
    assert out.names() == sorted([
        "Deployment/natsctl-beat", "Deployment/natsctl-collector", "Deployment/natsctl-fleet",
        "Deployment/natsctl-redis", "Deployment/natsctl-web", "Deployment/natsctl-worker", "Job/natsctl-migrate",
        "Role/natsctl-fleet", "RoleBinding/natsctl-fleet", "Secret/natsctl", "Service/natsctl-postgresql",
        "Service/natsctl-redis", "Service/natsctl-web", "ServiceAccount/natsctl-fleet",
        "StatefulSet/natsctl-postgresql",
    ])
    # no operator yet: the fleet waits for `manage.py config chart-values`, and the notes say how
    assert "NOT deployed yet" in out.notes and "config chart-values" in out.notes


def test_with_the_operator_the_fleet_and_its_test_are_rendered(rendered):
    out = rendered["default+operator"]
    for name in ("ConfigMap/natsctl-nats-config", "StatefulSet/natsctl-nats", "Service/natsctl-nats",
                 "Service/natsctl-nats-headless", "PodDisruptionBudget/natsctl-nats",
                 "Pod/natsctl-test-request-reply"):
        assert name in out.names()
    assert "NOT deployed" not in out.notes and "helm test" in out.notes


def test_generated_secrets_are_usable(rendered):
    secret = rendered["default"].get("Secret", RELEASE)
    data = secret["stringData"]
    assert set(data) == {"DJANGO_SECRET_KEY", "SEED_ENCRYPTION_KEYS", "POSTGRES_PASSWORD"}
    assert len(Keyring.parse(data["SEED_ENCRYPTION_KEYS"]).keys) == 1  # the control plane's own parser
    assert len(data["DJANGO_SECRET_KEY"]) >= 50 and data["POSTGRES_PASSWORD"].isalnum()
    # uninstalling the release must not destroy the key that opens every sealed seed
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    # every pod reads the same Secret that is rendered (one generation per render)
    checksums = {o["spec"]["template"]["metadata"]["annotations"]["checksum/secret"]
                 for o in rendered["default"].kinds("Deployment") if o["metadata"]["name"] != f"{RELEASE}-redis"}
    assert len(checksums) == 1


def test_an_upgrade_never_generates_secrets(render):
    # Helm cannot read the release's Secret here (no cluster), as in a dry run: generating a new seed key
    # would orphan every sealed seed, a new database password would lock the control plane out.
    with pytest.raises(HelmError, match="refusing to generate new ones on an upgrade") as exc:
        render({}, upgrade=True)
    assert "secretKey, seedEncryptionKeys, postgresql.password" in str(exc.value)
    with pytest.raises(HelmError, match=r"^.*: seedEncryptionKeys: no value"):
        render({"secretKey": {"value": "s" * 50}, "postgresql": {"password": "pw"}}, upgrade=True)
    given = {"secretKey": {"value": "s" * 50}, "postgresql": {"password": "pw"},
             "seedEncryptionKeys": {"existingSecret": {"name": "keys", "key": "k"}}}
    out = render(given, upgrade=True)
    assert out.get("Secret", RELEASE)["stringData"] == {"DJANGO_SECRET_KEY": "s" * 50, "POSTGRES_PASSWORD": "pw"}


def test_extra_environment_takes_values_and_references(render):
    out = render({"django": {"env": {"API_THROTTLE_USER": "1/second", "EMAIL_URL": {
        "valueFrom": {"secretKeyRef": {"name": "mail", "key": "url"}}}}}})
    env = env_of(out.get("Deployment", f"{RELEASE}-worker")["spec"]["template"]["spec"]["containers"][0])
    assert env["API_THROTTLE_USER"] == "1/second"
    assert env["EMAIL_URL"] == {"secretKeyRef": {"name": "mail", "key": "url"}}


def test_inline_values_are_kept_in_the_chart_secret(render):
    key = "k1:" + "A" * 43 + "="
    out = render({"seedEncryptionKeys": {"value": key}, "secretKey": {"value": "s" * 60},
                  "postgresql": {"enabled": False}, "redis": {"enabled": False},
                  "externalDatabase": {"url": "postgres://u:p@db:5432/natsctl"},
                  "externalRedis": {"url": "redis://cache:6379/0"}})
    assert out.get("Secret", RELEASE)["stringData"] == {
        "DJANGO_SECRET_KEY": "s" * 60, "SEED_ENCRYPTION_KEYS": key,
        "DATABASE_URL": "postgres://u:p@db:5432/natsctl", "REDIS_URL": "redis://cache:6379/0"}
    env = env_of(out.get("Deployment", f"{RELEASE}-web")["spec"]["template"]["spec"]["containers"][0])
    assert env["DATABASE_URL"] == {"secretKeyRef": {"name": RELEASE, "key": "DATABASE_URL"}}
    assert env["REDIS_URL"] == {"secretKeyRef": {"name": RELEASE, "key": "REDIS_URL"}}


def test_no_database_is_a_clear_error(render):
    with pytest.raises(HelmError, match=r"externalDatabase\.url"):
        render({"postgresql": {"enabled": False}})
    with pytest.raises(HelmError, match=r"externalRedis\.url"):
        render({"redis": {"enabled": False}})


def test_production_reads_every_secret_from_existing_secrets(rendered):
    out = rendered["production+operator"]
    assert out.kinds("Secret") == []  # nothing of its own to keep
    expected = {
        "DJANGO_SECRET_KEY": {"secretKeyRef": {"name": "natsctl-django", "key": "DJANGO_SECRET_KEY"}},
        "SEED_ENCRYPTION_KEYS": {"secretKeyRef": {"name": "natsctl-seed-keys", "key": "SEED_ENCRYPTION_KEYS"}},
        "DATABASE_URL": {"secretKeyRef": {"name": "natsctl-database", "key": "DATABASE_URL"}},
        "REDIS_URL": {"secretKeyRef": {"name": "natsctl-redis", "key": "REDIS_URL"}},
    }
    for component, kind in CONTROL_PLANE.items():
        for container in containers(out.get(kind, f"{RELEASE}-{component}")):
            env = env_of(container)
            assert {k: env[k] for k in expected} == expected, (component, container["name"])
    assert "StatefulSet/natsctl-postgresql" not in out.names() and "Deployment/natsctl-redis" not in out.names()


# --- the control plane ------------------------------------------------------------------------------


def test_control_plane_pods_run_the_products_commands(rendered):
    """The same processes `manage.py up` runs locally, by command, from one image."""
    from django.conf import settings
    from django.core.management import get_commands

    out = rendered["production+operator"]
    commands = {c: next(x for x in containers(out.get(k, f"{RELEASE}-{c}")) if x["name"] == c)["command"]
                for c, k in CONTROL_PLANE.items()}
    assert commands["web"][:2] == ["gunicorn", "accounts_service.wsgi:application"]
    assert commands["web"][commands["web"].index("--bind") + 1] == "0.0.0.0:8000"
    assert commands["worker"][:4] == ["celery", "-A", "accounts_service", "worker"]
    assert commands["worker"][commands["worker"].index("-Q") + 1] == ",".join(settings.WORKER_QUEUES)
    assert commands["beat"][:4] == ["celery", "-A", "accounts_service", "beat"]
    assert commands["collector"] == ["python", "manage.py", "collector"]
    assert commands["fleet"] == ["python", "manage.py", "fleet", "run"]
    assert commands["migrate"] == ["python", "manage.py", "migrate", "--noinput"]
    known = get_commands()
    for command in ("collector", "fleet", "migrate", "config", "operator"):
        assert command in known
    images = {x["image"] for c, k in CONTROL_PLANE.items() for x in containers(out.get(k, f"{RELEASE}-{c}"))}
    assert images == {"registry.example.com/platform/natsctl:0.1.0"}


def test_control_plane_pods_share_one_environment(rendered):
    out = rendered["production+operator"]
    envs = []
    for component, kind in CONTROL_PLANE.items():
        for container in containers(out.get(kind, f"{RELEASE}-{component}")):
            envs.append(container["env"])
    web_env = out.get("Deployment", f"{RELEASE}-web")["spec"]["template"]["spec"]["containers"][0]["env"]
    base = [e for e in web_env if e["name"] != "API_THROTTLE_USER"]  # the example's patch on web only
    assert all(env[:len(base)] == base for env in envs)
    env = env_of({"env": base})
    # the settings the control plane renders configs with are the ones the fleet was rendered with
    # the Kubernetes FleetDriver's settings (accounts_service/settings.py K8S_*): this StatefulSet, its pods
    # by DNS name, the volume paths the config names; nodes are discovered, not created (FLEET_NODES=0)
    assert env["FLEET_DRIVER"] == "kubernetes" and env["FLEET_NODES"] == "0"
    assert env["K8S_STATEFULSET"] == "natsctl-nats" and env["K8S_NAMESPACE"] == NAMESPACE
    assert env["K8S_CONTAINER"] == "nats"
    assert env["K8S_NODE_HOST"] == "{pod}.{service}.{namespace}.svc.cluster.local"
    assert env["K8S_RESOLVER_DIR"] == "/data/resolver" and env["K8S_JETSTREAM_DIR"] == "/data/jetstream"
    sts = out.get("StatefulSet", f"{RELEASE}-nats")
    assert sts["spec"]["serviceName"] == "natsctl-nats-headless"  # {service} in K8S_NODE_HOST
    assert sts["spec"]["template"]["spec"]["containers"][0]["name"] == env["K8S_CONTAINER"]
    conf = out.nats_conf()
    assert f'dir: "{env["K8S_RESOLVER_DIR"]}"' in conf and f'store_dir: "{env["K8S_JETSTREAM_DIR"]}"' in conf
    assert env["NATS_RESOLVER_INTERVAL"] == "30s" and env["FLEET_LAME_DUCK_DURATION"] == "30s"
    assert env["NATS_PUBLIC_URLS"] == "nats://broker.example.com:4222"  # what tenants connect to, not pod names
    assert env["DJANGO_SECURE"] == "true"
    hosts = env["DJANGO_ALLOWED_HOSTS"].split(",")
    assert {"localhost", "nats.example.com", "natsctl-web", f"natsctl-web.{NAMESPACE}.svc"} <= set(hosts)


def test_control_plane_pods_are_locked_down(rendered):
    out = rendered["production+operator"]
    for component, kind in CONTROL_PLANE.items():
        obj = out.get(kind, f"{RELEASE}-{component}")
        spec = pod_spec(obj)
        assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] == 10001
        assert spec["automountServiceAccountToken"] is (component == "fleet")
        for container in containers(obj):
            sc = container["securityContext"]
            assert sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"]
            assert sc["capabilities"] == {"drop": ["ALL"]}
            assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]


def test_web_probes_pass_djangos_host_check(rendered):
    web = rendered["production+operator"].get("Deployment", f"{RELEASE}-web")
    container = web["spec"]["template"]["spec"]["containers"][0]
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"), ("startupProbe", "/healthz")):
        assert container[probe]["httpGet"]["path"] == path
        assert container[probe]["httpGet"]["httpHeaders"] == [{"name": "Host", "value": "localhost"}]
    ingress = rendered["production+operator"].get("Ingress", f"{RELEASE}-web")
    assert ingress["spec"]["rules"][0]["host"] == "nats.example.com"
    assert ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"] == {
        "name": f"{RELEASE}-web", "port": {"name": "http"}}


def test_singletons_and_the_migration_hook(rendered):
    out = rendered["production+operator"]
    for name in ("beat", "collector", "fleet"):
        deployment = out.get("Deployment", f"{RELEASE}-{name}")
        assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"] == {"type": "Recreate"}
    job = out.get("Job", f"{RELEASE}-migrate")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-install,pre-upgrade"
    assert "initContainers" not in job["spec"]["template"]["spec"]  # the migration does not wait for itself
    for name in ("web", "worker", "beat", "collector", "fleet"):
        init = out.get("Deployment", f"{RELEASE}-{name}")["spec"]["template"]["spec"]["initContainers"]
        assert init[0]["name"] == "wait-for-migrations" and "migrate --check" in init[0]["command"][-1]


def test_fleet_supervisor_rights_stay_in_its_namespace(rendered):
    out = rendered["production+operator"]
    assert out.kinds("ClusterRole") == [] and out.kinds("ClusterRoleBinding") == []
    rules = out.get("Role", f"{RELEASE}-fleet")["rules"]
    # exactly what the Kubernetes FleetDriver calls: read the StatefulSet and its pods, scale, delete a pod
    assert rules == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch", "delete"]},
        {"apiGroups": ["apps"], "resources": ["statefulsets"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["apps"], "resources": ["statefulsets/scale"], "verbs": ["get", "patch", "update"]},
    ]
    binding = out.get("RoleBinding", f"{RELEASE}-fleet")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": f"{RELEASE}-fleet", "namespace": NAMESPACE}]
    deployment = out.get("Deployment", f"{RELEASE}-fleet")
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == f"{RELEASE}-fleet"


# --- the broker fleet --------------------------------------------------------------------------------


def test_nats_statefulset(rendered):
    out = rendered["production+operator"]
    sts = out.get("StatefulSet", f"{RELEASE}-nats")
    spec = sts["spec"]
    assert spec["replicas"] == 5 and spec["podManagementPolicy"] == "Parallel"
    assert spec["serviceName"] == f"{RELEASE}-nats-headless"
    pod = spec["template"]["spec"]
    (nats,) = pod["containers"]
    assert nats["image"] == "nats:2.15.1-alpine"  # the official image, the version the control plane checks with
    assert nats["command"] == ["nats-server", "--config", "/etc/nats/nats.conf"]
    assert {p["name"]: p["containerPort"] for p in nats["ports"]} == {
        "client": 4222, "cluster": 6222, "monitor": 8222, "leafnode": 7422}
    assert nats["env"] == [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]
    assert nats["lifecycle"]["preStop"]["exec"]["command"] == ["nats-server", "--signal", "ldm=1"]
    # Ready is the control plane's node health (the Kubernetes driver): probed as the local supervisor probes
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert nats[probe]["httpGet"] == {"path": "/healthz?js-enabled-only=true", "port": "monitor"}, probe
    assert pod["terminationGracePeriodSeconds"] >= 30 + 10  # lame duck duration + the server's grace period
    assert {m["mountPath"] for m in nats["volumeMounts"]} == {"/etc/nats", "/data"}
    (claim,) = spec["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"
    assert claim["spec"]["resources"]["requests"]["storage"] == "50Gi"
    assert claim["spec"]["storageClassName"] == "fast-ssd"
    # a node scaled away takes its volume (the supervisor's `fleet remove`), an uninstall keeps them
    assert spec["persistentVolumeClaimRetentionPolicy"] == {"whenScaled": "Delete", "whenDeleted": "Retain"}
    headless = out.get("Service", f"{RELEASE}-nats-headless")["spec"]
    assert headless["clusterIP"] == "None" and headless["publishNotReadyAddresses"] is True
    assert {p["name"] for p in headless["ports"]} == {"client", "cluster", "monitor", "leafnode"}
    service = out.get("Service", f"{RELEASE}-nats")
    assert service["spec"]["type"] == "LoadBalancer"
    assert service["metadata"]["annotations"] == {"service.beta.kubernetes.io/aws-load-balancer-type": "nlb"}
    assert out.get("PodDisruptionBudget", f"{RELEASE}-nats")["spec"]["maxUnavailable"] == 1


def test_no_private_key_reaches_the_nats_pods(rendered):
    for name in ("default+operator", "production+operator"):
        out = rendered[name]
        assert seeds_in(out.text()) == []
        sts = out.get("StatefulSet", f"{RELEASE}-nats")
        pod = sts["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False
        assert [v for v in pod["volumes"] if set(v) - {"name", "configMap"}] == []  # a ConfigMap, nothing else
        for container in containers(sts):
            assert "envFrom" not in container
            assert all("secretKeyRef" not in str(e) for e in container.get("env", []))
        assert "secret" not in yaml.safe_dump(pod).lower()


def test_changing_the_config_rolls_the_pods(render):
    a = render(OPERATOR.values).get("StatefulSet", f"{RELEASE}-nats")
    b = render(deep_merge(OPERATOR.values, {"nats": {"replicas": 4}})).get("StatefulSet", f"{RELEASE}-nats")
    def checksum(sts):
        return sts["spec"]["template"]["metadata"]["annotations"]["checksum/config"]

    assert checksum(a) != checksum(b)


def test_helm_test_is_a_request_reply_round_trip_across_the_fleet(rendered):
    out = rendered["production+operator"]
    pod = out.get("Pod", f"{RELEASE}-test-request-reply")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    (container,) = pod["spec"]["containers"]
    assert container["image"] == "natsio/nats-box:0.19.7"
    env = env_of(container)
    headless = f"natsctl-nats-headless.{NAMESPACE}.svc.cluster.local:4222"
    assert env["REPLY_URL"] == f"nats://natsctl-nats-0.{headless}"
    assert env["REQUEST_URL"] == f"nats://natsctl-nats-4.{headless}"  # another node: the reply crosses a route
    script = container["command"][-1]
    assert 'reply "$SUBJECT" --echo' in script and 'request --timeout 2s "$SUBJECT"' in script
    assert '--creds "$NATS_CREDS"' in script and env["NATS_CREDS"] == "/creds/test.creds"
    (creds,) = [v for v in pod["spec"]["volumes"] if v["name"] == "creds"]
    assert creds["secret"]["secretName"] == "natsctl-helm-test"
    assert "Pod/natsctl-test-request-reply" not in rendered["default"].names()  # no fleet, no test


def test_names_follow_the_release(render):
    out = render(OPERATOR.values, name="edge")
    assert "StatefulSet/edge-natsctl-nats" in out.names()
    assert out.nats_conf().count("edge-natsctl-nats-headless") == 3
    out = render(deep_merge(OPERATOR.values, {"fullnameOverride": "brokers"}))
    assert "StatefulSet/brokers-nats" in out.names() and "Secret/brokers" in out.names()


def test_a_global_registry_prefixes_every_image(render):
    out = render(deep_merge(OPERATOR.values, {"global": {"image": {"registry": "mirror.local:5000"}}}))
    images = {c["image"] for o in out.objects() if o["kind"] in {"Deployment", "StatefulSet", "Job", "Pod"}
              for c in containers(o)}
    assert images == {"mirror.local:5000/natsctl:0.1.0", "mirror.local:5000/nats:2.15.1-alpine",
                      "mirror.local:5000/natsio/nats-box:0.19.7", "mirror.local:5000/postgres:17-alpine",
                      "mirror.local:5000/redis:7-alpine"}


# --- regions ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("regions", "message"), [
    ([{"name": "us-east"}, {"name": "us-east", "replicas": 1}], "region us-east is given twice"),
    ([{"name": "a", "gatewayUrls": ["nats://x:7222"]}], "at least one must run here"),
    ([{"name": "a", "legacyNames": True}, {"name": "b", "legacyNames": True}], "legacyNames is for one region"),
    ([{"name": "r" * 32}], "is 69 characters, more than 52"),
])
def test_bad_regions_fail_the_render_and_say_why(render, regions, message):
    with pytest.raises(HelmError, match=message):
        render(deep_merge(OPERATOR.values, {"fullnameOverride": "f" * 31, "nats": {"regions": regions}}))


def test_bad_regions_fail_helm_lint_too():
    report = lint(CHART, deep_merge(OPERATOR.values, {"nats": {"regions": [{"name": "Bad Name"}]}}), strict=True,
                  namespace=NAMESPACE, kube_version="v1.30.0")
    assert report["errors"] or any(m["severity"] >= 3 for m in report["messages"])
    assert "regions/0/name" in str(report)


def test_three_regions_are_three_statefulsets_with_their_own_services(rendered):
    out = rendered["regions+operator"]
    nats = sorted(n for n in out.names() if "-nats" in n)
    expected = []
    for region, replicas in (("us-east", 3), ("eu-west", 1), ("ap-south", 2)):
        sts = f"natsctl-nats-{region}"
        expected += [f"ConfigMap/{sts}-config", f"StatefulSet/{sts}", f"Service/{sts}", f"Service/{sts}-headless",
                     f"Service/{sts}-gateway"] + ([f"PodDisruptionBudget/{sts}"] if replicas > 1 else [])
    assert nats == sorted(expected)  # sa-east runs elsewhere: nothing of it here
    for region, replicas in (("us-east", 3), ("eu-west", 1), ("ap-south", 2)):
        sts = f"natsctl-nats-{region}"
        obj = out.get("StatefulSet", sts)
        labels = obj["spec"]["selector"]["matchLabels"]
        assert labels["natsctl.io/region"] == region and obj["spec"]["replicas"] == replicas
        assert obj["spec"]["serviceName"] == f"{sts}-headless"
        pod = obj["spec"]["template"]
        assert labels.items() <= pod["metadata"]["labels"].items()
        assert pod["spec"]["volumes"] == [{"name": "config", "configMap": {"name": f"{sts}-config"}}]
        assert pod["spec"]["topologySpreadConstraints"][0]["labelSelector"]["matchLabels"] == labels
        ports = {p["name"]: p["containerPort"] for p in pod["spec"]["containers"][0]["ports"]}
        assert ports["gateway"] == 7222
        for service in (sts, f"{sts}-headless", f"{sts}-gateway"):
            assert out.get("Service", service)["spec"]["selector"] == labels  # this region's pods only
        headless = out.get("Service", f"{sts}-headless")["spec"]["ports"]
        assert {"name": "gateway", "port": 7222, "targetPort": "gateway", "protocol": "TCP"} in headless
        gateway = out.get("Service", f"{sts}-gateway")
        assert gateway["spec"]["type"] == "LoadBalancer" and [p["name"] for p in gateway["spec"]["ports"]] == [
            "gateway"]
        assert gateway["metadata"]["annotations"] == {"networking.gke.io/load-balancer-type": "Internal"}
        assert f'name: "{region}"' in out.nats_conf(f"{sts}-config")
        # the checksum of its own config
        assert pod["metadata"]["annotations"]["checksum/config"]
    eu = out.get("StatefulSet", "natsctl-nats-eu-west")
    spec = eu["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == {"topology.kubernetes.io/region": "eu-west1"}
    assert spec["tolerations"][0]["key"] == "nats" and "nodeAffinity" in spec["affinity"]
    assert spec["containers"][0]["resources"] == {"requests": {"cpu": "500m"}}
    claim = eu["spec"]["volumeClaimTemplates"][0]["spec"]
    assert claim["resources"]["requests"]["storage"] == "20Gi" and claim["storageClassName"] == "eu-ssd"
    us = out.get("StatefulSet", "natsctl-nats-us-east")
    assert us["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "10Gi"
    assert "nodeSelector" not in us["spec"]["template"]["spec"]
    checksums = {out.get("StatefulSet", f"natsctl-nats-{r}")["spec"]["template"]["metadata"]["annotations"][
        "checksum/config"] for r in ("us-east", "eu-west", "ap-south")}
    assert len(checksums) == 3


def test_the_control_plane_discovers_every_regions_statefulset(rendered):
    out = rendered["regions+operator"]
    env = env_of(out.get("Deployment", f"{RELEASE}-fleet")["spec"]["template"]["spec"]["containers"][0])
    assert env["K8S_STATEFULSETS"] == (
        "us-east=natsctl-nats-us-east,eu-west=natsctl-nats-eu-west,ap-south=natsctl-nats-ap-south")
    assert env["K8S_STATEFULSET"] == "natsctl-nats-us-east" and env["FLEET_REGION"] == "us-east"
    assert env["FLEET_GATEWAY_PORT"] == "7222"
    from broker_gateway.fleet.kubernetes_regions import statefulsets_parse

    assert dict(statefulsets_parse(env["K8S_STATEFULSETS"])) == {  # what the driver reads: each one rendered
        r: o["metadata"]["name"] for o in out.kinds("StatefulSet") if (r := o["metadata"]["labels"].get(
            "natsctl.io/region"))}
    # without regions: as before, one StatefulSet and no region mapping
    one = env_of(rendered["default+operator"].get("Deployment", f"{RELEASE}-fleet")["spec"]["template"]["spec"][
        "containers"][0])
    assert one["K8S_STATEFULSET"] == "natsctl-nats" and "K8S_STATEFULSETS" not in one and "FLEET_REGION" not in one


def test_helm_test_crosses_regions(rendered):
    pod = rendered["regions+operator"].get("Pod", f"{RELEASE}-test-request-reply")
    env = env_of(pod["spec"]["containers"][0])
    svc = f"{NAMESPACE}.svc.cluster.local:4222"
    assert env["REPLY_URL"] == f"nats://natsctl-nats-us-east-0.natsctl-nats-us-east-headless.{svc}"
    assert env["REQUEST_URL"] == f"nats://natsctl-nats-ap-south-1.natsctl-nats-ap-south-headless.{svc}"


def test_without_regions_nothing_changes(rendered):
    # the names, selectors and ports of a chart without regions: an upgrade to this chart changes no object's
    # identity, and no gateway appears
    out = rendered["default+operator"]
    sts = out.get("StatefulSet", f"{RELEASE}-nats")
    assert sts["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/component": "nats", "app.kubernetes.io/instance": RELEASE,
        "app.kubernetes.io/name": "natsctl"}
    assert "natsctl.io/region" not in sts["spec"]["template"]["metadata"]["labels"]
    assert "gateway" not in {p["name"] for p in sts["spec"]["template"]["spec"]["containers"][0]["ports"]}
    assert "gateway" not in out.nats_conf() and 'name: "natsctl"' in out.nats_conf()
    assert not [n for n in out.names() if "gateway" in n]


def test_legacy_names_turn_an_existing_fleet_into_a_region(render):
    out = render(deep_merge(OPERATOR.values, {"nats": {"regions": [
        {"name": "natsctl", "replicas": 3, "legacyNames": True}, {"name": "eu-west", "replicas": 2}]}}))
    old = render(OPERATOR.values).get("StatefulSet", f"{RELEASE}-nats")
    sts = out.get("StatefulSet", f"{RELEASE}-nats")
    assert sts["spec"]["selector"] == old["spec"]["selector"]  # immutable: kept as it was
    assert sts["spec"]["serviceName"] == old["spec"]["serviceName"]
    assert sts["spec"]["volumeClaimTemplates"] == old["spec"]["volumeClaimTemplates"]
    assert sts["spec"]["template"]["metadata"]["labels"]["natsctl.io/region"] == "natsctl"
    # its Services select its pods only (a Service's selector may change)
    assert out.get("Service", f"{RELEASE}-nats")["spec"]["selector"]["natsctl.io/region"] == "natsctl"
    assert "StatefulSet/natsctl-nats-eu-west" in out.names()
    conf = out.nats_conf("natsctl-nats-config")
    assert 'name: "natsctl"' in conf and "gateway: {" in conf and "natsctl-nats-eu-west-1" in conf


def test_a_region_elsewhere_cluster_renders_only_its_own_regions(render):
    # the second Kubernetes cluster of a two-cluster supercluster: its own region, the first one by URL, no
    # control plane (it runs in the first cluster)
    off = {"enabled": False}
    values = deep_merge(OPERATOR.values, {
        "web": off, "worker": off, "beat": off, "collector": off, "fleet": off, "migrate": off, "test": off,
        "postgresql": off, "redis": off,
        "externalDatabase": {"url": "postgres://unused@db:5432/x"}, "externalRedis": {"url": "redis://r:6379/0"},
        "nats": {"regions": [{"name": "us-east", "gatewayUrls": ["nats://gw.us.example.internal:7222"]},
                             {"name": "eu-west", "replicas": 3}],
                 "gatewayService": {"enabled": True}}})
    out = render(values)
    names = [n for n in out.names() if not n.startswith("Secret/")]
    assert names == sorted(["ConfigMap/natsctl-nats-eu-west-config", "StatefulSet/natsctl-nats-eu-west",
                            "Service/natsctl-nats-eu-west", "Service/natsctl-nats-eu-west-headless",
                            "Service/natsctl-nats-eu-west-gateway", "PodDisruptionBudget/natsctl-nats-eu-west"])
    assert '{name: "us-east", urls: ["nats://gw.us.example.internal:7222"]}' in out.nats_conf(
        "natsctl-nats-eu-west-config")


def test_the_notes_list_the_regions(rendered):
    notes = rendered["regions+operator"].notes
    assert "4 region(s), joined by gateways on port 7222" in notes
    assert f"eu-west: 1 nats-server node(s), clients connect to nats://natsctl-nats-eu-west.{NAMESPACE}.svc" in notes
    assert "sa-east: elsewhere, reached at nats://gw.sa.example.internal:7222" in notes
    assert "3 nats-server node(s)" in rendered["default+operator"].notes
