"""broker_gateway.config: nats-server config rendering, checked by text and by `nats-server -t` (no database)."""

from __future__ import annotations

import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from broker_gateway.config import ClusterConfig, ServerConfig, render
from operators import claims, nkeys
from operators.nkeys import KeyType
from tests.natsproc import nats_server_bin

OP = nkeys.generate(KeyType.OPERATOR)
OP_SK = nkeys.generate(KeyType.OPERATOR)
SYS = nkeys.generate(KeyType.ACCOUNT)
APP = nkeys.generate(KeyType.ACCOUNT)

OPERATOR_JWT = claims.encode(
    claims.OPERATOR,
    subject=OP.public_key,
    name="test-op",
    signer=OP,
    nats=claims.operator_nats(signing_keys=[OP_SK.public_key], system_account=SYS.public_key,
                              strict_signing_key_usage=True),
)
SYS_JWT = claims.encode(
    claims.ACCOUNT,
    subject=SYS.public_key,
    name="SYS",
    signer=OP_SK,
    nats=claims.account_nats(
        limits=claims.AccountLimits(),
        exports=[
            claims.Export("$SYS.REQ.ACCOUNT.*.*", type="service", account_token_position=4),
            claims.Export("$SYS.REQ.SERVER.PING.CONNZ", type="service"),
        ],
    ),
)
APP_JWT = claims.encode(
    claims.ACCOUNT,
    subject=APP.public_key,
    name="app",
    signer=OP_SK,
    nats=claims.account_nats(limits=claims.AccountLimits(jetstream=claims.JetStreamLimits(disk_storage=-1,
                                                                                          mem_storage=-1))),
)


def base_config(tmp_path: Path, **overrides) -> ServerConfig:
    cfg = ServerConfig(
        operator_jwt=OPERATOR_JWT,
        system_account=SYS.public_key,
        system_account_jwt=SYS_JWT,
        resolver_dir=str(tmp_path / "jwt"),
    )
    return replace(cfg, **overrides)


def full_config(tmp_path: Path) -> ServerConfig:
    return base_config(
        tmp_path,
        server_name="node-1",
        port=14222,
        http_port=18222,
        resolver_interval="30s",
        resolver_timeout="500ms",
        allow_delete=False,
        cluster=ClusterConfig(name="natsctl", port=16222,
                              routes=["nats://127.0.0.1:16223", "nats://127.0.0.1:16224"]),
        jetstream_store_dir=str(tmp_path / "js"),
        leafnode_port=17422,
        lame_duck_duration="30s",
        max_payload=2 * 1024 * 1024,
        extra_preload={APP.public_key: APP_JWT},
    )


def nats_server_test(text: str, tmp_path: Path, name: str = "nats.conf") -> subprocess.CompletedProcess:
    path = tmp_path / name
    path.write_text(text)
    return subprocess.run([nats_server_bin(), "-t", "-c", str(path)], capture_output=True, text=True, timeout=30,
                          cwd=tmp_path)


def test_fixture_jwts_are_consistent():
    op = claims.decode(OPERATOR_JWT, expected_type="operator")
    assert claims.issuer_problems(claims.decode(SYS_JWT), op) == []
    assert claims.issuer_problems(claims.decode(APP_JWT), op) == []


# --- text -----------------------------------------------------------------------------------------


def test_render_minimal(tmp_path):
    text = render(base_config(tmp_path))
    lines = text.splitlines()
    assert text.endswith("\n")
    assert 'server_name: "natsctl-1"' in lines
    assert 'host: "127.0.0.1"' in lines
    assert "port: 4222" in lines
    assert f'operator: "{OPERATOR_JWT}"' in lines
    assert f'system_account: "{SYS.public_key}"' in lines
    start = lines.index("resolver: {")
    assert lines[start : start + 7] == [
        "resolver: {",
        "  type: full",
        f'  dir: "{tmp_path / "jwt"}"',
        "  allow_delete: true",
        '  interval: "2m"',
        '  timeout: "1.9s"',
        "}",
    ]
    start = lines.index("resolver_preload: {")
    assert lines[start : start + 3] == ["resolver_preload: {", f'  {SYS.public_key}: "{SYS_JWT}"', "}"]
    for absent in ("cluster", "jetstream", "leafnodes", "http:", "lame_duck_duration", "max_payload"):
        assert not any(line.startswith(absent) for line in lines), absent


