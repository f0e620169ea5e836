"""``manage.py fleet run|status|add|remove|start|stop|scale|region|sync|reconcile|verify``: the broker fleet."""

from __future__ import annotations

import logging
import signal
import threading

from django.conf import settings

from broker_gateway.fleet import driver_get
from broker_gateway.fleet.node_sync import NodeSyncer
from broker_gateway.fleet.reconciler import Reconciler
from broker_gateway.fleet.supervisor import Supervisor
from broker_gateway.gateway import GatewayUnavailable
from broker_gateway.models import BrokerNode
from broker_gateway.node_operators import operator_get
from broker_gateway.nodes import (
    fleet_ensure,
    fleet_scale,
    node_add,
    node_desired_set,
    node_remove,
    region_add,
    region_desired_set,
)
from broker_gateway.propagation import accounts_push, fleet_reconcile, fleet_verify
from broker_gateway.selectors import fleet_overview, node_get, regions_overview
from broker_gateway.services import gateway_reset
from core.cli import SubcommandCommand
from core.errors import ApplicationError, Unavailable
from core.progress import progress_bar

log = logging.getLogger("broker_gateway.fleet")


class Command(SubcommandCommand):
    help = "Run and steer the broker fleet (nats-server nodes as desired state)."
    subcommands = {
        "run": "supervise the fleet: start, health-check, restart and stop every node",
        "status": "each node's state, pid, URLs, server id, version, restarts",
        "add": "add a node (desired running); the others are not restarted",
        "remove": "remove a node (lame duck, then gone)",
        "start": "set a node's desired state to running (also clears a failed node)",
        "stop": "set a node's desired state to stopped",
        "scale": "make a region (default: the first) N nodes",
        "region": "regions: list, add NAME --nodes N, drain NAME, resume NAME",
        "sync": "push every account to every healthy node now",
        "reconcile": "push accounts some healthy node has not acknowledged",
        "verify": "LIST and LOOKUP what nodes hold; repair differences",
    }

    def add_run_arguments(self, p) -> None:
        p.add_argument("--topology", default=None,
                       help="regions and nodes to create when the fleet has none: REGION=NODES,... "
                            f"(default FLEET_TOPOLOGY: {settings.FLEET_TOPOLOGY})")
        p.add_argument("--nodes", type=int, default=None,
                       help="instead of --topology: this many nodes in one region (FLEET_REGION)")
        p.add_argument("--interval", type=float, default=0.25, help="seconds between supervision ticks")

    def handle_run(self, *, topology, nodes, interval, **_) -> None:
        fleet_ensure(topology=topology, count=nodes)
        stop = threading.Event()

        def _stop(signum, frame) -> None:
            log.info("fleet run: %s received, stopping every node", signal.Signals(signum).name)
            stop.set()

        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
            signal.signal(signum, _stop)
        syncer = NodeSyncer()
        # Pushes and deletions reconciled from the database every FLEET_RECONCILE_SECONDS, worker or no worker.
        reconciler = Reconciler(sync_started=syncer.running_since)
        supervisor = Supervisor(driver_get(), on_healthy=syncer, reconciler=reconciler)
        for node in BrokerNode.objects.order_by("region", "name"):
            self.out(f"node {node.name} ({node.region}): {node.client_url} (monitoring {node.monitoring_url})")
        try:
            supervisor.run(stop, interval=interval)
        finally:
            syncer.close()
            gateway_reset()
        self.out("fleet stopped")

    def add_status_arguments(self, p) -> None:
        p.add_argument("--json", action="store_true")

    def handle_status(self, *, json, **_) -> None:
        rows = fleet_overview(gateways=True)
        if json:
            self.out_json(rows)
            return
        self.out(f"{'NAME':<12} {'REGION':<10} {'STATE':<10} {'PID':>7} {'CLIENT URL':<24} {'MONITORING URL':<24} "
                 f"{'VERSION':<8} {'RESTARTS':>8} {'IN SYNC':>9}  SERVER ID")
        for r in rows:
            state = r["state"] if r["desired_state"] == "running" else f"{r['state']}*"
            self.out(f"{r['name']:<12} {r['region']:<10} {state:<10} {r['pid'] or '-':>7} {r['client_url']:<24} "
                     f"{r['monitoring_url']:<24} {r['version'] or '-':<8} {r['restarts']:>8} "
                     f"{r['accounts_in_sync']:>4}/{r['accounts_total']:<4}  {r['server_id'] or '-'}")
            if r["last_error"] and r["state"] != "healthy":
                self.out(f"{'':<12} last error: {r['last_error'].splitlines()[-1]}")
            for link in r.get("gateways") or []:
                self.out(f"{'':<12} gateway -> {link['region']}: {link['state']}"
                         + (f" ({link['url']})" if link.get("url") else ""))

    def add_add_arguments(self, p) -> None:
        p.add_argument("name")
        p.add_argument("--region", default=None, help="the node's region (default: the fleet's first region)")
        p.add_argument("--host", default="127.0.0.1")
        for port in ("client", "cluster", "monitoring", "leafnode", "gateway"):
            p.add_argument(f"--{port}-port", type=int, default=None)
        p.add_argument("--extra-config", default="", help="nats-server config appended to the rendered one")
        p.add_argument("--operator", default=None, help="the node operator that runs it (a slug; default: the "
                                                        "platform): staff approve an operator's server this way")

    def handle_add(self, *, name, region, host, client_port, cluster_port, monitoring_port, leafnode_port,
                   gateway_port, extra_config, operator=None, **_) -> None:
        given = {"client_port": client_port, "cluster_port": cluster_port, "monitoring_port": monitoring_port,
                 "leafnode_port": leafnode_port}
        if any(v is not None for v in given.values()) and not all(v is not None for v in given.values()):
            raise ApplicationError("give the client, cluster, monitoring and leafnode ports, or none "
                                   "(--gateway-port is optional: a free one is chosen)")
        if gateway_port is not None:
            given["gateway_port"] = gateway_port
        runner = operator_get(slug=operator) if operator is not None else None
        node = node_add(name=name, host=host, extra_config=extra_config, region=region,
                        ports=given if client_port is not None else None, operator=runner)
        self.out(f"added {node.name} to {node.region}: {node.client_url} (monitoring {node.monitoring_url})"
                 + (f", run by {runner.slug}" if runner is not None else ""))

    def add_remove_arguments(self, p) -> None:
        p.add_argument("name")

    def handle_remove(self, *, name, **_) -> None:
        node_remove(node=node_get(name=name))
        self.out(f"removed {name}")

    def add_start_arguments(self, p) -> None:
        p.add_argument("name")

    def handle_start(self, *, name, **_) -> None:
        node = node_desired_set(node=node_get(name=name), desired=BrokerNode.Desired.RUNNING)
        self.out(f"{node.name}: desired running")

    add_stop_arguments = add_start_arguments

    def handle_stop(self, *, name, **_) -> None:
        node = node_desired_set(node=node_get(name=name), desired=BrokerNode.Desired.STOPPED)
        self.out(f"{node.name}: desired stopped")

    def add_scale_arguments(self, p) -> None:
        p.add_argument("count", type=int)
        p.add_argument("--region", default=None, help="the region to scale (default: the fleet's first)")

    def handle_scale(self, *, count, region, **_) -> None:
        nodes = fleet_scale(count=count, region=region)
        where = nodes[0].region if nodes else (region or "region")
        self.out(f"{where}: {len(nodes)} nodes ({', '.join(n.name for n in nodes)})")

    def add_region_arguments(self, p) -> None:
        p.add_argument("action", choices=("list", "add", "drain", "resume"))
        p.add_argument("name", nargs="?", help="the region (add, drain, resume)")
        p.add_argument("--nodes", type=int, default=1, help="add: nodes to add to the region (default 1)")
        p.add_argument("--json", action="store_true", help="list: as JSON")

    def handle_region(self, *, action, name, nodes, json, **_) -> None:
        if action == "list":
            rows = regions_overview()
            if json:
                self.out_json(rows)
                return
            for r in rows:
                self.out(f"{r['region']:<12} {r['healthy']}/{r['running']} nodes healthy ({r['nodes']} in all)"
                         f"{'  drained' if r['drained'] else ''}")
            return
        if not name:
            raise ApplicationError(f"region {action} needs the region's name (fleet region {action} NAME)")
        if action == "add":
            added = region_add(region=name, nodes=nodes)
            self.out(f"{name}: added {', '.join(n.name for n in added)}")
        else:
            desired = BrokerNode.Desired.STOPPED if action == "drain" else BrokerNode.Desired.RUNNING
            changed = region_desired_set(region=name, desired=desired)
            what = ("draining (lame duck: clients move to the other regions)" if action == "drain"
                    else "desired running")
            self.out(f"{name}: {len(changed)} nodes {what}")

    def handle_sync(self, **_) -> None:
        with progress_bar("pushing accounts", unit="accounts") as progress:
            report = self._gateway_call(lambda: accounts_push(progress=progress))
        self.out(f"pushed {report.accounts} accounts to {len(report.nodes)} nodes in {report.seconds:.2f}s; "
                 f"{report.complete} held by every healthy node; {len(report.errors)} errors")

    def handle_reconcile(self, **_) -> None:
        with progress_bar("re-pushing accounts", unit="accounts") as progress:
            report = self._gateway_call(lambda: fleet_reconcile(progress=progress))
        self.out(f"re-pushed {report.accounts} accounts; {report.complete} now held by every healthy node")

    def handle_verify(self, **_) -> None:
        with progress_bar("checking accounts", unit="accounts") as progress:
            report = self._gateway_call(lambda: fleet_verify(progress=progress))
        self.out(f"checked {report.checked} accounts on {len(report.nodes)} nodes: {report.stale} stale, "
                 f"{len(report.deleted)} deleted")

    @staticmethod
    def _gateway_call(fn):
        try:
            return fn()
        except GatewayUnavailable as exc:
            raise Unavailable(str(exc)) from exc
        finally:
            gateway_reset()
