"""``manage.py up`` keeps the product up: each piece it starts (Redis, the fleet supervisor, the collector, the
Celery worker and beat, gunicorn) SIGKILLed in turn is restarted while the others keep running with the same pid;
Ctrl-C then stops everything and leaves no process behind. Real processes throughout."""

from __future__ import annotations

import json
import os
import signal
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings

from broker_gateway.models import BrokerNode
from tests.fleet import manage_py, stop_process, subprocess_env
from tests.natsproc import free_port
from tests.waiting import Pending, pending_unless, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PIECES = ("redis", "fleet", "collector", "worker", "beat", "web")
_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _status() -> dict:
    try:
        return json.loads((settings.VAR_DIR / "up.json").read_text())["pieces"]
    except (OSError, ValueError, KeyError):
        return {}


def _all_running() -> object:
    status = _status()
    running = {name for name, piece in status.items() if piece["running"]}
    return pending_unless(running >= set(PIECES), {"running": sorted(running)})


def _healthz(port: int) -> object:
    try:
        with _HTTP.open(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return response.status == 200
    except OSError as exc:
        return Pending(str(exc))


def _node_healthy() -> object:
    node = BrokerNode.objects.get()
    return pending_unless(node.observed_state == "healthy", node.observed_state)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _processes_under(path: Path) -> list[int]:
    """Live processes whose command line names ``path`` (the test's var dir: nodes, Redis, the pieces)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and entry.name != str(os.getpid()):
            try:
                cmdline = (entry / "cmdline").read_bytes().decode("utf-8", "replace")
            except OSError:
                continue
            if str(path) in cmdline and _alive(int(entry.name)):
                found.append(int(entry.name))
    return found


@pytest.fixture
def up(operator_setup, tmp_path):
    web_port = free_port()
    env = subprocess_env()
    env.pop("REDIS_URL", None)  # up starts its own Redis
    proc = manage_py("up", "--host", "127.0.0.1", "--port", str(web_port), "--nodes", "1", "--web-workers", "1",
                     env=env, log_path=tmp_path / "up.log")
    try:
        wait_for(_all_running, timeout=60, what="every piece running")
        wait_for(lambda: _healthz(web_port), timeout=30, what="the web app answering")
        wait_for(_node_healthy, timeout=30, what="the node healthy")
        yield proc, web_port, tmp_path / "up.log"
    finally:
        stop_process(proc, sig=signal.SIGINT, timeout=60)


def test_each_killed_piece_is_restarted_and_the_others_keep_running(up):
    proc, web_port, log_path = up
    for victim in PIECES:
        before = _status()
        os.kill(before[victim]["pid"], signal.SIGKILL)

        def back(victim=victim, before=before) -> object:
            now = _status()
            piece = now.get(victim, {})
            return pending_unless(piece.get("running") and piece.get("pid") != before[victim]["pid"], piece)

        wait_for(back, timeout=30, what=f"{victim} restarted")
        after = _status()
        assert proc.poll() is None, log_path.read_text()[-3000:]
        others = {name: after[name]["pid"] for name in PIECES if name != victim}
        assert others == {name: before[name]["pid"] for name in PIECES if name != victim}, victim
        wait_for(lambda: _healthz(web_port), timeout=30, what=f"the web app answering after {victim} died")
        wait_for(_node_healthy, timeout=30, what=f"the node healthy after {victim} died")
    log = log_path.read_text()
    for victim in PIECES:
        assert f"up: {victim} exited with signal SIGKILL; restarting it in" in log, log[-3000:]
        assert f"up: {victim} is running again" in log
    assert "stopping everything" not in log


def test_ctrl_c_stops_every_piece_and_leaves_nothing(up):
    proc, _, log_path = up
    log = log_path.read_text()
    # "up" is said once the node is healthy, and the collector starts after it (no refused connections to report).
    assert log.index("-> healthy") < log.index("natsctl is up.") and "collector connection" not in log, log[-3000:]
    assert "regions:    us-east (1 node)" in log and (settings.VAR_DIR / "gunicorn.ctl").exists()
    pids = [pid for piece in _status().values() for pid in piece["pids"]]
    os.killpg(proc.pid, signal.SIGINT)
    assert proc.wait(timeout=60) == 0, log_path.read_text()[-3000:]
    wait_for(lambda: not [pid for pid in pids if _alive(pid)], timeout=10, what="every piece gone")
    wait_for(lambda: not _processes_under(settings.VAR_DIR), timeout=10, what="no node or Redis left")
    assert json.loads((settings.VAR_DIR / "up.json").read_text())["stopped"] is True
    assert "natsctl stopped." in log_path.read_text()


def test_a_piece_that_keeps_dying_is_said_each_time_and_retried_with_longer_waits(tmp_path):
    from core.processes import Piece, ProcessSupervisor, RestartPolicy

    said: list[str] = []
    sup = ProcessSupervisor(policy=RestartPolicy(backoff_base=0.1, backoff_max=0.4), say=said.append,
                            status_file=tmp_path / "status.json")
    sup.start(Piece("flaky", ["/bin/sh", "-c", "exit 3"], dict(os.environ)))
    wait_for(lambda: (sup.check(), sup.pieces[0].restarts >= 4)[1], timeout=10, interval=0.01, what="four restarts")
    sup.stop_all(grace=1)
    deaths = [line for line in said if "exited" in line]
    assert deaths[0] == "flaky exited with status 3; restarting it in 0.1s (the other pieces keep running)"
    waits = [float(line.split("restarting it in ")[1].split("s")[0]) for line in deaths]
    assert waits[:4] == [0.1, 0.2, 0.4, 0.4]
    assert json.loads((tmp_path / "status.json").read_text())["stopped"] is True