def test_render_full(tmp_path):
    text = render(full_config(tmp_path))
    lines = text.splitlines()
    assert 'server_name: "node-1"' in lines
    assert "port: 14222" in lines
    assert 'http: "127.0.0.1:18222"' in lines
    assert "max_payload: 2097152" in lines
    assert 'lame_duck_duration: "30s"' in lines
    assert "  allow_delete: false" in lines
    assert '  interval: "30s"' in lines
    assert '  timeout: "500ms"' in lines
    start = lines.index("resolver_preload: {")
    preload = lines[start + 1 : lines.index("}", start)]
    assert sorted(preload) == sorted([f'  {SYS.public_key}: "{SYS_JWT}"', f'  {APP.public_key}: "{APP_JWT}"'])
    start = lines.index("jetstream: {")
    assert lines[start : start + 3] == ["jetstream: {", f'  store_dir: "{tmp_path / "js"}"', "}"]
    start = lines.index("cluster: {")
    assert lines[start : start + 5] == [
        "cluster: {",
        '  name: "natsctl"',
        '  listen: "127.0.0.1:16222"',
        '  routes: ["nats://127.0.0.1:16223", "nats://127.0.0.1:16224"]',
        "}",
    ]
    start = lines.index("leafnodes: {")
    assert lines[start : start + 3] == ["leafnodes: {", '  listen: "127.0.0.1:17422"', "}"]


def test_render_cluster_without_routes(tmp_path):
    lines = render(base_config(tmp_path, cluster=ClusterConfig(name="c", port=6222))).splitlines()
    start = lines.index("cluster: {")
    assert lines[start : start + 4] == ["cluster: {", '  name: "c"', '  listen: "127.0.0.1:6222"', "}"]


def test_render_quotes_strings(tmp_path):
    weird = str(tmp_path / 'dir with "quotes" and spaces')
    text = render(base_config(tmp_path, resolver_dir=weird, server_name='n"1'))
    assert '  dir: "' + weird.replace('"', '\\"') + '"' in text.splitlines()
    assert 'server_name: "n\\"1"' in text.splitlines()


def test_render_contains_no_seed(tmp_path):
    text = render(full_config(tmp_path))
    for kp in (OP, OP_SK, SYS, APP):
        assert kp.seed not in text


# --- validation -----------------------------------------------------------------------------------


GOOD_DURATIONS = ["2m", "1.9s", "500ms", "1h30m", "10us", "10µs", "1ns", "1h2m3.5s", "0s1ms"]
GOOD_LAME_DUCK = ["30s", "0.5m", "2m", "1h", "29s1000ms", "1m30s"]


@pytest.mark.parametrize("value", GOOD_DURATIONS)
@pytest.mark.parametrize("field", ["resolver_interval", "resolver_timeout"])
def test_good_durations(tmp_path, field, value):
    assert f'  {field.removeprefix("resolver_")}: "{value}"' in render(base_config(tmp_path, **{field: value}))


@pytest.mark.parametrize("value", ["0s", "0m0s", "0.0h"])
@pytest.mark.parametrize("field", ["resolver_interval", "resolver_timeout"])
def test_zero_resolver_durations_refused(tmp_path, field, value):
    with pytest.raises(ValueError, match=f"{field} must be longer than 0"):
        render(base_config(tmp_path, **{field: value}))


@pytest.mark.parametrize("value", GOOD_LAME_DUCK)
def test_good_lame_duck_durations(tmp_path, value):
    assert f'lame_duck_duration: "{value}"' in render(base_config(tmp_path, lame_duck_duration=value))


@pytest.mark.parametrize("value", ["29s", "29.999s", "1s", "500ms", "0s", "10µs"])
def test_lame_duck_below_server_minimum(tmp_path, value):
    with pytest.raises(ValueError, match="below nats-server's minimum of 30s"):
        render(base_config(tmp_path, lame_duck_duration=value))


@pytest.mark.parametrize("value", ["", "2", "1.9", "2 m", "m", "2min", "1d", "abc", "2m30", "-1s", " 2m", "2m\n"])
@pytest.mark.parametrize("field", ["resolver_interval", "resolver_timeout", "lame_duck_duration"])
def test_bad_durations(tmp_path, field, value):
    with pytest.raises(ValueError, match=f"{field} .* is not a Go duration"):
        render(base_config(tmp_path, **{field: value}))


@pytest.mark.parametrize("value", [-1, 65536, 100000])
@pytest.mark.parametrize("field", ["port", "http_port", "leafnode_port"])
def test_bad_ports(tmp_path, field, value):
    with pytest.raises(ValueError, match=f"{field} {value} is not a TCP port"):
        render(base_config(tmp_path, **{field: value}))


