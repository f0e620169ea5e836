"""The Dockerfile agrees with pyproject.toml, the URL conf and the chart. (It cannot be built on these
machines: no Docker. Its build and run steps were tried by hand outside a container; see docs/DEPLOY.md.)"""

from __future__ import annotations

import json
import re
import tomllib

from django.urls import resolve

from tests.helm.conftest import RELEASE, ROOT

DOCKERFILE = (ROOT / "Dockerfile").read_text()
# One instruction per logical line (backslash continuations joined), comments dropped.
INSTRUCTIONS = [line.strip() for line in re.sub(r"\\\n", " ", DOCKERFILE).splitlines()
                if line.strip() and not line.lstrip().startswith("#")]


def stages() -> list[list[str]]:
    out: list[list[str]] = []
    for line in INSTRUCTIONS:
        if line.upper().startswith("FROM "):
            out.append([])
        if out:
            out[-1].append(line)
    return out


def test_multi_stage_slim_and_non_root():
    builder, runtime = stages()
    assert builder[0].endswith("AS builder") and runtime[0].endswith("AS runtime")
    assert "slim" in runtime[0]
    assert not any("build-essential" in line for line in runtime)  # no compiler in the image
    (user,) = [line for line in runtime if line.startswith("USER ")]
    uid = user.split()[1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0  # numeric, so Kubernetes' runAsNonRoot can check it
    assert any(line.startswith("COPY --from=builder /opt/venv /opt/venv") for line in runtime)


def test_the_python_and_the_dependencies_are_pyprojects():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    version = re.search(r"ARG PYTHON_VERSION=(\d+)\.(\d+)", DOCKERFILE).groups()
    low = re.search(r">=(\d+)\.(\d+)", project["requires-python"]).groups()
    high = re.search(r"<(\d+)\.(\d+)", project["requires-python"]).groups()
    assert tuple(map(int, low)) <= tuple(map(int, version)) < tuple(map(int, high))
    assert "postgres" in project["optional-dependencies"]  # the image installs that extra
    (install,) = [line for line in INSTRUCTIONS if "pip install '.[" in line]
    assert "'.[postgres]'" in install
    assert any("collectstatic" in line for line in stages()[0])


def test_healthcheck_hits_a_real_liveness_url():
    (healthcheck,) = [line for line in INSTRUCTIONS if line.startswith("HEALTHCHECK ")]
    url = re.search(r"http://127\.0\.0\.1:8000(/[a-z]+)", healthcheck).group(1)
    assert resolve(url).url_name == "healthz"


def test_default_command_is_the_charts_web_command(render):
    (cmd,) = [line for line in INSTRUCTIONS if line.startswith("CMD ")]
    command = json.loads(cmd[len("CMD "):])
    web = render({}).get("Deployment", f"{RELEASE}-web")
    assert web["spec"]["template"]["spec"]["containers"][0]["command"] == command
    assert "EXPOSE 8000" in INSTRUCTIONS


def test_dockerignore_keeps_local_state_and_secrets_out():
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert {".git", ".venv", "var", ".env", "*.nk", "*.creds", "tests"} <= ignored
    # ...but not what the image runs
    for needed in ("manage.py", "pyproject.toml", "README.md", "templates", "static", "operators"):
        assert needed not in ignored
    # pyproject.toml names README.md as the readme: the dependency layer needs both
    assert "COPY pyproject.toml README.md ./" in INSTRUCTIONS
