"""The supervisor with real nodes: start, push on change, restart a killed node, full sync."""

from __future__ import annotations

import os
import signal

import pytest

from accounts_service.rights import PLATFORM
from tests.fleet import running_fleet
from tests.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def fleet3(operator_setup, tmp_path):
    with running_fleet(3, tmp_path / "fleet") as (_, sup):
        yield sup


def test_change_reaches_every_node_and_killed_node_returns(fleet3, team):
    from accounts_service.services import account_create
    from broker_gateway.models import BrokerNode
    from broker_gateway.propagation import fleet_reconcile
    from broker_gateway.selectors import account_propagation

    account = account_create(actor=PLATFORM, team=team, name="orders")  # pushed on commit (eager task)
    status = account_propagation(account=account)
    if not status["in_sync"]:
        # A reply later than NATS_PUSH_TIMEOUT (a loaded CI machine) is not recorded: that is what the
        # beat-driven reconciler is for, and it must then bring every node in line.
        fleet_reconcile()
        status = account_propagation(account=account)
    assert status["live_on"] == 3 and status["in_sync"], status

    victim = BrokerNode.objects.get(name="node-2")
    old_pid = fleet3.pid("node-2")
    os.kill(old_pid, signal.SIGKILL)
    wait_for(lambda: BrokerNode.objects.filter(name="node-2", observed_state="healthy", restarts=1)
             .exclude(pid=old_pid).exists(), what="node-2 restarted")
    victim.refresh_from_db()
    assert victim.restarts == 1 and victim.server_id
