"""Broker nodes as desired state, and what each node is known to hold."""

from __future__ import annotations

from django.db import models
from django.db.models import Q


class BrokerNode(models.Model):
    """One nats-server of the fleet: what we want (desired state) and what the supervisor last saw."""

    class Desired(models.TextChoices):
        RUNNING = "running"
        STOPPED = "stopped"

    class Observed(models.TextChoices):
        STARTING = "starting"
        HEALTHY = "healthy"
        UNHEALTHY = "unhealthy"
        FAILED = "failed"
        STOPPING = "stopping"
        STOPPED = "stopped"

    name = models.CharField(max_length=64, unique=True)
    region = models.CharField(max_length=32, default="us-east",
                              help_text="the node's region: a NATS cluster of that name, joined to every other "
                                        "region by gateways")
    host = models.CharField(max_length=255, default="127.0.0.1")
    client_port = models.PositiveIntegerField()
    cluster_port = models.PositiveIntegerField()
    monitoring_port = models.PositiveIntegerField()
    leafnode_port = models.PositiveIntegerField()
    gateway_port = models.PositiveIntegerField()
    extra_config = models.TextField(blank=True, help_text="appended to the rendered config (operator's own settings)")

    desired_state = models.CharField(max_length=16, choices=Desired.choices, default=Desired.RUNNING)
    observed_state = models.CharField(max_length=16, choices=Observed.choices, default=Observed.STOPPED)
    pid = models.PositiveIntegerField(null=True, blank=True)
    server_id = models.CharField(max_length=56, blank=True)
    version = models.CharField(max_length=32, blank=True)
    restarts = models.PositiveIntegerField(default=0)
    consecutive_failures = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    last_healthy_at = models.DateTimeField(null=True, blank=True)
    state_changed_at = models.DateTimeField(null=True, blank=True)
    synced_at = models.DateTimeField(null=True, blank=True, help_text="last full sync from the control plane")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["region", "name"], name="broker_node_region_idx")]
        constraints = [
            models.CheckConstraint(
                condition=Q(client_port__lte=65535) & Q(cluster_port__lte=65535) & Q(monitoring_port__lte=65535)
                & Q(leafnode_port__lte=65535) & Q(gateway_port__lte=65535),
                name="%(app_label)s_%(class)s_ports_in_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.observed_state})"

    @property
    def client_url(self) -> str:
        return f"nats://{self.host}:{self.client_port}"

    @property
    def cluster_url(self) -> str:
        return f"nats://{self.host}:{self.cluster_port}"

    @property
    def gateway_url(self) -> str:
        return f"nats://{self.host}:{self.gateway_port}"

    @property
    def leafnode_url(self) -> str:
        return f"nats-leaf://{self.host}:{self.leafnode_port}"

    @property
    def monitoring_url(self) -> str:
        return f"http://{self.host}:{self.monitoring_port}"

    @property
    def ports(self) -> tuple[int, int, int, int, int]:
        return (self.client_port, self.cluster_port, self.monitoring_port, self.leafnode_port, self.gateway_port)


class NodeClaim(models.Model):
    """The account JWT a node acknowledged (or a LOOKUP showed) it holds."""

    account = models.ForeignKey("accounts_service.Account", on_delete=models.CASCADE, related_name="node_claims")
    node = models.ForeignKey(BrokerNode, on_delete=models.CASCADE, related_name="claims")
    jti = models.CharField(max_length=64)
    iat = models.BigIntegerField()
    updated_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "node"], name="%(app_label)s_%(class)s_one_per_account_node"),
        ]

    def __str__(self) -> str:
        return f"{self.node_id}:{self.account_id}@{self.iat}"