@pytest.mark.parametrize("value", [-1, 65536])
def test_bad_cluster_port(tmp_path, value):
    with pytest.raises(ValueError, match=r"cluster port -?\d+ is not a TCP port"):
        render(base_config(tmp_path, cluster=ClusterConfig(name="c", port=value)))


@pytest.mark.parametrize("value", [0, 1, 65535])
def test_edge_ports(tmp_path, value):
    assert f"port: {value}" in render(base_config(tmp_path, port=value)).splitlines()


@pytest.mark.parametrize("kp", [OP, SYS, nkeys.generate(KeyType.USER)], ids=["operator", "account", "user"])
@pytest.mark.parametrize("field", ["operator_jwt", "system_account_jwt", "system_account"])
def test_seed_never_rendered(tmp_path, field, kp):
    with pytest.raises(ValueError, match="seed must never reach a server config"):
        render(base_config(tmp_path, **{field: kp.seed}))


def test_seed_in_extra_preload_refused(tmp_path):
    with pytest.raises(ValueError, match="seed must never reach a server config"):
        render(base_config(tmp_path, extra_preload={APP.public_key: APP.seed + "\n"}))


# --- the real binary ------------------------------------------------------------------------------


def test_nats_server_accepts_minimal_config(tmp_path):
    result = nats_server_test(render(base_config(tmp_path)), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is valid" in result.stdout + result.stderr


def test_nats_server_accepts_full_config(tmp_path):
    result = nats_server_test(render(full_config(tmp_path)), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is valid" in result.stdout + result.stderr


@pytest.mark.parametrize("duration", GOOD_DURATIONS)
def test_nats_server_accepts_every_duration_we_accept(tmp_path, duration):
    cfg = base_config(tmp_path, resolver_interval=duration, resolver_timeout=duration)
    result = nats_server_test(render(cfg), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("duration", GOOD_LAME_DUCK)
def test_nats_server_accepts_every_lame_duck_we_accept(tmp_path, duration):
    result = nats_server_test(render(base_config(tmp_path, lame_duck_duration=duration)), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_nats_server_refuses_lame_duck_below_minimum(tmp_path):
    # why render() refuses it: the server would not start
    text = render(base_config(tmp_path, lame_duck_duration="30s")).replace('"30s"', '"29s"')
    result = nats_server_test(text, tmp_path)
    assert result.returncode != 0
    assert "minimum is 30 seconds" in result.stdout + result.stderr


def test_nats_server_accepts_non_ascii_values(tmp_path):
    # strings are written as raw UTF-8: nats-server's parser knows no \uXXXX escapes
    cfg = base_config(tmp_path, server_name="nœud-µ-名前", resolver_dir=str(tmp_path / "jwt-ü"))
    text = render(cfg)
    assert 'server_name: "nœud-µ-名前"' in text
    result = nats_server_test(text, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "jwt-ü").is_dir()


def test_server_name_with_space_refused(tmp_path):
    with pytest.raises(ValueError, match="contains a space"):
        render(base_config(tmp_path, server_name="node one"))


def test_nats_server_refuses_server_name_with_space(tmp_path):
    # why render() refuses it
    text = render(base_config(tmp_path, server_name="node-one")).replace('"node-one"', '"node one"')
    result = nats_server_test(text, tmp_path)
    assert result.returncode != 0
    assert "cannot contain spaces" in result.stdout + result.stderr


def test_nats_server_refuses_zero_fetch_timeout(tmp_path):
    text = render(base_config(tmp_path)).replace('timeout: "1.9s"', 'timeout: "0s"')
    result = nats_server_test(text, tmp_path)
    assert result.returncode != 0


def test_nats_server_accepts_quotes_and_spaces(tmp_path):
    cfg = base_config(tmp_path, server_name='node-"one"', resolver_dir=str(tmp_path / 'my "jwt" dir'))
    result = nats_server_test(render(cfg), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / 'my "jwt" dir').is_dir()


def test_nats_server_check_is_meaningful(tmp_path):
    # Negative controls: the binary really refuses a broken operator JWT, a broken preload JWT
    # and a bad duration, so the acceptance tests above prove something.
    good = render(base_config(tmp_path))
    broken_operator = good.replace(f'operator: "{OPERATOR_JWT}"', f'operator: "{OPERATOR_JWT[:-10]}xx"')
    broken_preload = good.replace(f'"{SYS_JWT}"', '"not-a-jwt"')
    bad_duration = good.replace('interval: "2m"', 'interval: "2 minutes"')
    for i, text in enumerate((broken_operator, broken_preload, bad_duration)):
        assert text != good
        result = nats_server_test(text, tmp_path, name=f"bad{i}.conf")
        assert result.returncode != 0, text
