"""Full syncs of nodes that became healthy, run off the supervisor's thread (the supervisor asks, ``fleet run``
and the tests hand it one)."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from django.db import connection
from django.utils import timezone

from broker_gateway.gateway import GatewayUnavailable
from broker_gateway.models import BrokerNode
from broker_gateway.propagation import node_sync
from broker_gateway.services import gateway_reset

log = logging.getLogger(__name__)


class NodeSyncer:
    """Full syncs for nodes that became healthy, one at a time off the supervisor's thread; a sync asked
    for while another waits is folded into it (a sync pushes to every healthy node)."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="node-sync")
        self._waiting = threading.Lock()
        self._since: datetime | None = None

    def running_since(self) -> datetime | None:
        """When the full sync under way began (None: none is): the reconciler pushes meanwhile only what
        changed from then on, since the sync pushes everything else."""
        return self._since

    def __call__(self, node: BrokerNode) -> None:
        if self._waiting.acquire(blocking=False):
            self._pool.submit(self._run, node.pk, node.name)

    def idle(self) -> bool:
        """No full sync is waiting or running."""
        return self._since is None and not self._waiting.locked()

    def _run(self, node_id: int, name: str) -> None:
        self._since = timezone.now()  # (before the release: idle() never sees a gap between waiting and running)
        self._waiting.release()
        try:
            for attempt in (1, 2):
                try:
                    node_sync(node_id=node_id)
                    break
                except GatewayUnavailable as exc:
                    # The connection may be pinned to a node that just froze or died: reopen it once, to the
                    # nodes healthy now; after that, the reconciler catches up.
                    gateway_reset()
                    if attempt == 2:
                        log.warning("full sync of %s postponed: %s", name, exc)
                except Exception:
                    log.exception("full sync of %s failed", name)
                    break
        finally:
            self._since = None
            connection.close()  # this pool thread's own connection

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
