"""The supervisor's reconciler one round at a time, against one real nats-server: a round pushes what is behind and
deletes what is gone; a failure is logged once while it lasts, retried every round, and its end logged once.

No Celery here and no commit (the test's transaction is rolled back), so nothing but the round pushes anything.
"""

from __future__ import annotations

import logging

import pytest
from django.utils import timezone

from accounts_service.rights import PLATFORM
from tests.natsproc import free_port

RECONCILER = "broker_gateway.fleet.reconciler"


def _node(name: str, *, client_port: int):
    """A node the supervisor just saw healthy."""
    from broker_gateway.models import BrokerNode
    from broker_gateway.nodes import node_add

    node = node_add(name=name, ports={"client_port": client_port, "cluster_port": free_port(),
                                      "monitoring_port": free_port(), "leafnode_port": free_port()})
    BrokerNode.objects.filter(pk=node.pk).update(observed_state="healthy", last_healthy_at=timezone.now())
    return node


@pytest.fixture
def node(nats_server):
    return _node("test-node", client_port=nats_server.port)  # the fixture's server_name


def test_a_round_pushes_what_is_behind_and_deletes_what_is_gone(node, nats_server, team):
    from accounts_service.services import account_create, account_delete, user_create, user_revoke
    from broker_gateway.fleet.reconciler import Reconciler
    from broker_gateway.propagation import account_lookup
    from broker_gateway.selectors import accounts_behind_ids, healthy_nodes

    kept = account_create(actor=PLATFORM, team=team, name="kept")
    doomed = account_create(actor=PLATFORM, team=team, name="doomed")
    assert {kept.pk, doomed.pk} <= set(accounts_behind_ids(healthy_nodes()))
    reconciler = Reconciler(every=2)

    reconciler.round()
    assert accounts_behind_ids(healthy_nodes()) == []
    assert account_lookup(account_public_key=kept.public_key, url=nats_server.url) == kept.jwt
    assert account_lookup(account_public_key=doomed.public_key, url=nats_server.url) == doomed.jwt

    # A revocation is a new JWT of the account: behind again until the next round.
    user_revoke(actor=PLATFORM, user=user_create(actor=PLATFORM, account=kept, name="alice"))
    kept.refresh_from_db()
    assert accounts_behind_ids(healthy_nodes()) == [kept.pk]
    account_delete(actor=PLATFORM, account=doomed)
    reconciler.round()
    assert accounts_behind_ids(healthy_nodes()) == []
    assert account_lookup(account_public_key=kept.public_key, url=nats_server.url) == kept.jwt
    assert account_lookup(account_public_key=doomed.public_key, url=nats_server.url) == ""  # gone from the node
    assert reconciler.failing == {}


def test_a_failure_is_logged_once_while_it_lasts_and_its_end_once(node, nats_server, team, settings, caplog):
    from accounts_service.services import account_create
    from broker_gateway.fleet.reconciler import Reconciler
    from broker_gateway.models import BrokerNode
    from broker_gateway.selectors import accounts_behind_ids, healthy_nodes

    settings.NATS_PUSH_TIMEOUT = 0.2  # how long a push waits for the node that never answers
    account = account_create(actor=PLATFORM, team=team, name="orders")
    # A second node the records call healthy but that never answers a push (frozen, say, until the
    # supervisor's next probe): no round can be complete while it counts.
    _node("silent", client_port=free_port())
    reconciler = Reconciler(every=2)
    caplog.set_level(logging.INFO, logger=RECONCILER)

    for _ in range(4):
        reconciler.round()
    assert list(reconciler.failing) == ["push: unacknowledged"]
    warnings = [r.getMessage() for r in caplog.records if r.name == RECONCILER and r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("reconcile push: unacknowledged: 2 of 2 accounts not acknowledged by every one "
                                  "of ['silent', 'test-node']"), warnings  # orders and the system account
    assert account.pk in accounts_behind_ids(healthy_nodes())  # retried every round, still behind on "silent"

    BrokerNode.objects.filter(name="silent").update(observed_state="unhealthy")  # the supervisor noticed
    reconciler.round()
    reconciler.round()
    assert reconciler.failing == {} and accounts_behind_ids(healthy_nodes()) == []
    messages = [r.getMessage() for r in caplog.records if r.name == RECONCILER]
    assert messages.count("reconcile push: unacknowledged: recovered") == 1
    assert sum(r.levelno == logging.WARNING for r in caplog.records if r.name == RECONCILER) == 1


@pytest.mark.django_db(transaction=True)  # the supervisor's thread writes: rows and locks are the database's own
def test_a_round_that_hangs_does_not_hold_up_supervision(tmp_path):
    import threading

    from broker_gateway.fleet.local import LocalProcessDriver
    from broker_gateway.fleet.reconciler import Reconciler
    from broker_gateway.fleet.supervisor import Supervisor
    from tests.waiting import wait_for

    class Hanging(Reconciler):
        """A round stuck the way a push to a frozen node or a locked database would be."""

        def __init__(self) -> None:
            super().__init__(every=0.01)
            self.entered, self.release = threading.Event(), threading.Event()

        def round(self) -> None:
            self.entered.set()
            self.release.wait(30)

    class Counting(Supervisor):
        ticks = 0

        def tick(self) -> None:
            super().tick()
            self.ticks += 1

    reconciler = Hanging()
    supervisor = Counting(LocalProcessDriver(tmp_path / "fleet"), reconciler=reconciler)
    supervisor.start_background(interval=0.01)
    try:
        assert reconciler.entered.wait(10)
        before = supervisor.ticks
        wait_for(lambda: supervisor.ticks >= before + 5, timeout=10, what="the supervisor to tick on")
    finally:
        reconciler.release.set()
        supervisor.stop_background(timeout=30)
    assert reconciler._thread is None  # stopped with the loop
