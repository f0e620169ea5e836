"""The layering holds: core <- operators <- accounts_service <- billing <- broker_gateway <- payouts, and only
broker_gateway imports nats-py. Entry points (management commands, URL confs, the project's settings/celery/wsgi)
may import every app. Read from the source with ``ast`` (imports inside functions count too), so a new module
cannot slip."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LAYERS = ["core", "operators", "accounts_service", "billing", "broker_gateway", "payouts"]
ENTRY_POINTS = {"accounts_service/settings.py", "accounts_service/urls.py", "accounts_service/celery.py",
                "accounts_service/wsgi.py", "accounts_service/__init__.py", "billing/urls.py", "broker_gateway/urls.py",
                "payouts/urls.py"}
# Pure modules: no Django at all (docs/ARCHITECTURE.md: pure code).
PURE = sorted({p.relative_to(REPO).as_posix() for pattern in (
    "core/errors.py", "core/processes.py", "core/regions.py", "core/logfilters.py", "operators/nkeys.py",
    "operators/creds.py",
    "operators/subjects.py",
    "operators/claims.py",
    "operators/claims/*.py", "broker_gateway/config.py", "broker_gateway/topology.py", "broker_gateway/leafconf.py",
    "billing/metering.py", "billing/pricing.py", "billing/units.py", "payouts/shares.py") for p in REPO.glob(pattern)})


def _modules() -> list[Path]:
    out = []
    for app in LAYERS:
        for path in sorted((REPO / app).rglob("*.py")):
            rel = path.relative_to(REPO).as_posix()
            if "/migrations/" in rel or "/management/commands/" in rel or rel in ENTRY_POINTS:
                continue
            out.append(path)
    return out


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", _modules(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_imports_point_down_the_layers(path: Path):
    own = LAYERS.index(path.relative_to(REPO).parts[0])
    above = set(LAYERS[own + 1:])
    wrong = sorted(name for name in _imports(path) if name.split(".")[0] in above)
    assert not wrong, f"{path.relative_to(REPO)} imports a layer above it: {wrong}"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_only_broker_gateway_speaks_nats(path: Path):
    if path.relative_to(REPO).parts[0] == "broker_gateway":
        return
    wrong = sorted(name for name in _imports(path) if name.split(".")[0] == "nats")
    assert not wrong, f"{path.relative_to(REPO)} imports nats-py: {wrong}"


@pytest.mark.parametrize("rel", PURE)
def test_pure_modules_import_no_django(rel: str):
    path = REPO / rel
    pure = {p.removesuffix(".py").replace("/", ".") for p in PURE}  # a pure module may use another one
    wrong = sorted(name for name in _imports(path) if name.split(".")[0] in {"django", "rest_framework", *LAYERS[2:]}
                   and name not in pure)
    assert not wrong, f"{rel} must stay pure: {wrong}"
